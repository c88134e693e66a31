"""Model bugs found by the stateful machine (tests/test_stateful.py).

Each test states what Linux (2.6.11, the tree the model follows) does. An
open bug is marked ``xfail(strict=True)``; when its fix lands the test
passes, strict xfail turns that into a failure, and the marker is removed.
The docstrings give the machine program that found the bug (replayable
with ``RmapMachine``) and the root cause.

Status: bugs 1 and 2 were fixed in ff7881b ("make_pages_present follows
get_user_pages"); bug 3 (negative addresses) is fixed: the facade reads
every address and length as an unsigned long.
"""

from __future__ import annotations

import ast

import pytest

from rmaplab.check import check_no_leaks, validate
from rmaplab.errors import SyscallError
from rmaplab.kernel.system import Kernel

P = 4096
A = 0x1000_0000


def _errno(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except SyscallError as e:
        return e.errno
    return 0


# -- bug 1: mlock's prefault ignores get_user_pages' rules --------------------------------

# Root cause: mlock_fixup decided EFAULT from VM_READ|VM_EXEC, and
# make_pages_present clipped file mappings at EOF, instead of following
# get_user_pages. Fixed in ff7881b.


def test_mlock_exec_only_is_efault():
    """Machine program::

        state = RmapMachine()
        procs_0, procs_1 = state.init()
        state.mmap_fixed(backing='anon', extra='', file_page=0, n=1, page=0, pid=procs_0,
                         prot='--x', share='private')
        state.mlock(n=1, page=0, pid=procs_0)
        # model 0, Linux EFAULT

    2.6.11 mlock_fixup returns make_pages_present(), which calls
    get_user_pages(write = VM_WRITE set); for a read it demands VM_READ, so
    a PROT_EXEC-only VMA fails with EFAULT (the VMA stays VM_LOCKED).
    """
    k = Kernel()
    k.spawn(1)
    k.mmap(1, A, P, "--x", ["private", "anonymous", "fixed"])
    assert _errno(k.mlock, 1, A, P) == "EFAULT"
    assert k.mm(1).mmap[0].vm_flags & 0x2000        # VM_LOCKED stays set


def test_mlock_write_only_succeeds():
    """A write-only VMA is prefaulted by write faults (get_user_pages with
    write=1 needs only VM_WRITE): mlock succeeds in Linux; the model gives
    EFAULT. (The machine never generates "-w-", see prots there.)"""
    k = Kernel()
    k.spawn(1)
    k.mmap(1, A, P, "-w-", ["private", "anonymous", "fixed"])
    assert _errno(k.mlock, 1, A, P) == 0


def test_mlock_beyond_eof():
    """Machine program (page 1000 is TASK_UNMAPPED_BASE; f1 is 3 pages)::

        state = RmapMachine()
        procs_0, procs_1 = state.init()
        state.mmap_fixed(backing='f1', extra='', file_page=2, n=2, page=1000, pid=procs_0,
                         prot='r--', share='private')
        state.mlock(n=2, page=1000, pid=procs_0)
        # model 0, Linux EPERM

    get_user_pages stops at the SIGBUS of the first page beyond EOF and
    returns the pages done so far; make_pages_present turns a short count
    into -1, so mlock fails with EPERM (EFAULT when the very first page is
    beyond EOF). The model's make_pages_present silently clips the range at
    EOF.
    """
    k = Kernel()
    k.spawn(1)
    k.declare_file("f", P)
    k.mmap(1, A, 2 * P, "r--", ["private", "fixed"], file="f")
    assert _errno(k.mlock, 1, A, 2 * P) == "EPERM"
    k.mmap(1, A, P, "r--", ["private", "fixed"], file="f", offset=P)
    assert _errno(k.mlock, 1, A, P) == "EFAULT"


# -- bug 2: prefaulting shmem beyond its size --------------------------------------------

# Root cause: make_pages_present/populate did not stop at a shmem segment's
# size: pages beyond i_size were instantiated and never freed. Fixed in
# ff7881b.


def test_locked_shmem_grow_does_not_leak():
    """Machine program (shrunk)::

        state = RmapMachine()
        procs_0, procs_1 = state.init()
        state.mmap_fixed(backing='anon', extra='locked', file_page=0, n=2, page=0,
                         pid=procs_0, prot='rw-', share='shared')
        state.munmap(n=2, page=2, pid=procs_0)
        state.mremap(maymove=False, new_n=4, old_n=2, page=0, pid=procs_0)
        state.teardown()    # check_no_leaks: frames still in use

    mremap growth of a VM_LOCKED VMA calls make_pages_present over the new
    part. For a shared anonymous mapping the new part lies beyond the shmem
    file's size: Linux's shmem_nopage gives SIGBUS there and nothing is
    instantiated. The model's make_pages_present only clips regular files
    at EOF, so it faults shmem pages at indices >= size_pages into the
    segment's page cache; when the last mapping goes,
    _unlink_file_vma frees only indices < size_pages, leaking the rest.
    """
    k = Kernel()
    k.spawn(1)
    k.mmap(1, A, 2 * P, "rw-", ["shared", "anonymous", "fixed", "locked"])
    assert k.mremap(1, A, 2 * P, 4 * P, []) == A
    assert k.touch(1, A + 2 * P, P, "r").result == "SIGBUS"
    validate(k)
    k.exit(1)
    check_no_leaks(k)


# -- bug 3: negative addresses ------------------------------------------------------------

BUG3 = ("the facade passes negative Python ints through as addresses; Linux sees them as "
        "unsigned longs above TASK_SIZE (bug 3)")


def test_negative_addresses_are_beyond_task_size():
    """Found when a machine rule computed an address below zero (a test
    bug, since fixed): ``mremap(..., MREMAP_MAYMOVE|MREMAP_FIXED, -0x20000)``
    succeeded and left a VMA at a negative address, which ``validate``
    then reported as out of order.

    The system call arguments are ``unsigned long``: -0x10000 is
    0xffff_ffff_ffff_0000, far above TASK_SIZE. Linux gives ENOMEM for a
    MAP_FIXED mmap there (get_unmapped_area: addr > TASK_SIZE - len),
    EINVAL for munmap (start > TASK_SIZE) and EINVAL for an mremap to it
    (new_addr > TASK_SIZE - new_len). The model compares the negative
    value as is, so every check passes and a VMA (or nothing) happens at a
    negative address.
    """
    k = Kernel()
    k.spawn(1)
    assert _errno(k.mmap, 1, -0x10000, P, "rw-", ["private", "anonymous", "fixed"]) == "ENOMEM"
    assert _errno(k.munmap, 1, -0x10000, P) == "EINVAL"
    k.mmap(1, A, P, "rw-", ["private", "anonymous", "fixed"])
    assert _errno(k.mremap, 1, A, P, P, ["maymove", "fixed"], -0x20000) == "EINVAL"
    validate(k)


# -- the machine programs themselves ---------------------------------------------------------

MACHINE_PROGRAMS = {
    "bug1_exec_only": """
procs_0, procs_1 = state.init()
state.mmap_fixed(backing='anon', extra='', file_page=0, n=1, page=0, pid=procs_0, prot='--x',
                 share='private')
state.mlock(n=1, page=0, pid=procs_0)
""",
    "bug1_beyond_eof": """
procs_0, procs_1 = state.init()
state.mmap_fixed(backing='f1', extra='', file_page=2, n=2, page=1000, pid=procs_0, prot='r--',
                 share='private')
state.mlock(n=2, page=1000, pid=procs_0)
""",
    "bug2_shmem_grow": """
procs_0, procs_1 = state.init()
state.mmap_fixed(backing='anon', extra='locked', file_page=0, n=2, page=0, pid=procs_0,
                 prot='rw-', share='shared')
state.munmap(n=2, page=2, pid=procs_0)
state.mremap(maymove=False, new_n=4, old_n=2, page=0, pid=procs_0)
""",
}


def replay(program: str) -> None:
    """Run a program as Hypothesis prints it for RmapMachine, checking
    every invariant after each step as the machine does."""
    from test_stateful import RmapMachine
    state = RmapMachine()
    env = {"state": state}
    for stmt in ast.parse(program).body:
        exec(compile(ast.Module([stmt], []), "<program>", "exec"), env)
        state.kernel_invariants()
        state.layout_matches_reference()
        state.resident_data_matches_reference()
    state.teardown()


@pytest.mark.parametrize("name", sorted(MACHINE_PROGRAMS))
def test_machine_program(name):
    replay(MACHINE_PROGRAMS[name])
