"""A reference model of what each process *sees* of its memory.

This is the oracle for the stateful tests: a deliberately naive model of
Linux 2.6.7/2.6.11 user-visible memory semantics. It knows nothing about
VMAs, page tables, anon_vmas or frames. Per process it keeps a dict from
virtual page number to a ``Page``: the page's protection, what backs it and
its private content. Backing objects (``Obj``) are declared files and the
shmem segments behind MAP_SHARED|MAP_ANONYMOUS; their content is shared by
every process and mapping that maps them.

Page kinds:

- ``ANON``    private anonymous memory (mmap, brk, mremap growth of either);
              content is private to the process (fork copies it).
- ``PRIVATE`` a MAP_PRIVATE file mapping: shows the file's current content
              until the process writes (or a write prefault breaks COW),
              then holds a private copy; MADV_DONTNEED drops the copy.
- ``SHARED``  a MAP_SHARED mapping of a file or a shmem segment: every read
              and write goes to the object.

Accesses beyond the end of the object (file EOF, or the size of a shmem
segment that mremap grew) give SIGBUS.

Three system calls need a fact only the address-space layout knows: where
the VMA holding a page ends (mremap's "cannot cross a VMA" and in-place
growth rules, and how far an mlock gets before failing). Those take a
callable ``vma_end(vpn) -> vpn`` that the test answers from the kernel's
layout *before* the call; the test separately checks that the kernel's
layout agrees with this model page by page (prot, kind, backing object and
offset, lock state), so the layout cannot drift unnoticed.

Every method that models a system call applies Linux's (possibly partial)
effect to the model and returns the expected result: a value, or an errno
name (``str`` starting with ``E``) wrapped in ``Err``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import count

ANON, PRIVATE, SHARED = "anon", "private", "shared"
PAGE = 4096


class _Unknown:
    """Content the reference cannot know (a write cut short by an OOM kill
    in a tiny-memory run): equal to anything."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


class Unpredictable(Exception):
    """The test generated an input whose outcome this model does not know."""


@dataclass(frozen=True)
class Err:
    errno: str


@dataclass(eq=False)
class Obj:
    """A declared file or a shmem segment; ``size`` in pages."""

    name: str
    size: int
    shmem: bool = False
    data: dict[int, object] = field(default_factory=dict)

    def read(self, index: int) -> object:
        if index in self.data:
            return self.data[index]
        return None if self.shmem else f"{self.name}:{index}"

    def __repr__(self) -> str:
        return f"<{'shmem' if self.shmem else 'file'} {self.name} {self.size}p>"


@dataclass(frozen=True)
class Page:
    prot: str                 # "rw-", "r--", ...
    kind: str                 # ANON, PRIVATE or SHARED
    obj: Obj | None = None    # backing object (None for ANON)
    index: int = 0            # page offset into obj
    own: bool = False         # holds a private copy (always True for ANON)
    token: object = None      # the private copy's content (None = zeros)
    locked: bool = False

    def content(self) -> object:
        return self.token if self.own else self.obj.read(self.index)  # type: ignore[union-attr]

    def beyond_eof(self) -> bool:
        return self.obj is not None and self.index >= self.obj.size

    def grown(self, k: int) -> Page:
        """A new page ``k`` pages after this one when its mapping grows
        (its content is not this page's)."""
        if self.kind == ANON:
            return replace(self, token=None)
        return replace(self, index=self.index + k, own=False, token=None)


@dataclass
class Proc:
    pages: dict[int, Page] = field(default_factory=dict)
    brk: int = 0


