"""The conformance corpus: one small trace per item of
docs/linux-6.18-observed.md (and a few more), written as code so each says
what it checks.

    python tests/conformance/corpus.py            # write the traces
    python tests/conformance/corpus.py --record   # ... and record the live kernel

``--record`` runs ``rmaplab conform`` on every trace with ``--save-run``
(root on Linux x86_64 with a C compiler), which writes
``recorded/NAME.kernel.jsonl`` for each trace: what the kernel did and
showed after every event. ``tests/test_conformance.py`` compares the model with
those recordings in CI, and with the live kernel when it can.

Addresses are pages of a window at ``X`` (16 TiB), far from the worker's
own mappings, except where an item is about where the kernel puts things.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
P = 4096
X = 0x1000_0000_0000


class T:
    """A trace being written."""

    def __init__(self, name: str, what: str) -> None:
        self.name, self.what = name, what
        self.ev: list[dict] = []
        self.tok = 0

    def _e(self, **kw) -> T:
        self.ev.append(kw)
        return self

    def spawn(self, pid=1):
        return self._e(op="spawn", pid=pid)

    def fork(self, pid, child):
        return self._e(op="fork", pid=pid, child=child)

    def exit(self, pid):
        return self._e(op="exit", pid=pid)

    def file(self, name, size):
        return self._e(op="file", name=name, size=size)

    def mmap(self, pid, page, n, prot="rw-", flags=("private", "anonymous", "fixed"), file=None,
             off=0, open=None, nbytes=None):
        f = None
        if file is not None:
            f = {"name": file, "offset": off * P}
            if open is not None:
                f["open"] = open
        return self._e(op="mmap", pid=pid, addr=None if page is None else X + page * P,
                       len=nbytes if nbytes is not None else n * P, prot=prot, flags=list(flags),
                       file=f)

    def munmap(self, pid, page, n):
        return self._e(op="munmap", pid=pid, addr=X + page * P, len=n * P)

    def mprotect(self, pid, page, n, prot):
        return self._e(op="mprotect", pid=pid, addr=X + page * P, len=n * P, prot=prot)

    def mremap(self, pid, page, old, new, flags=(), to=None):
        e = dict(op="mremap", pid=pid, addr=X + page * P, old_len=old * P, new_len=new * P,
                 flags=list(flags))
        if to is not None:
            e["new_addr"] = X + to * P
        return self._e(**e)

    def madvise(self, pid, page, n, advice):
        return self._e(op="madvise", pid=pid, addr=X + page * P, len=n * P, advice=advice)

    def mlock(self, pid, page, n):
        return self._e(op="mlock", pid=pid, addr=X + page * P, len=n * P)

    def w(self, pid, page, n=1):
        self.tok += 1
        return self._e(op="touch", pid=pid, addr=X + page * P, len=n * P, access="w",
                       token=f"{self.name}.{self.tok}")

    def r(self, pid, page, n=1):
        return self._e(op="touch", pid=pid, addr=X + page * P, len=n * P, access="r")

    def reclaim(self, n):
        return self._e(op="reclaim", pages=n)

    def cp(self, name):
        return self._e(op="checkpoint", name=name)

    def text(self) -> str:
        head = {"format": "rmaplab-trace", "version": 1, "page_size": P,
                "source": f"rmaplab conformance corpus: {self.what}"}
        return "\n".join(json.dumps(e) for e in [head, *self.ev]) + "\n"


ANON = ("private", "anonymous", "fixed")
SHANON = ("shared", "anonymous", "fixed")
PRIV = ("private", "fixed")
SHARED = ("shared", "fixed")


def corpus() -> list[T]:
    out = []

    def new(name, what):
        t = T(name, what)
        out.append(t)
        return t.spawn(1)

    # 1. pgoff of unfaulted VMAs follows them; faulted ones keep theirs
    t = new("01-pgoff-follows-move", "item 1: an unfaulted VMA moved beside a neighbour merges; "
            "a faulted one merges only back at its old place")
    t.mmap(1, 0, 2).mmap(1, 10, 2).mremap(1, 10, 2, 2, ["maymove", "fixed"], 2).cp("unfaulted")
    t.mmap(1, 20, 2).w(1, 20, 2).mremap(1, 20, 2, 2, ["maymove", "fixed"], 4).cp("faulted-moved")
    t.mremap(1, 4, 2, 2, ["maymove", "fixed"], 20).mmap(1, 22, 2).cp("faulted-back")

    # 2. faulted neighbours merge (find_mergeable_anon_vma)
    t = new("02-faulted-neighbours-merge", "item 2: A faulted, B of another prot faulted, "
            "prots made equal: one VMA; a new mapping beside a faulted VMA merges")
    t.mmap(1, 0, 2).w(1, 0).mmap(1, 2, 2, "rwx").w(1, 2).cp("two").mprotect(1, 2, 2, "rw-")
    t.cp("one").mmap(1, 4, 2).cp("grown")

    # 3. different anon_vmas block merging
    t = new("03-anon-vmas-block-merge", "item 3: regions faulted across a gap keep their "
            "anon_vmas; filling the gap merges with one side only")
    t.mmap(1, 0, 2).w(1, 0).mmap(1, 3, 2).w(1, 3).mmap(1, 2, 1).cp("filled")
    t.mprotect(1, 0, 5, "r--").mprotect(1, 0, 5, "rw-").cp("round-trip")
    t.munmap(1, 3, 2).mmap(1, 3, 2).mremap(1, 0, 3, 6, []).cp("grown")

    # 4. fork children refuse some merges
    t = new("04-fork-child-merges", "item 4: next to an inherited faulted VMA a child's new "
            "mapping stays separate; beside an unfaulted one it merges")
    t.mmap(1, 0, 2).w(1, 0, 2).mmap(1, 10, 2).fork(1, 2)
    for pid in (1, 2):
        t.mmap(pid, 2, 2).mmap(pid, 12, 2)
    t.mmap(2, 20, 2).mmap(2, 22, 2).cp("after")

    # 5. VM_ACCOUNT as a merge criterion
    t = new("05-vm-account", "item 5: written then r--: keeps ac, no merge with fresh r--; "
            "unwritten rw- made r-- drops ac and merges")
    t.mmap(1, 0, 2).w(1, 0).mprotect(1, 0, 2, "r--").mmap(1, 2, 2, "r--").cp("written")
    t.mmap(1, 10, 2).mprotect(1, 10, 2, "r--").mmap(1, 12, 2, "r--").cp("unwritten")
    t.mprotect(1, 0, 2, "rw-").cp("rw-again").mmap(1, 20, 2, "---").mmap(1, 22, 2, "r--").cp("ro")

    # 6. splits heal
    t = new("06-splits-heal", "item 6: mprotect of a middle part and back; one mprotect over "
            "compatible pieces; MAP_FIXED over the middle; munmap and refill; growth to a "
            "neighbour")
    t.mmap(1, 0, 6).w(1, 0, 6).mprotect(1, 2, 2, "r--").cp("split").mprotect(1, 2, 2, "rw-")
    t.cp("healed").mmap(1, 2, 2).cp("fixed-over").munmap(1, 2, 2).mmap(1, 2, 2).cp("refilled")
    t.mmap(1, 10, 2).mmap(1, 14, 2).mremap(1, 10, 2, 4, []).cp("grown-into-next")
    t.mmap(1, 20, 2, "r--").mmap(1, 22, 2).mmap(1, 24, 2, "r--").mprotect(1, 20, 6, "rw-")
    t.cp("one-mprotect")

    # 7. a faulted VMA merges into an unfaulted neighbour
    t = new("07-faulted-into-unfaulted", "item 7: on mprotect and on an mremap move, either side")
    t.mmap(1, 0, 2).mmap(1, 2, 2, "r--").w(1, 0).mprotect(1, 0, 2, "r--").cp("mprotect-prev")
    t.mmap(1, 10, 2, "r--").mmap(1, 12, 2).w(1, 12).mprotect(1, 12, 2, "r--").cp("mprotect-next")
    t.mmap(1, 20, 2).mmap(1, 30, 2).w(1, 30).mremap(1, 30, 2, 2, ["maymove", "fixed"], 22)
    t.cp("move-after").mmap(1, 42, 2).mmap(1, 50, 2).w(1, 50)
    t.mremap(1, 50, 2, 2, ["maymove", "fixed"], 40).cp("move-before")

    # 8. fault-around
    t = new("08-fault-around", "item 8: a read fault maps its 16-page window of cached pages, "
            "clipped to the VMA and EOF; write faults never fault around; shmem maps only pages "
            "it holds")
    t.file("fa", 40 * P).mmap(1, 0, 40, "r--", PRIV, file="fa").r(1, 20).cp("read")
    t.mmap(1, 50, 40, "rw-", PRIV, file="fa").w(1, 70).cp("write")
    t.file("short", 10 * P + 100).mmap(1, 103, 20, "r--", PRIV, file="short").r(1, 105)
    t.cp("clipped").mmap(1, 130, 16, "rw-", SHANON).w(1, 133).fork(1, 2).r(2, 138).cp("shmem")
    t.mmap(1, 150, 8, "r--", SHARED, file="fa").r(1, 151).cp("shared-file")

    # 9. the zero page
    t = new("09-zero-page", "item 9: a read of untouched private anonymous memory maps the "
            "zero page (no anon_vma); a write allocates; shared anonymous memory never uses it")
    t.mmap(1, 0, 4).r(1, 0, 2).cp("zero").w(1, 1).cp("written").mmap(1, 10, 2, "rw-", SHANON)
    t.r(1, 10).cp("shared").mmap(1, 20, 2).r(1, 20).w(1, 21).fork(1, 2).cp("forked")

    # 10. fork copies page tables only for VMAs with an anon_vma
    t = new("10-fork-copies-anon-only", "item 10: shared file and shared anonymous VMAs start "
            "empty in the child; a private file VMA with an anon_vma keeps its cache ptes after "
            "MADV_DONTNEED")
    t.file("f", 8 * P).mmap(1, 0, 4, "rw-", SHARED, file="f").w(1, 0).r(1, 1)
    t.mmap(1, 10, 4, "rw-", SHANON).w(1, 10, 2).mmap(1, 20, 4, "rw-", PRIV, file="f")
    t.w(1, 20).r(1, 21).madvise(1, 20, 1, "dontneed").mmap(1, 30, 2, "r--", PRIV, file="f")
    t.r(1, 30).fork(1, 2).cp("forked").r(2, 0).r(2, 10).cp("child-faulted")

    # 11, 12. COW
    t = new("11-cow", "items 11-12: a write to a page mapped twice copies; a page no longer "
            "shared is reused in place; exclusive = map count 1")
    t.mmap(1, 0, 4).w(1, 0, 4).fork(1, 2).w(2, 0).w(1, 1).cp("copied").exit(2).w(1, 2).cp("reused")
    t.fork(1, 3).fork(3, 4).w(4, 3).cp("three")

    # 13. mremap basics
    t = new("13-mremap-basics", "item 13: growth in place; ENOMEM without MAYMOVE; a move "
            "top-down from mmap_base; shrink frees the tail; moves carry ptes; part of a VMA; "
            "prefix growth")
    t.mmap(1, 0, 2).w(1, 0, 2).mremap(1, 0, 2, 4, []).cp("grown").mmap(1, 4, 1)
    t.mremap(1, 0, 4, 6, []).mremap(1, 0, 4, 6, ["maymove"]).cp("moved-away")
    t.mmap(1, 10, 6).w(1, 10, 6).mremap(1, 10, 6, 3, []).cp("shrunk")
    t.mremap(1, 11, 1, 1, ["maymove", "fixed"], 30).cp("part-moved")
    t.mmap(1, 40, 4).mremap(1, 40, 2, 3, []).cp("prefix")

    # 14. 6.17 multi-VMA move and shrink
    t = new("14-mremap-multi-vma", "item 14: a move covering VMAs and holes keeps each VMA; "
            "growth across VMAs is EFAULT; old_len == new_len is a no-op; a shrink across VMAs "
            "cuts the VMA it ends in; a shrink of an unmapped range is EFAULT")
    t.mmap(1, 0, 2).w(1, 0, 2).mmap(1, 3, 2, "r--").mmap(1, 6, 1)
    t.mremap(1, 0, 7, 7, ["maymove", "fixed"], 20).cp("moved")
    t.mremap(1, 20, 3, 6, ["maymove"]).mremap(1, 20, 2, 2, ["maymove"])
    t.mremap(1, 20, 5, 1, []).cp("shrunk").mremap(1, 40, 2, 1, [])

    # 15. MREMAP_DONTUNMAP
    t = new("15-mremap-dontunmap", "item 15: the pages move, the source stays mapped and empty "
            "(a read gets the zero page); private file mappings too; EINVAL without MAYMOVE or "
            "with a size change")
    t.mmap(1, 0, 2).w(1, 0, 2).mremap(1, 0, 2, 2, ["maymove", "dontunmap"], 10).cp("moved")
    t.r(1, 0).r(1, 10, 2).cp("read").file("f", 4 * P).mmap(1, 20, 2, "rw-", PRIV, file="f")
    t.w(1, 20).mremap(1, 20, 2, 2, ["maymove", "dontunmap", "fixed"], 30).cp("file")
    t.mremap(1, 30, 2, 2, ["dontunmap"], 40).mremap(1, 30, 2, 3, ["maymove", "dontunmap"], 40)

    # 16. shared anonymous memory
    t = new("16-shared-anon", "item 16: each MAP_SHARED|MAP_ANONYMOUS mmap is its own object "
            "(no merge); growth beyond its size gives SIGBUS; old_len 0 makes a second view "
            "(EINVAL on a private mapping)")
    t.mmap(1, 0, 2, "rw-", SHANON).mmap(1, 2, 2, "rw-", SHANON).w(1, 0, 4).cp("two")
    t.mremap(1, 2, 2, 4, []).w(1, 4).mremap(1, 0, 0, 2, ["maymove", "fixed"], 10).r(1, 10, 2)
    t.cp("view").mmap(1, 20, 2).mremap(1, 20, 0, 2, ["maymove"])

    # 17. file VMAs and open file descriptions
    t = new("17-file-descriptions", "item 17: file VMAs merge only through one open file "
            "description with continuing offsets")
    t.file("f", 8 * P).mmap(1, 0, 2, "r--", PRIV, file="f", open="r")
    t.mmap(1, 2, 2, "r--", PRIV, file="f", off=2, open="r").mmap(1, 4, 2, "r--", PRIV, file="f",
                                                                 off=4)
    t.mmap(1, 6, 2, "r--", PRIV, file="f", off=0, open="r").cp("maps")

    # 18. descriptor modes
    t = new("18-descriptor-modes", "item 18: MAP_SHARED of a read-only descriptor: rw- EACCES, "
            "r-- loses VM_SHARED/VM_MAYWRITE, mprotect rw- EACCES; MAP_PRIVATE of O_RDONLY may be "
            "rw- and COWs; O_WRONLY: EACCES")
    t.file("f", 4 * P).mmap(1, 0, 1, "rw-", SHARED, file="f", open="r")
    t.mmap(1, 0, 1, "r--", SHARED, file="f", open="r").mprotect(1, 0, 1, "rw-")
    t.mmap(1, 2, 1, "rw-", PRIV, file="f", open="r").w(1, 2).r(1, 2)
    t.mmap(1, 4, 1, "r--", PRIV, file="f", open="w").mmap(1, 4, 1, "r--", SHARED, file="f",
                                                          open="w").cp("end")

    # 19. files and EOF
    t = new("19-eof", "item 19: a range beyond EOF maps and gives SIGBUS; a partial last page "
            "is readable; a 100-byte mmap maps one page")
    t.file("f", P + 100).mmap(1, 0, 4, "r--", PRIV, file="f").r(1, 0, 2).r(1, 2)
    t.mmap(1, 10, 1, "rw-", ANON, nbytes=100).w(1, 10).cp("end")

    # 20. errno and partial effects
    t = new("20-errno", "item 20: lengths 0, unaligned addresses and offsets, "
            "MAP_FIXED_NOREPLACE, partial mprotect and madvise before ENOMEM, mremap errnos, "
            "TASK_SIZE")
    t.mmap(1, 0, 0).munmap(1, 0, 0).mprotect(1, 0, 0, "r--").madvise(1, 0, 0, "dontneed")
    t.munmap(1, 100, 2).mmap(1, 0, 2).w(1, 0, 2)
    t._e(op="mmap", pid=1, addr=X + 5 * P + 1, len=P, prot="rw-", flags=list(ANON), file=None)
    t._e(op="mmap", pid=1, addr=X + 5 * P + 1, len=P, prot="rw-",
         flags=["private", "anonymous", "fixed_noreplace"], file=None)
    t.mmap(1, 1, 1, "rw-", ("private", "anonymous", "fixed_noreplace"))
    t.file("f", 4 * P)._e(op="mmap", pid=1, addr=X + 8 * P, len=P, prot="r--",
                         flags=list(PRIV), file={"name": "f", "offset": 100})
    t.mprotect(1, 0, 4, "r--").madvise(1, 0, 4, "dontneed").mprotect(1, 50, 1, "r--").cp("partial")
    t.mremap(1, 100, 1, 1, ["maymove"]).mremap(1, 0, 1, 0, []).mremap(1, 0, 1, 1, ["fixed"], 5)
    t.mremap(1, 0, 2, 2, ["maymove", "fixed"], 1).mremap(1, 0, 1, 1, ["maymove", "fixed"], 0)
    t._e(op="mmap", pid=1, addr=(1 << 47) - P, len=P, prot="rw-", flags=list(ANON), file=None)
    t._e(op="mmap", pid=1, addr=None, len=1 << 47, prot="rw-", flags=["private", "anonymous"],
         file=None)

    # 21. MADV_DONTNEED
    t = new("21-dontneed", "item 21: DONTNEED on a private file mapping drops the COW copies "
            "(the file reappears); on shared anonymous memory it only unmaps")
    t.file("f", 4 * P).mmap(1, 0, 2, "rw-", PRIV, file="f").w(1, 0).madvise(1, 0, 2, "dontneed")
    t.r(1, 0, 2).mmap(1, 10, 2, "rw-", SHANON).w(1, 10, 2).madvise(1, 10, 2, "dontneed")
    t.cp("dropped").r(1, 10, 2).cp("end")

    # 22. exit
    t = new("22-exit", "item 22: after exit the mappings are gone and map counts drop; children "
            "keep their pages")
    t.mmap(1, 0, 4).w(1, 0, 4).fork(1, 2).fork(2, 3).exit(2).cp("middle-gone").exit(1).cp("end")

    # more: the top-down layout, cold/pageout
    t = new("30-layout", "where mmap without an address goes: top-down below mmap_base, "
            "adjacent mappings merge, 2 MiB multiples are aligned")
    for n in (3, 1, 512, 2):
        t._e(op="mmap", pid=1, addr=None, len=n * P, prot="rw-", flags=["private", "anonymous"],
             file=None)
    t._e(op="mmap", pid=1, addr=None, len=4 * P, prot="rw-", flags=["shared", "anonymous"],
         file=None)
    t.cp("end")

    t = new("32-pageout", "MADV_COLD and MADV_PAGEOUT on pages mapped once and shared; the "
            "reclaim event")
    t.mmap(1, 0, 4).w(1, 0, 4).fork(1, 2).w(1, 3).madvise(1, 0, 4, "cold")
    t.madvise(1, 0, 4, "pageout").cp("paged-out").r(1, 3).cp("back")
    t.file("f", 4 * P).mmap(1, 10, 4, "r--", PRIV, file="f").r(1, 10, 4)
    t.madvise(1, 10, 4, "pageout").cp("file")
    t = new("33-mlock-across-a-merge", "mlock and munlock over a range whose changed part "
            "merges with its neighbour return 0 (a model bug the recorder found)")
    t.mmap(1, 0, 16).mlock(1, 8, 2).mlock(1, 0, 16).r(1, 0, 16).cp("locked")
    t.mmap(1, 20, 16)._e(op="munlock", pid=1, addr=X + 20 * P, len=16 * P).cp("end")
    return out


def main(argv: list[str]) -> int:
    traces = corpus()
    for t in traces:
        (HERE / f"{t.name}.jsonl").write_text(t.text())
    print(f"wrote {len(traces)} traces to {HERE}")
    if "--record" in argv:
        paths = [str(HERE / f"{t.name}.jsonl") for t in traces]
        (HERE / "recorded").mkdir(exist_ok=True)
        return subprocess.call([sys.executable, "-m", "rmaplab.cli.main", "conform", "--quiet",
                                "--save-run", str(HERE / "recorded"), *paths])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
