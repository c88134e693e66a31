"""The strace importer (``rmaplab.trace.strace``), ``rmaplab import-strace``
and ``rmaplab record``.

Hand-made logs test one thing each; the real logs in tests/data/strace
(README.md there says how they were made) are checked against facts about
the programs and against counts taken from the log text by the tests' own
simple line matching, and are replayed on the model. The logs come from
Linux 6.18: under the default 2.6.7 profile expects are not all met (the
tests check that the mismatches are counted and reported), under the modern
profile every recorded result is (test_real_log_reproduced_by_the_modern_profile).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import orjson
import pytest

from rmaplab.cli.main import main
from rmaplab.kernel import Kernel
from rmaplab.trace.reader import parse_trace, read_trace
from rmaplab.trace.replay import replay
from rmaplab.trace.strace import import_strace, parse_line, split_call

DATA = Path(__file__).parent / "data" / "strace"
P = 4096


def imp(text: str, **kw):
    """Import a hand-made log held in a string."""
    return import_strace(["hand.log"], texts={"hand.log": text.splitlines(True)}, **kw)


def multi(files: dict[str, str], **kw):
    return import_strace(list(files), texts={k: v.splitlines(True) for k, v in files.items()},
                         **kw)


def ops(result, op: str) -> list[dict]:
    return [e for e in result.events if e["op"] == op]


def as_trace(result):
    """The import as the trace reader sees it (this checks it is valid)."""
    return parse_trace(b"\n".join(result.lines()), "imported")


def replay_result(result):
    return replay(Kernel(), as_trace(result))


# -- lines ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, pid, ts, kind, name", [
    ("123   mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, 3, 0) = 0x7f00", 123, None, "call", "mmap"),
    ("123 10:20:30.500000 brk(NULL) = 0x55", 123, 37230.5, "call", "brk"),
    ("10:20:30.500000 brk(NULL) = 0x55", None, 37230.5, "call", "brk"),
    ("1700000000.250000 brk(NULL) = 0x55", None, 1700000000.25, "call", "brk"),
    ("     0.000123 brk(NULL) = 0x55", None, None, "call", "brk"),          # -r: relative
    ("[pid  77] brk(NULL) = 0x55", 77, None, "call", "brk"),
    ("9 wait4(-1,  <unfinished ...>", 9, None, "unfinished", "wait4"),
    ("9 <... wait4 resumed>NULL, 0, NULL) = 10", 9, None, "resumed", "wait4"),
    ("9 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---", 9, None, "signal", ""),
    ("9 +++ exited with 3 +++", 9, None, "exited", ""),
    ("9 +++ killed by SIGSEGV (core dumped) +++", 9, None, "killed", ""),
    ("strace: Process 9 attached", None, None, "strace", ""),
    ("9 what is this", 9, None, "bad", ""),
])
def test_parse_line(raw, pid, ts, kind, name):
    ln = parse_line(raw)
    assert (ln.pid, ln.kind, ln.name) == (pid, kind, name)
    assert ln.ts == pytest.approx(ts) if ts is not None else ln.ts is None


def test_parse_line_strips_call_time():
    ln = parse_line("5 munmap(0x7f0000000000, 4096) = 0 <0.000012>")
    assert split_call(ln.text) == (["0x7f0000000000", "4096"], " = 0")


def test_split_call_respects_quotes_brackets_comments_and_fd_paths():
    args, tail = split_call('AT_FDCWD</a, b>, "x, \\"y)", [1, 2], {a=(1, 2)} /* 3, vars */'
                            ', 3</lib/x, y.so>) = 4</lib/x, y.so>')
    assert args == ["AT_FDCWD</a, b>", '"x, \\"y)"', "[1, 2]", "{a=(1, 2)} /* 3, vars */",
                    "3</lib/x, y.so>"]
    assert tail == " = 4</lib/x, y.so>"
    assert split_call(") = 7") == ([], " = 7")
    args, _ = split_call("NULL, 2097152, PROT_READ, MAP_PRIVATE|MAP_HUGETLB|21<<MAP_HUGE_SHIFT, -1, 0) = 0")
    assert args[3] == "MAP_PRIVATE|MAP_HUGETLB|21<<MAP_HUGE_SHIFT"


# -- header, events, results -------------------------------------------------------------

LS_LIKE = """\
100 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
100 brk(NULL)                         = 0x555555559000
100 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000
100 brk(0x55555557a000)               = 0x55555557a000
100 munmap(0x7f0000010001, 4096)      = -1 EINVAL (Invalid argument)
100 mmap(NULL, 4611686018427387904, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = -1 ENOMEM (Cannot allocate memory)
100 mprotect(0x7f0000010000, 4096, PROT_READ) = 0
100 exit_group(0)                     = ?
100 +++ exited with 0 +++
"""


def test_header_is_exactly_the_contract():
    r = imp(LS_LIKE)
    assert list(r.header) == ["format", "version", "page_size", "source"]
    assert r.header["format"] == "rmaplab-trace" and r.header["version"] == 1
    assert r.header["page_size"] == 4096
    assert r.header["source"].startswith(
        f"strace import of hand.log: 9 lines, {len(r.events)} events, 0 unusable (none)")
    t = as_trace(r)
    assert t.header == r.header


def test_processes_results_and_brk():
    r = imp(LS_LIKE, touch="none")
    assert [e["op"] for e in r.events] == ["spawn", "brk", "munmap", "brk", "mmap", "brk",
                                           "munmap", "mmap", "mprotect", "exit"]
    spawn, place, below, brk0, mm, brk1, un, big, mp, ex = r.events
    assert spawn == {"op": "spawn", "pid": 100}
    # the heap is placed at the break brk(NULL) returned: the model's break
    # (from 0x600000) grows to it, and what that mapped below is unmapped;
    # neither carries an expect (they are not recorded results)
    assert place == {"op": "brk", "pid": 100, "addr": 0x555555559000}
    assert below == {"op": "munmap", "pid": 100, "addr": 0x600000,
                     "len": 0x555555559000 - 0x600000}
    assert r.report.synthesized == Counter({"heap placed at the recorded break": 2})
    assert "synthesized: heap placed at the recorded break 2" in r.header["source"]
    assert r.report.ops["brk"] == 2 and r.report.ops["munmap"] == 1
    assert brk0 == {"op": "brk", "pid": 100, "addr": 0, "expect": 0x555555559000}
    assert mm == {"op": "mmap", "pid": 100, "addr": 0x7f0000010000, "len": 8192, "prot": "rw-",
                  "flags": ["private", "anonymous"], "file": None, "expect": 0x7f0000010000}
    assert brk1["addr"] == brk1["expect"] == 0x55555557a000
    assert un["expect"] == "EINVAL" and big["expect"] == "ENOMEM"
    assert big["addr"] is None                       # failed: written as called
    assert mp == {"op": "mprotect", "pid": 100, "addr": 0x7f0000010000, "len": 4096,
                  "prot": "r--", "expect": 0}
    assert ex == {"op": "exit", "pid": 100}          # once, for exit_group and +++ exited


def test_image_ranges_proven_by_later_calls_are_mapped_after_the_exec():
    """A successful mprotect/madvise/mlock on a range no logged call mapped
    proves execve mapped it: an anonymous rw- mapping of just the unknown
    part goes right after the exec (after the heap placement), so the call
    succeeds in the model too; a range the log itself unmapped is mapped
    where the call is."""
    log = """\
5 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
5 brk(NULL)                         = 0x555555559000
5 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000
5 mprotect(0x7f000000e000, 16384, PROT_READ) = 0
5 mprotect(0x555555554000, 4096, PROT_READ) = 0
5 mprotect(0x555555554000, 4096, PROT_READ) = 0
5 mprotect(0x7f0000100000, 4096, PROT_READ) = -1 ENOMEM (Cannot allocate memory)
5 munmap(0x7f0000010000, 8192)      = 0
5 madvise(0x7f0000010000, 4096, MADV_DONTNEED) = 0
5 exit_group(0)                     = ?
"""
    r = imp(log, touch="none")
    got = [(e["op"], e.get("addr"), e.get("len"), "expect" in e) for e in r.events]
    assert got == [
        ("spawn", None, None, False),
        ("brk", 0x555555559000, None, False),
        ("munmap", 0x600000, 0x555555559000 - 0x600000, False),
        ("mmap", 0x7f000000e000, 2 * P, False),        # only the unknown part
        ("mmap", 0x555555554000, P, False),            # once
        ("brk", 0, None, True),
        ("mmap", 0x7f0000010000, 2 * P, True),
        ("mprotect", 0x7f000000e000, 4 * P, True),
        ("mprotect", 0x555555554000, P, True),
        ("mprotect", 0x555555554000, P, True),
        ("mprotect", 0x7f0000100000, P, True),         # failed: proves nothing
        ("munmap", 0x7f0000010000, 2 * P, True),
        ("mmap", 0x7f0000010000, P, False),            # unmapped in the log: here
        ("madvise", 0x7f0000010000, P, True),
        ("exit", None, None, False)]
    synth = [e for e in r.events if e["op"] == "mmap" and "expect" not in e]
    assert all(e["prot"] == "rw-" and e["flags"] == ["private", "anonymous", "fixed"]
               and e["file"] is None for e in synth)
    assert r.report.synthesized == Counter({"heap placed at the recorded break": 2,
                                            "image mappings proven by later calls": 3})
    assert r.report.ops["mmap"] == 1 and r.report.ops["munmap"] == 1
    for profile in ("modern", "2.6.7"):
        rep = r.reproduction(profile)
        assert rep.recorded == 8 and rep.recorded_ok == 8, (profile, rep.mismatches)


def test_heap_not_placed_over_mappings_or_below_the_models_break():
    """The break is placed only by a first brk(NULL) whose result lies above
    the model's 0x600000 with nothing the log mapped in between."""
    low = """\
5 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
5 brk(NULL)                         = 0x4c5000
"""
    assert [e["op"] for e in imp(low).events] == ["spawn", "brk"]
    over = """\
5 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
5 mmap(0x10000000, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = 0x10000000
5 brk(NULL)                         = 0x555555559000
"""
    assert [e["op"] for e in imp(over, touch="none").events] == ["spawn", "mmap", "brk"]
    later = """\
5 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
5 brk(0x555555600000)               = 0x555555559000
5 brk(NULL)                         = 0x555555559000
"""
    assert [e["op"] for e in imp(later, touch="none").events] == ["spawn", "brk", "brk"]


def test_addresses_as_called():
    r = imp(LS_LIKE, touch="none", addresses="as-called")
    assert ops(r, "mmap")[0]["addr"] is None
    assert "addresses as-called" in r.header["source"]


def test_unfinished_and_resumed_are_joined():
    log = """\
10 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
10 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
10 <... mmap resumed>)                = 0x7f0000020000
10 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>
11 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
10 <... clone resumed>, child_tidptr=0x7f00) = 11
10 munmap(0x7f0000020000, 8192 <unfinished ...>
11 <... mmap resumed>)                = 0x7f0000030000
10 <... munmap resumed>)              = 0
11 exit_group(0)                      = ?
11 +++ exited with 0 +++
10 exit_group(0)                      = ?
"""
    r = imp(log, touch="none")
    assert [(e["op"], e.get("pid")) for e in r.events] == [
        ("spawn", 10), ("mmap", 10), ("fork", 10), ("mmap", 11), ("munmap", 10),
        ("exit", 11), ("exit", 10)]
    mm10, mm11 = ops(r, "mmap")
    assert mm10["len"] == 8192 and mm10["expect"] == 0x7f0000020000
    assert mm11["len"] == 4096 and mm11["prot"] == "r--" and mm11["expect"] == 0x7f0000030000
    assert ops(r, "fork") == [{"op": "fork", "pid": 10, "child": 11}]
    assert r.report.unusable_total == 0
    replay_result(r)


def test_clone_vm_thread_does_not_fork_and_shares_the_pid():
    log = """\
20 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
20 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, child_tid=0x7f, parent_tid=0x7f, exit_signal=0, stack=0x7e, stack_size=0x7fff80, tls=0x7f} => {parent_tid=[21]}, 88) = 21
21 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000040000
21 clone(child_stack=0x7d, flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM) = 22
22 munmap(0x7f0000040000, 8192) = 0
22 exit(0)                            = ?
22 +++ exited with 0 +++
21 exit(0)                            = ?
21 +++ exited with 0 +++
20 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000050000
20 exit_group(0)                      = ?
20 +++ exited with 0 +++
"""
    r = imp(log, touch="none")
    assert not ops(r, "fork")
    assert {e["pid"] for e in r.events if "pid" in e} == {20}
    assert [e["op"] for e in r.events] == ["spawn", "mmap", "munmap", "mmap", "exit"]
    assert "strace pid 21 -> trace pid 20: thread of 20, on its mm" in r.comments
    replay_result(r)


def test_vfork_child_is_the_parent_until_exec_then_fork_and_exec():
    log = """\
30 execve("/bin/sh", ["sh"], 0x7ffc /* 3 vars */) = 0
30 vfork( <unfinished ...>
31 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000060000
31 execve("/nonexistent", ["x"], 0x7ffc /* 3 vars */) = -1 ENOENT (No such file or directory)
31 execve("/bin/true", ["true"], 0x7ffc /* 3 vars */ <unfinished ...>
30 <... vfork resumed>)               = 31
31 <... execve resumed>)              = 0
31 brk(NULL)                          = 0x555555560000
31 exit_group(0)                      = ?
31 +++ exited with 0 +++
30 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=31} ---
30 clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD, stack=0x7f, stack_size=0x9000}, 88) = 32
32 exit_group(127)                    = ?
32 +++ exited with 127 +++
30 exit_group(0)                      = ?
"""
    r = imp(log, touch="none")
    assert [(e["op"], e.get("pid"), e.get("child")) for e in r.events] == [
        ("spawn", 30, None),
        ("mmap", 30, None),            # the vfork child runs on its parent's mm
        ("fork", 30, 31), ("exec", 31, None),
        ("brk", 31, None), ("munmap", 31, None),   # the child's heap placed after its exec
        ("brk", 31, None), ("exit", 31, None),
        # the posix_spawn-like child 32 exits without exec: nothing of its own
        ("exit", 30, None)]
    replay_result(r)


def test_fork_child_inherits_fds_and_exec_drops_cloexec():
    log = """\
40 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
40 openat(AT_FDCWD, "/data/a", O_RDONLY) = 3
40 openat(AT_FDCWD, "/data/b", O_RDONLY|O_CLOEXEC) = 4
40 fork()                             = 41
41 mmap(NULL, 4096, PROT_READ, MAP_SHARED, 3, 0) = 0x7f0000070000
41 execve("/bin/y", ["y"], 0x7ffc /* 3 vars */) = 0
41 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 3, 0) = 0x7f0000080000
41 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 4, 0) = 0x7f0000090000
"""
    r = imp(log, touch="none")
    names = [(e["pid"], e["file"]["name"]) for e in ops(r, "mmap")]
    assert names == [(41, "/data/a"), (41, "/data/a")]
    assert r.report.unusable == Counter({"mmap of an fd of unknown origin": 1})


def test_killed_process_exits():
    log = """\
50 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
50 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f00000a0000
50 --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=NULL} ---
50 +++ killed by SIGSEGV (core dumped) +++
"""
    r = imp(log, touch="none")
    assert [e["op"] for e in r.events] == ["spawn", "mmap", "exit"]


def test_root_without_execve_is_spawned_at_its_first_call():
    log = "60 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f00000b0000\n"
    r = imp(log, touch="none")
    assert [e["op"] for e in r.events] == ["spawn", "mmap"]


def test_log_without_pids_is_one_process():
    log = """\
execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f00000c0000
exit_group(0)                      = ?
+++ exited with 0 +++
"""
    r = imp(log, touch="none")
    assert [e["op"] for e in r.events] == ["spawn", "mmap", "exit"]
    assert len({e["pid"] for e in r.events}) == 1
    as_trace(r)


def test_stderr_style_log_with_pid_brackets_and_strace_messages():
    """``strace -f CMD 2>LOG``: no pid on the root's lines until it has a
    child, then ``[pid N]``; strace's own messages and -k stack lines are
    skipped."""
    log = """\
execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f00000d0000
 > /usr/lib/x86_64-linux-gnu/libc.so.6(mmap64+0x2a) [0xfb8ea]
clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f00) = 201
strace: Process 201 attached
[pid   201] mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f00000e0000
[pid   200] munmap(0x7f00000d0000, 4096) = 0
[pid   201] exit_group(0)                = ?
[pid   201] +++ exited with 0 +++
exit_group(0)                      = ?
+++ exited with 0 +++
"""
    r = imp(log, touch="none")
    root = r.events[0]["pid"]
    assert [(e["op"], e.get("pid")) for e in r.events] == [
        ("spawn", root), ("mmap", root), ("fork", root), ("mmap", 201), ("munmap", root),
        ("exit", 201), ("exit", root)]
    assert root not in (200, 201)        # a stand-in: the log never said it before the fork
    assert r.report.unusable_total == 0
    assert r.report.ignored["strace messages"] == 1
    replay_result(r)


def test_pid_map_renumbers_from_one():
    log = """\
700 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
700 fork()                             = 705
705 exit_group(0)                      = ?
700 exit_group(0)                      = ?
"""
    r = imp(log, pid_map=True)
    assert [(e["op"], e.get("pid"), e.get("child")) for e in r.events] == [
        ("spawn", 1, None), ("fork", 1, 2), ("exit", 2, None), ("exit", 1, None)]
    assert "strace pid 705 -> trace pid 2: child of 700" in r.comments


# -- flags ------------------------------------------------------------------------------------

def test_flags_words_and_dropped_flags():
    log = """\
1 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
1 mmap(NULL, 8392704, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK, -1, 0) = 0x7f0000100000
1 mmap(0x7f0000100000, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, -1, 0) = -1 EBADF (Bad file descriptor)
1 mmap(NULL, 2097152, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|21<<MAP_HUGE_SHIFT, -1, 0) = -1 ENOMEM (Cannot allocate memory)
1 mmap(NULL, 4096, PROT_READ|PROT_WRITE|PROT_EXEC, MAP_SHARED_VALIDATE|MAP_ANONYMOUS|MAP_POPULATE|MAP_LOCKED|MAP_NORESERVE|MAP_GROWSDOWN, -1, 0) = 0x7f0000200000
1 mmap(0x7f0000300000, 4096, PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, -1, 0) = -1 EEXIST (File exists)
1 mmap(NULL, 4096, 0x3, 0x22, -1, 0) = 0x7f0000400000
1 mmap(NULL, 4096, 0x3 /* PROT_READ|PROT_WRITE */, 0x21 /* MAP_SHARED|MAP_ANONYMOUS */, -1, 0) = 0x7f0000500000
1 mprotect(0x7f0000400000, 4096, PROT_READ|PROT_SEM) = 0
"""
    r = imp(log, touch="none")
    got = [(e["prot"], e["flags"]) for e in ops(r, "mmap")]
    assert got == [
        ("---", ["private", "anonymous"]),
        ("r-x", ["private", "fixed"]),
        ("rw-", ["private", "anonymous"]),
        ("rwx", ["shared", "anonymous", "populate", "locked", "growsdown", "noreserve"]),
        ("-w-", ["private", "anonymous", "fixed_noreplace"]),
        ("rw-", ["private", "anonymous"]),
        ("rw-", ["shared", "anonymous"]),
    ]
    assert ops(r, "mprotect")[0]["prot"] == "r--"
    assert r.report.dropped == Counter({"MAP_STACK": 1, "MAP_DENYWRITE": 1, "MAP_HUGETLB": 1,
                                        "MAP_HUGE_*": 1, "PROT_SEM": 1})
    assert "dropped flags: MAP_DENYWRITE 1, MAP_HUGETLB 1" in r.header["source"]
    as_trace(r)


def test_mremap_madvise_mlock():
    log = """\
2 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
2 mmap(NULL, 16384, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000
2 mremap(0x7f0000010000, 16384, 65536, MREMAP_MAYMOVE) = 0x7f0000100000
2 mremap(0x7f0000100000, 65536, 8192, 0) = 0x7f0000100000
2 mremap(0x7f0000100000, 8192, 8192, MREMAP_MAYMOVE|MREMAP_FIXED, 0x7f0000200000) = 0x7f0000200000
2 madvise(0x7f0000200000, 4096, MADV_DONTNEED) = 0
2 madvise(0x7f0000200000, 4096, MADV_WILLNEED) = 0
2 madvise(0x7f0000200000, 4096, MADV_SEQUENTIAL) = 0
2 mlock(0x7f0000200000, 4096)       = 0
2 mlock2(0x7f0000200000, 4096, 0)   = 0
2 munlock(0x7f0000200000, 4096)     = -1 ENOMEM (Cannot allocate memory)
"""
    r = imp(log, touch="none")
    m1, m2, m3 = ops(r, "mremap")
    # moved without MREMAP_FIXED: written as a fixed move to where it went (hint mode)
    assert m1 == {"op": "mremap", "pid": 2, "addr": 0x7f0000010000, "old_len": 16384,
                  "new_len": 65536, "flags": ["maymove", "fixed"], "new_addr": 0x7f0000100000,
                  "expect": 0x7f0000100000}
    assert m2["flags"] == [] and "new_addr" not in m2
    assert m3["flags"] == ["maymove", "fixed"] and m3["new_addr"] == 0x7f0000200000
    assert [e["advice"] for e in ops(r, "madvise")] == ["dontneed", "willneed", "sequential"]
    assert len(ops(r, "mlock")) == 2 and ops(r, "munlock")[0]["expect"] == "ENOMEM"
    r2 = imp(log, touch="none", addresses="as-called")
    assert ops(r2, "mremap")[0]["flags"] == ["maymove"]
    assert "new_addr" not in ops(r2, "mremap")[0]
    res: list = []
    replay(Kernel(), as_trace(r), results=res)
    # the mremaps go where the log says; (the made-up results of madvise
    # WILLNEED and munlock are not what Linux 2.6.7 gives: EBADF on anonymous
    # memory, and success)
    assert [x.get("match", True) for x in res if x["op"] in ("mmap", "mremap", "mlock")] == \
        [True] * 6
    assert [x["result"] for x in res if x["op"] in ("madvise", "munlock")] == [0, "EBADF", 0, 0]


def test_unusable_lines_are_counted_not_fatal():
    log = """\
3 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
3 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000
3 madvise(0x7f0000010000, 4096, MADV_FREE) = 0
3 madvise(0x7f0000010000, 4096, MADV_HUGEPAGE) = 0
3 mremap(0x7f0000010000, 4096, 4096, MREMAP_MAYMOVE|MREMAP_DONTUNMAP) = 0x7f0000020000
3 mlockall(MCL_CURRENT) = 0
3 mprotect(0x7f0000010000, 4096, PROT_READ|PROT_GROWSDOWN) = 0
3 mmap(NULL, 4096, PROT_READ, MAP_SHARED, 9, 0) = 0x7f0000030000
3 <... munmap resumed>) = 0
3 garbage here
3 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
3 +++ killed by SIGKILL +++
"""
    r = imp(log)
    assert r.report.unusable == Counter({
        "madvise MADV_FREE": 1, "madvise MADV_HUGEPAGE": 1, "mremap MREMAP_DONTUNMAP": 1,
        "mlockall": 1, "mprotect PROT_GROWSDOWN": 1, "mmap of an fd of unknown origin": 1,
        "resumed without its start": 1, "malformed line": 1, "unfinished, never resumed": 1})
    src = r.header["source"]
    assert "9 unusable (" in src and "madvise MADV_FREE: 1" in src
    assert [e["op"] for e in r.events] == ["spawn", "mmap", "touch", "exit"]
    replay_result(r)


# -- files ------------------------------------------------------------------------------------

def test_file_size_from_fstat_declared_once():
    log = """\
4 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
4 openat(AT_FDCWD, "/lib/libc.so.6", O_RDONLY|O_CLOEXEC) = 3
4 newfstatat(3, "", {st_mode=S_IFREG|0755, st_size=10000, ...}, AT_EMPTY_PATH) = 0
4 mmap(NULL, 20480, PROT_READ, MAP_PRIVATE|MAP_DENYWRITE, 3, 0) = 0x7f0000010000
4 mmap(0x7f0000011000, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x1000) = 0x7f0000011000
4 close(3)                          = 0
4 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 3, 0) = 0x7f0000020000
"""
    r = imp(log)
    assert ops(r, "file") == [{"op": "file", "name": "/lib/libc.so.6", "size": 10000}]
    first, second = ops(r, "mmap")
    assert first["file"] == {"name": "/lib/libc.so.6", "offset": 0}
    assert second["file"] == {"name": "/lib/libc.so.6", "offset": 4096}
    t1, t2 = ops(r, "touch")
    # file pages past the end of the file (10000 bytes: 3 pages) are not touched
    assert (t1["addr"], t1["len"], t1["access"]) == (0x7f0000010000, 3 * P, "r")
    assert (t2["addr"], t2["len"], t2["access"]) == (0x7f0000011000, 2 * P, "w")
    assert r.report.unusable == Counter({"mmap of an fd of unknown origin": 1})   # after close
    rep = replay_result(r)
    assert rep.mismatches == 0


def test_file_size_without_stat_is_the_largest_mapped_extent():
    log = """\
5 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
5 open("data.bin", O_RDWR) = 7
5 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_SHARED, 7, 0x3000) = 0x7f0000010000
5 dup2(7, 9) = 9
5 mmap(NULL, 4096, PROT_READ, MAP_SHARED, 9, 0) = 0x7f0000020000
"""
    r = imp(log)
    assert ops(r, "file") == [{"op": "file", "name": "data.bin", "size": 0x3000 + 8192}]
    assert [e["file"]["name"] for e in ops(r, "mmap")] == ["data.bin", "data.bin"]
    # a shared writable file mapping is read, not written, by write-new-private
    assert [t["access"] for t in ops(r, "touch")] == ["r", "r"]


def test_y_paths_dev_zero_and_memfd():
    log = """\
6 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
6 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 5</usr/lib/a, b.so>, 0) = 0x7f0000010000
6 openat(AT_FDCWD</tmp>, "/dev/zero", O_RDWR) = 3</dev/zero>
6 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE, 3</dev/zero>, 0) = 0x7f0000020000
6 memfd_create("jit", MFD_CLOEXEC) = 4</memfd:jit (deleted)>
6 ftruncate(4</memfd:jit (deleted)>, 12288) = 0
6 mmap(NULL, 12288, PROT_READ|PROT_WRITE, MAP_SHARED, 4</memfd:jit (deleted)>, 0) = 0x7f0000030000
"""
    r = imp(log)
    a, z, m = ops(r, "mmap")
    assert a["file"] == {"name": "/usr/lib/a, b.so", "offset": 0}
    assert z["file"] is None and z["flags"] == ["private", "anonymous"]
    assert m["file"] == {"name": "/memfd:jit", "offset": 0}
    assert {f["name"]: f["size"] for f in ops(r, "file")} == {"/usr/lib/a, b.so": 4096,
                                                              "/memfd:jit": 12288}
    replay_result(r)


# -- touches ----------------------------------------------------------------------------------

TOUCHY = """\
8 execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
8 brk(NULL)                         = 0x555555559000
8 brk(0x55555557a000)               = 0x55555557a000
8 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000
8 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000020000
8 mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000030000
8 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS, -1, 0) = 0x7f0000040000
8 mremap(0x7f0000010000, 8192, 16384, MREMAP_MAYMOVE) = 0x7f0000010000
8 munmap(0x7f0000010000, 16384) = 0
8 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000
8 mmap(NULL, 1073741824, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0) = 0x7e0000000000
"""


def test_touch_write_new_private():
    r = imp(TOUCHY, touch_limit=1 << 20)
    touches = [(t["addr"], t["len"], t["access"], t.get("token")) for t in ops(r, "touch")]
    assert touches == [
        (0x555555559000, 0x21000, "w", "p8:555555559000"),        # brk growth
        (0x7f0000010000, 2 * P, "w", "p8:7f0000010000"),
        (0x7f0000012000, 2 * P, "w", "p8:7f0000012000"),           # mremap growth
        (0x7f0000010000, 2 * P, "w", "p8:7f0000010000#1"),         # tokens stay unique
        (0x7e0000000000, 1 << 20, "w", "p8:7e0000000000"),        # capped at the limit
    ]
    assert r.report.touches_capped == 1
    # each touch follows the call that made its pages
    idx = [i for i, e in enumerate(r.events) if e["op"] == "touch"]
    assert [r.events[i - 1]["op"] for i in idx] == ["brk", "mmap", "mremap", "mmap", "mmap"]
    rep = replay(Kernel(), as_trace(r), results=(res := []))
    assert [x["result"] for x in res if x["op"] == "touch"] == ["ok"] * 5
    # the heap is placed at the recorded break: brk(NULL) and the rest agree
    assert rep.mismatches == 0


def test_touch_read_all_and_none():
    r = imp(TOUCHY, touch="read-all", touch_limit=1 << 20)
    assert [(t["addr"], t["access"]) for t in ops(r, "touch")] == [
        (0x555555559000, "r"), (0x7f0000010000, "r"), (0x7f0000020000, "r"),
        (0x7f0000040000, "r"), (0x7f0000012000, "r"), (0x7f0000010000, "r"),
        (0x7e0000000000, "r")]
    assert all("token" not in t for t in ops(r, "touch"))
    res: list = []
    replay(Kernel(), as_trace(r), results=res)
    assert {x["result"] for x in res if x["op"] == "touch"} == {"ok"}
    assert not ops(imp(TOUCHY, touch="none"), "touch")


# -- strace -ff --------------------------------------------------------------------------------

FF_ROOT = """\
{t0}execve("/bin/x", ["x"], 0x7ffc /* 3 vars */) = 0
{t1}mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000
{t2}clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f00) = 91
{t5}munmap(0x7f0000010000, 4096) = 0
{t6}exit_group(0) = ?
{t6}+++ exited with 0 +++
"""
FF_CHILD = """\
{t3}mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000020000
{t4}munmap(0x7f0000010000, 4096) = 0
{t7}exit_group(0) = ?
{t7}+++ exited with 0 +++
"""


def _ff(timed: bool) -> dict[str, str]:
    ts = {f"t{i}": (f"10:00:0{i}.000000 " if timed else "") for i in range(8)}
    return {"run.90": FF_ROOT.format(**ts), "run.91": FF_CHILD.format(**ts)}


def test_ff_files_without_timestamps_child_follows_its_fork():
    r = multi(_ff(False), touch="none")
    assert [(e["op"], e.get("pid")) for e in r.events] == [
        ("spawn", 90), ("mmap", 90), ("fork", 90), ("mmap", 91), ("munmap", 91),
        ("exit", 91), ("munmap", 90), ("exit", 90)]
    assert "each child's after the call that created it" in r.header["source"]


def test_ff_files_with_timestamps_are_merged_by_time():
    r = multi(_ff(True), touch="none")
    assert [(e["op"], e.get("pid")) for e in r.events] == [
        ("spawn", 90), ("mmap", 90), ("fork", 90), ("mmap", 91), ("munmap", 91),
        ("munmap", 90), ("exit", 90), ("exit", 91)]
    assert "merged by timestamp" in r.header["source"]


def test_ff_prefix_on_disk(tmp_path):
    for name, text in _ff(True).items():
        (tmp_path / name).write_text(text)
    r = import_strace(str(tmp_path / "run"), touch="none")
    assert r.report.name == "run.* (2 files)"
    assert len(ops(r, "fork")) == 1
    with pytest.raises(FileNotFoundError):
        import_strace(str(tmp_path / "nothing"))


# -- the real logs ------------------------------------------------------------------------------

REAL = {
    "ls.log": ["ls.log"],
    "memprog.log": ["memprog.log"],
    "memprog-tt.log": ["memprog-tt.log"],
    "sh-pipe.log": ["sh-pipe.log"],
    "memprog-ff": ["memprog-ff"],
    "memprog-fftt": ["memprog-fftt"],
    "record-python.log": ["record-python.log"],
}
MEMPROG = ("memprog.log", "memprog-tt.log", "memprog-ff", "memprog-fftt")


def _files(key: str) -> list[Path]:
    p = DATA / key
    if p.is_file():
        return [p]
    return sorted(DATA.glob(key + ".*"))


def _log_lines(key: str) -> list[tuple[int | None, str]]:
    """(pid, body) of every line of a real log, by simple matching that is
    independent of the importer: a -ff file's pid is its suffix."""
    out = []
    for f in _files(key):
        suffix = f.name.rsplit(".", 1)[-1]
        fpid = int(suffix) if suffix.isdigit() else None
        for line in f.read_text().splitlines():
            m = re.match(r"(?:(\d+)\s+)?(?:\d\d:\d\d:\d\d\.\d+\s+)?(.*)", line)
            pid = int(m.group(1)) if m.group(1) else fpid
            out.append((pid, m.group(2)))
    return out


def _calls(key: str, name: str) -> list[str]:
    """The text of each complete call ``name`` (a split call counted once,
    at its resumed half) in a real log."""
    out = []
    for _, body in _log_lines(key):
        if body.startswith(f"{name}(") and "<unfinished ...>" not in body:
            out.append(body)
        elif body.startswith(f"<... {name} resumed>"):
            out.append(body)
    return out


def _size_ok(key: str) -> None:
    for f in _files(key):
        assert f.stat().st_size < 200 * 1024, f


@pytest.fixture(scope="module")
def imported():
    return {k: import_strace([str(DATA / p) for p in v]) for k, v in REAL.items()}


REPLAY_REPORT: dict[str, tuple[int, int, int]] = {}


@pytest.mark.parametrize("key", list(REAL))
def test_real_log_imports_and_replays(key, imported, tmp_path):
    _size_ok(key)
    r = imported[key]
    path = tmp_path / "t.jsonl"
    r.write(str(path))
    trace = read_trace(str(path))                      # the reader accepts it
    assert len(trace.events) == len(r.events) == r.report.events
    report = replay(Kernel(), trace)                   # no TraceError
    expects = sum(1 for e in r.events if "expect" in e)
    REPLAY_REPORT[key] = (len(r.events), expects, report.mismatches)
    print(f"\n{key}: {len(r.events)} events, {r.report.unusable_total} unusable "
          f"{dict(r.report.unusable)}; {expects - report.mismatches} of {expects} expects "
          f"met on replay")
    assert report.events == len(r.events)
    assert 0 <= report.mismatches <= expects
    # the CLI reports the count of mismatches
    code = main(["replay", str(path), "--quiet", "--results", str(tmp_path / "res.jsonl")])
    assert code == 0
    res = [orjson.loads(x) for x in (tmp_path / "res.jsonl").read_bytes().splitlines()]
    assert sum(1 for x in res if x.get("match") is False) == report.mismatches


@pytest.mark.parametrize("key", list(REAL))
def test_real_log_reproduced_by_the_modern_profile(key, imported):
    """Recorded on Linux 6.18: with the heap placed at the recorded break and
    the image ranges later calls prove mapped, the modern profile gives every
    recorded result again (the issue asks for at least 99 %)."""
    r = imported[key]
    rep = r.reproduction("modern")
    assert rep.recorded == sum(1 for e in r.events if "expect" in e) > 0
    assert rep.recorded_ok == rep.recorded, rep.mismatches
    assert r.report.synthesized["heap placed at the recorded break"] >= 2
    # the RELRO ranges of the programs and of ld.so, which only execve mapped
    assert r.report.synthesized["image mappings proven by later calls"] >= 2


@pytest.mark.parametrize("key", list(REAL))
def test_real_log_memory_calls_all_accounted(key, imported):
    """Every memory call line becomes one event or one unusable count."""
    r = imported[key]
    ops_count = r.report.ops
    unusable_by_call = Counter()
    for reason, n in r.report.unusable.items():
        unusable_by_call[reason.split()[0]] += n
    for name in ("mmap", "munmap", "mprotect", "mremap", "brk", "madvise", "mlock", "munlock"):
        lines = len(_calls(key, name))
        assert ops_count[name] + unusable_by_call[name] == lines, name
    assert r.report.unusable_total == sum(r.report.unusable.values())
    assert f"{r.report.unusable_total} unusable" in r.header["source"]


@pytest.mark.parametrize("key", list(REAL))
def test_real_log_process_events_match_the_log(key, imported):
    """spawn/fork/exec/exit counted independently from the log text."""
    r = imported[key]
    lines = _log_lines(key)
    execs_ok = [b for _, b in lines
                if re.match(r"(execve\(.*|<\.\.\. execve resumed>.*)\)\s+= 0\b", b)]
    creators = [b for b in _calls(key, "clone") + _calls(key, "clone3") + _calls(key, "fork")
                + _calls(key, "vfork") if re.search(r"\)\s+= \d+", b)]
    # the flags of a split clone are in its unfinished half
    heads = [b for _, b in lines if re.match(r"clone3?\(", b)]
    threads = sum(1 for b in heads if "CLONE_THREAD" in b)
    exited = [b for _, b in lines if b.startswith("+++ exited") or b.startswith("+++ killed")]
    c = r.report.ops
    assert c["spawn"] == 1
    # a process of its own per creating call, except threads (vfork children
    # count at their exec: all of them exec here)
    assert c["fork"] == len(creators) - threads
    # every successful execve but the root's first
    assert c["exec"] == len(execs_ok) - 1
    # every task ended with +++ exited; threads end no process
    assert c["exit"] == len(exited) - threads


@pytest.mark.parametrize("key", MEMPROG)
def test_memprog_facts(key, imported):
    r = imported[key]
    c = r.report.ops
    assert (c["spawn"], c["fork"], c["exec"], c["exit"]) == (1, 2, 1, 3)
    assert r.report.unusable == Counter({"madvise MADV_HUGEPAGE": 1,
                                         "mremap MREMAP_DONTUNMAP": 1})
    root = r.events[0]["pid"]
    assert r.events[0]["op"] == "spawn"
    # the thread's 8192-byte mmap/munmap are the process's (no fork for it)
    thread_maps = [e for e in ops(r, "mmap") if e["len"] == 8192 and e["pid"] == root]
    assert len(thread_maps) >= 2     # ld.so's first 8192 and the thread's
    assert any(e["len"] == 8192 and e["pid"] == root for e in ops(r, "munmap"))
    errors = sorted((e["op"], e["expect"]) for e in r.events
                    if isinstance(e.get("expect"), str))
    assert errors == [("mmap", "EEXIST"), ("mmap", "ENOMEM"), ("munmap", "EINVAL")]
    (big,) = [e for e in ops(r, "mmap") if e.get("expect") == "ENOMEM"]
    assert big["len"] == 1 << 62
    (grow,) = ops(r, "mremap")
    assert (grow["old_len"], grow["new_len"]) == (4 * P, 16 * P)
    forks = ops(r, "fork")
    assert [f["pid"] for f in forks] == [root, root]
    # the fork child mmaps one page and exits before the vfork child runs
    child = forks[0]["child"]
    assert [e["len"] for e in ops(r, "mmap") if e["pid"] == child] == [P]
    i_exit_child = r.events.index({"op": "exit", "pid": child})
    assert i_exit_child < r.events.index(forks[1])
    # the vfork child: fork immediately followed by exec
    i = r.events.index(forks[1])
    assert r.events[i + 1] == {"op": "exec", "pid": forks[1]["child"]}
    assert r.events[-1] == {"op": "exit", "pid": root}


@pytest.mark.parametrize("key", ["sh-pipe.log", "memprog.log", "record-python.log"])
def test_real_split_calls_are_joined(key, imported):
    """Each memory call split by another task's line is one event, with the
    result of its resumed half (these logs have no threads: trace pid ==
    strace pid, except a vfork child's calls before exec, which are none)."""
    r = imported[key]
    lines = _log_lines(key)
    split = 0
    for i, (pid, body) in enumerate(lines):
        m = re.match(r"(mmap|munmap|mprotect|brk|mremap)\((.*) <unfinished \.\.\.>$", body)
        if not m:
            continue
        name = m.group(1)
        resumed = next(b for p, b in lines[i + 1:]
                       if p == pid and b.startswith(f"<... {name} resumed>"))
        res = re.search(r"\)\s+= (0x[0-9a-f]+|\d+)", resumed).group(1)
        want = int(res, 16) if res.startswith("0x") else int(res)
        got = [e for e in ops(r, name) if e["pid"] == pid and e.get("expect") == want]
        assert got, (name, pid, want)
        split += 1
    if key == "sh-pipe.log":
        assert split >= 1          # brk(NULL <unfinished ...> of the cat child


def test_sh_pipe_facts(imported):
    r = imported["sh-pipe.log"]
    c = r.report.ops
    assert (c["spawn"], c["fork"], c["exec"], c["exit"]) == (1, 2, 2, 3)


def test_record_python_facts(imported):
    r = imported["record-python.log"]
    c = r.report.ops
    assert (c["spawn"], c["fork"], c["exec"], c["exit"]) == (1, 1, 0, 2)
    shared = [e for e in ops(r, "mmap") if e["len"] == 1 << 20 and "shared" in e["flags"]]
    assert len(shared) == 1 and shared[0]["file"] is None
    assert r.report.unusable_total == 0


def test_ls_facts(imported):
    r = imported["ls.log"]
    c = r.report.ops
    assert (c["spawn"], c["fork"], c["exec"], c["exit"]) == (1, 0, 0, 1)
    assert c["mmap"] == len(_calls("ls.log", "mmap"))
    assert "/etc/ld.so.cache" in {f["name"] for f in ops(r, "file")}
    assert all(f["size"] > 0 for f in ops(r, "file"))


# -- the commands ----------------------------------------------------------------------------

def test_cli_import_strace(tmp_path, capsys):
    out = tmp_path / "ls.jsonl"
    assert main(["import-strace", str(DATA / "ls.log"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("strace import of ls.log: 147 lines, ")
    assert "unusable" in err
    t = read_trace(str(out))
    assert t.header["source"].startswith("strace import of ls.log: 147 lines, ")
    assert main(["import-strace", str(DATA / "memprog-ff"), "-o", str(out), "--pid-map",
                 "--touch", "none"]) == 0
    err = capsys.readouterr().err
    assert "pid map" in err
    t = read_trace(str(out))
    assert {e.pid for e in t.events if e.pid is not None} == {1, 2, 3}
    assert not [e for e in t.events if e.op == "touch"]


def test_cli_import_strace_bad_input(tmp_path, capsys):
    assert main(["import-strace", str(tmp_path / "missing.log"), "-o",
                 str(tmp_path / "x.jsonl")]) == 2
    assert "missing.log: no such file" in capsys.readouterr().err
    assert main(["import-strace", str(DATA / "ls.log"), "-o",
                 str(tmp_path / "no" / "dir" / "x.jsonl")]) == 2
    assert "cannot write" in capsys.readouterr().err


def _strace_runs() -> bool:
    exe = shutil.which("strace")
    if exe is None:
        return False
    try:
        p = subprocess.run([exe, "-f", "-o", os.devnull, "/bin/true"],
                           capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0


needs_strace = pytest.mark.skipif(not _strace_runs(),
                                  reason="strace cannot run here (missing, or ptrace not permitted)")


@needs_strace
def test_record_true_end_to_end(tmp_path, capsys):
    out, log = tmp_path / "true.jsonl", tmp_path / "true.log"
    assert main(["record", "-o", str(out), "--keep-log", str(log), "--", "/bin/true"]) == 0
    err = capsys.readouterr().err
    assert "command /bin/true: exited with status 0" in err
    assert log.stat().st_size > 0
    t = read_trace(str(out))
    assert t.header["source"].startswith("strace import of true.log: ")
    assert "recorded: /bin/true exited with status 0" in t.header["source"]
    c = Counter(e.op for e in t.events)
    assert (c["spawn"], c["exit"]) == (1, 1) and c["mmap"] > 0
    replay(Kernel(), t)


@needs_strace
def test_record_reports_the_commands_status(tmp_path, capsys):
    out = tmp_path / "false.jsonl"
    assert main(["record", "-q", "-o", str(out), "--", "sh", "-c", "exit 3"]) == 0
    assert "exited with status 3" in read_trace(str(out)).header["source"]


def test_record_without_strace(tmp_path, capsys):
    code = main(["record", "-o", str(tmp_path / "x.jsonl"), "--strace",
                 str(tmp_path / "no-strace"), "--", "/bin/true"])
    assert code == 2
    err = capsys.readouterr().err
    assert "not found" in err and "apt-get install strace" in err
    assert main(["record", "-o", str(tmp_path / "x.jsonl")]) == 2


@needs_strace
def test_record_ctrl_c_stops_cleanly(tmp_path):
    """SIGINT to rmaplab (as Ctrl-C sends it) while the command runs: the
    command is stopped, the trace holds what was recorded, exit status 130."""
    import signal
    import sys
    import time
    out, log = tmp_path / "sleep.jsonl", tmp_path / "sleep.log"
    p = subprocess.Popen([sys.executable, "-m", "rmaplab.cli.main", "record", "-o", str(out),
                          "--keep-log", str(log), "--", "sleep", "60"],
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        # wait until sleep has been exec'ed and loaded (its libc is mapped)
        while "libc" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline and p.poll() is None
            time.sleep(0.1)
        time.sleep(0.5)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        assert time.monotonic() - t0 < 20
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert "interrupted" in err
    t = read_trace(str(out))
    assert "interrupted" in t.header["source"]
    assert t.events[0].op == "spawn" and any(e.op == "mmap" for e in t.events)