class RefModel:
    """The reference: processes, files and shmem segments."""

    def __init__(self, start_brk: int) -> None:
        self.start_brk = start_brk
        self.procs: dict[int, Proc] = {}
        self.files: dict[str, Obj] = {}
        self._shm_ids = count()

    # -- helpers -----------------------------------------------------------------

    def _unmap(self, p: Proc, vpn: int, n: int) -> None:
        for v in range(vpn, vpn + n):
            p.pages.pop(v, None)

    def mapped(self, pid: int, vpn: int, n: int = 1) -> list[bool]:
        pages = self.procs[pid].pages
        return [v in pages for v in range(vpn, vpn + n)]

    def _prefault(self, p: Proc, vpn: int, n: int) -> str | None:
        """``make_pages_present`` over ``[vpn, vpn+n)`` (one VMA): a write
        prefault where the VMA is writable (breaking COW of private file
        pages, the only visible effect), else a read prefault; needs
        VM_WRITE or VM_READ (get_user_pages). Returns None on success, else
        the errno mlock would report: EFAULT if no page was faulted, and the
        2.6.11 ``ret == len ? 0 : -1`` (EPERM) if some were."""
        first = p.pages[vpn]
        write = "w" in first.prot
        if not write and "r" not in first.prot:
            return "EFAULT"
        for v in range(vpn, vpn + n):
            pg = p.pages[v]
            if pg.beyond_eof():
                return "EFAULT" if v == vpn else "EPERM"
            if write and pg.kind == PRIVATE and not pg.own:
                p.pages[v] = replace(pg, own=True, token=pg.content())
        return None

    # -- processes ---------------------------------------------------------------

    def declare_file(self, name: str, size_bytes: int) -> None:
        self.files[name] = Obj(name, -(-size_bytes // PAGE))

    def spawn(self, pid: int) -> None:
        self.procs[pid] = Proc(brk=self.start_brk)

    def fork(self, pid: int, child: int) -> None:
        parent = self.procs[pid]
        self.procs[child] = Proc({v: replace(pg, locked=False) for v, pg in parent.pages.items()},
                                 parent.brk)

    def exec(self, pid: int) -> None:
        self.spawn(pid)

    def exit(self, pid: int) -> None:
        del self.procs[pid]

    # -- system calls --------------------------------------------------------------

    def mmap(self, pid: int, vpn: int, n: int, prot: str, shared: bool, file: str | None,
             index: int = 0, locked: bool = False) -> int:
        """A successful mmap of ``n`` pages at ``vpn`` (fixed, or where the
        kernel put a non-fixed one). ``file`` None is anonymous."""
        p = self.procs[pid]
        self._unmap(p, vpn, n)
        if file is None and shared:
            obj: Obj | None = Obj(f"shm{next(self._shm_ids)}", n, shmem=True)
            index = 0
        else:
            obj = None if file is None else self.files[file]
        kind = SHARED if shared else (ANON if obj is None else PRIVATE)
        for k in range(n):
            p.pages[vpn + k] = Page(prot, kind, obj, index + k, own=kind == ANON, locked=locked)
        if locked and prot != "---":
            self._prefault(p, vpn, n)       # mmap ignores the result
        return vpn

    def munmap(self, pid: int, vpn: int, n: int) -> int:
        self._unmap(self.procs[pid], vpn, n)
        return 0

    def mprotect(self, pid: int, vpn: int, n: int, prot: str) -> int | Err:
        """Pages from ``vpn`` up to the first hole change; a hole is ENOMEM."""
        pages = self.procs[pid].pages
        for v in range(vpn, vpn + n):
            if v not in pages:
                return Err("ENOMEM")
            pages[v] = replace(pages[v], prot=prot)
        return 0

    def madvise(self, pid: int, vpn: int, n: int, advice: str) -> int | Err:
        """Advice is applied VMA by VMA in address order; holes are skipped
        and reported as ENOMEM at the end; an error in a VMA stops there."""
        pages = self.procs[pid].pages
        hole = False
        for v in range(vpn, vpn + n):
            pg = pages.get(v)
            if pg is None:
                hole = True
                continue
            if advice == "dontneed":
                if pg.locked:
                    return Err("EINVAL")
                if pg.kind == ANON:
                    pages[v] = replace(pg, token=None)
                elif pg.kind == PRIVATE:
                    pages[v] = replace(pg, own=False, token=None)
            elif advice == "willneed":
                if pg.kind == ANON:
                    return Err("EBADF")
        return Err("ENOMEM") if hole else 0

    def mlock(self, pid: int, vpn: int, n: int, on: bool,
              vma_end: Callable[[int], int]) -> int | Err:
        """``do_mlock``: VMA by VMA; a VMA whose lock state changes is
        split to the range, (un)locked, and on mlock prefaulted; a failed
        prefault stops the call with the VMA left locked."""
        p = self.procs[pid]
        end = vpn + n
        v = vpn
        while v < end:
            if v not in p.pages:
                return Err("ENOMEM")
            e = min(vma_end(v), end)
            if p.pages[v].locked != on:
                for u in range(v, e):
                    p.pages[u] = replace(p.pages[u], locked=on)
                if on:
                    err = self._prefault(p, v, e - v)
                    if err:
                        return Err(err)
            v = e
        return 0

    def brk(self, pid: int, new: int) -> int:
        """``sys_brk``: returns the new break, or the old one on failure."""
        p = self.procs[pid]
        if new < self.start_brk:
            return p.brk
        newpg, oldpg = -(-new // PAGE), -(-p.brk // PAGE)
        if newpg < oldpg:
            self._unmap(p, newpg, oldpg - newpg)
        elif newpg > oldpg:
            if any(self.mapped(pid, oldpg, newpg + 1 - oldpg)):
                return p.brk
            for v in range(oldpg, newpg):
                p.pages[v] = Page("rw-", ANON, own=True)
        p.brk = new
        return new

    def mremap(self, pid: int, vpn: int, old_n: int, new_n: int, maymove: bool, fixed: bool,
               new_vpn: int | None, vma_end: Callable[[int], int],
               placed: Callable[[], int]) -> int | Err:
        """``do_mremap`` for ``new_n`` >= 1. ``placed()`` gives
        the address the kernel chose for a non-fixed move (the test checks
        it was a free range)."""
        p = self.procs[pid]
        if fixed:
            assert new_vpn is not None
            if not maymove:
                return Err("EINVAL")
            if new_vpn <= vpn < new_vpn + new_n or vpn <= new_vpn < vpn + old_n:
                return Err("EINVAL")
            self._unmap(p, new_vpn, new_n)
        if old_n >= new_n:
            self._unmap(p, vpn + new_n, old_n - new_n)
            if not fixed:
                return vpn
            old_n = new_n
        if vpn not in p.pages:
            return Err("EFAULT")
        end = vma_end(vpn)
        if vpn + old_n > end:
            return Err("EFAULT")
        base = p.pages[vpn]
        if vpn + old_n == end and not fixed and (old_n != new_n or not maymove):
            if not any(self.mapped(pid, end, vpn + new_n - end)):
                for k in range(old_n, new_n):
                    p.pages[vpn + k] = base.grown(k)
                if base.locked:
                    self._prefault(p, vpn + old_n, new_n - old_n)
                return vpn
        if not maymove:
            return Err("ENOMEM")
        if not fixed:
            new_vpn = placed()
            if any(self.mapped(pid, new_vpn, new_n)):
                raise AssertionError(f"mremap moved onto mapped pages at vpn {new_vpn:#x}")
        assert new_vpn is not None
        # (old_n == 0 is 2.6's "duplicate": a second mapping of the same
        # object and offset, nothing moved)
        moved = [p.pages[vpn + k] for k in range(old_n)]
        self._unmap(p, vpn, old_n)
        for k, pg in enumerate(moved):
            p.pages[new_vpn + k] = pg
        for k in range(old_n, new_n):
            p.pages[new_vpn + k] = base.grown(k)
        if new_n > old_n and base.locked:
            self._prefault(p, new_vpn + old_n, new_n - old_n)
        return new_vpn

    # -- the CPU ---------------------------------------------------------------------

    def touch_killed(self, pid: int, vpn: int, n: int, write: bool) -> None:
        """The OOM killer took ``pid`` during this touch: a write may have
        reached some shared pages of the range before it died."""
        pages = self.procs[pid].pages
        for v in range(vpn, vpn + n):
            pg = pages.get(v)
            if write and pg is not None and pg.kind == SHARED and not pg.beyond_eof():
                pg.obj.data[pg.index] = UNKNOWN  # type: ignore[union-attr]
        self.exit(pid)

    def touch(self, pid: int, vpn: int, n: int, write: bool,
              token: object) -> tuple[str, list[object] | None, int | None]:
        """Access pages in order; stop at the first signal. Returns
        (result, tokens read or None for a write, faulting vpn or None)."""
        pages = self.procs[pid].pages
        reads: list[object] = []
        for v in range(vpn, vpn + n):
            pg = pages.get(v)
            sig = None
            if pg is None or pg.prot == "---" or (write and "w" not in pg.prot):
                sig = "SIGSEGV"
            elif not write and "r" not in pg.prot and "x" not in pg.prot:
                # write-only: readable only if a pte happens to be present
                raise Unpredictable("read of a write-only page")
            elif pg.beyond_eof():
                sig = "SIGBUS"
            if sig:
                return sig, (None if write else reads), v
            if not write:
                reads.append(pg.content())
            elif pg.kind == SHARED:
                pg.obj.data[pg.index] = token  # type: ignore[union-attr]
            else:
                pages[v] = replace(pg, own=True, token=token)
        return "ok", (None if write else reads), None
