"""Conformance: what the model did against what a live kernel did.

The two sides are state dumps in the format of ``docs/trace-format.md``
(the live side with the "Live-kernel runs" differences: real page frame
numbers, map counts from ``/proc/kpagecount``, no pgoff for anonymous VMAs,
no anon_vma) plus each event's result. ``compare_states`` reduces both to
what Linux lets a user see and returns the first difference in each
category:

- ``result``: the value each system call returned (the caller compares
  these, ``compare_results``);
- ``layout``: the VMAs of each process (start, end, permissions, file,
  the file offset of file VMAs, and the VmFlags both sides can name);
- ``present``: which pages have a pte, and whether it maps a frame or a
  swap entry;
- ``sharing``: which present pages share one frame (frame numbers are
  compared only through the partition they make, since the model's are its
  own);
- ``mapcount``: each present page's map count and whether it is the zero
  page;
- ``data``: the content of each present page, and what read touches read.

Nothing here runs a kernel: ``rmaplab.trace.live`` does, and
``rmaplab.cli.conform`` puts the pieces together.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PAGE = 4096

#: the categories, in the order reports list them
CATEGORIES = ("result", "layout", "present", "sharing", "mapcount", "data")

#: VmFlags (``/proc/PID/smaps``) both the model and the kernel can name
COMPARED_VMFLAGS = ("rd", "wr", "ex", "sh", "mr", "mw", "me", "ms", "gd", "lo", "ac", "nr")


@dataclass
class Divergence:
    """The first difference in one category."""

    category: str
    event: int                  # index of the event after which it was seen
    line: int
    op: str
    pid: int | None
    what: str                   # one line: what differs
    kernel: Any = None          # the kernel's value
    model: Any = None           # the model's value
    picture: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


# -- results ----------------------------------------------------------------------------

def compare_results(kernel: dict, model: dict) -> tuple[str | None, str | None]:
    """(what differs in the result, what differs in the data read), each
    None when equal. The objects are result lines of the results file."""
    res = data = None
    if kernel.get("result") != model.get("result"):
        res = f"{model['op']} returned {_show(kernel.get('result'))} on the kernel, " \
              f"{_show(model.get('result'))} in the model"
    if kernel.get("read") != model.get("read"):
        k, m = kernel.get("read") or [], model.get("read") or []
        i = next((i for i, (a, b) in enumerate(zip(k, m)) if a != b), min(len(k), len(m)))
        data = (f"read touch: page {i} reads {_show(k[i] if i < len(k) else None)} on the kernel, "
                f"{_show(m[i] if i < len(m) else None)} in the model")
    return res, data


def _show(v: Any) -> str:
    if isinstance(v, int) and v > 0xffff:
        return hex(v)
    return repr(v) if isinstance(v, str) else str(v)


# -- states -----------------------------------------------------------------------------

def _vma_key(m: dict) -> tuple:
    """What a user can see of a VMA on both sides."""
    pgoff = m["pgoff"] if m.get("file") is not None else None
    flags = tuple(f for f in m.get("vmflags", ()) if f in COMPARED_VMFLAGS)
    return (m["start"], m["end"], m["perms"], m.get("file"), pgoff, flags)


def _pages(state: dict) -> dict[tuple[int, int], dict]:
    return {(p["pid"], pg["addr"]): pg for p in state["processes"] for pg in p["pages"]}


def _by_pid(state: dict) -> dict[int, dict]:
    return {p["pid"]: p for p in state["processes"]}


def _share_labels(pages: dict[tuple[int, int], dict]) -> dict[tuple[int, int], tuple[int, int]]:
    """Each present non-zero page → the first (pid, addr) mapping its frame:
    the sharing partition, independent of frame numbering."""
    first: dict[Any, tuple[int, int]] = {}
    out = {}
    for key in sorted(pages):
        pg = pages[key]
        if pg["state"] != "present" or pg.get("zero_page") or pg.get("frame") is None:
            continue
        out[key] = first.setdefault(pg["frame"], key)
    return out


def compare_states(kernel: dict, model: dict, have_frames: bool = True,
                   have_mapcount: bool = True) -> dict[str, tuple[str, int | None, int | None]]:
    """Per category (layout, present, sharing, mapcount, data): the first
    difference as (what, pid, address) — or no entry when the two agree.
    ``have_frames``/``have_mapcount``: False when the kernel side could
    not read frame numbers or map counts (not root)."""
    out: dict[str, tuple[str, int | None, int | None]] = {}
    kp, mp = _by_pid(kernel), _by_pid(model)
    if sorted(kp) != sorted(mp):
        out["layout"] = (f"processes: kernel {sorted(kp)}, model {sorted(mp)}", None, None)
    for pid in sorted(set(kp) & set(mp)):
        kv = [_vma_key(m) for m in kp[pid]["maps"]]
        mv = [_vma_key(m) for m in mp[pid]["maps"]]
        if kv != mv and "layout" not in out:
            i = next((i for i, (x, y) in enumerate(zip(kv, mv)) if x != y), min(len(kv), len(mv)))
            kvma = kv[i] if i < len(kv) else None
            mvma = mv[i] if i < len(mv) else None
            first = kvma or mvma
            assert first is not None
            out["layout"] = (f"VMA {i}: kernel {_fmt_vma(kvma)}, model {_fmt_vma(mvma)}", pid,
                             first[0])
    kpg, mpg = _pages(kernel), _pages(model)
    for key in sorted(set(kpg) | set(mpg)):
        a, b = kpg.get(key), mpg.get(key)
        pid, addr = key
        if "present" not in out and (a is None or b is None or a["state"] != b["state"]):
            out["present"] = (f"page {addr:#x}: kernel {_pte(a)}, model {_pte(b)}", pid, addr)
        if a is None or b is None or a["state"] != "present" or b["state"] != "present":
            continue
        if "mapcount" not in out and have_mapcount and (
                a.get("zero_page") != b.get("zero_page")
                or (not a.get("zero_page") and a.get("mapcount") != b.get("mapcount"))):
            out["mapcount"] = (f"page {addr:#x}: kernel {_mc(a)}, model {_mc(b)}", pid, addr)
        if "data" not in out and not a.get("zero_page") and not b.get("zero_page") \
                and a.get("token") != b.get("token"):
            out["data"] = (f"page {addr:#x} holds {_show(a.get('token'))} on the kernel, "
                           f"{_show(b.get('token'))} in the model", pid, addr)
    if have_frames:
        ks, ms = _share_labels(kpg), _share_labels(mpg)
        for key in sorted(set(ks) & set(ms)):
            if ks[key] != ms[key]:
                pid, addr = key
                out["sharing"] = (f"page {addr:#x} of pid {pid} shares its frame with "
                                  f"pid {ks[key][0]} {ks[key][1]:#x} on the kernel, "
                                  f"pid {ms[key][0]} {ms[key][1]:#x} in the model", pid, addr)
                break
    return out


def _fmt_vma(k: tuple | None) -> str:
    if k is None:
        return "none"
    start, end, perms, f, pgoff, flags = k
    s = f"{start:#x}-{end:#x} {perms}"
    if f is not None:
        s += f" {f}@{pgoff}"
    return s + (" [" + " ".join(flags) + "]" if flags else "")


def _pte(p: dict | None) -> str:
    if p is None:
        return "no pte"
    if p["state"] == "swap":
        return "swapped"
    return "the zero page" if p.get("zero_page") else "present"


def _mc(p: dict) -> str:
    return "the zero page" if p.get("zero_page") else f"map count {p.get('mapcount')}"


# -- pictures -----------------------------------------------------------------------------

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def window(kernel: dict, model: dict, pid: int, addr: int,
           max_pages: int = 64) -> tuple[int, int]:
    """(base, pages): the VMAs around ``addr`` on either side, with a page
    of margin, clipped to ``max_pages`` centred on ``addr``."""
    lo, hi = addr - PAGE, addr + 2 * PAGE
    for st in (kernel, model):
        for m in _by_pid(st).get(pid, {}).get("maps", ()):
            if m["start"] - PAGE <= addr < m["end"] + PAGE:
                lo, hi = min(lo, m["start"] - PAGE), max(hi, m["end"] + PAGE)
    lo = max(lo, addr - (max_pages // 2) * PAGE, 0)
    return lo, min((hi - lo) // PAGE, max_pages)


def draw_process(state: dict, pid: int, base: int, npages: int) -> tuple[str, str]:
    """Two rows, one character per page of ``[base, base + npages)``: the
    VMAs (a letter each in order of appearance, '.' where nothing is
    mapped) and the ptes ('-' none, 'z' the zero page, 's' a swap entry,
    else the frame's map count, '+' above 9)."""
    proc = _by_pid(state).get(pid, {"maps": [], "pages": []})
    pages = {pg["addr"]: pg for pg in proc["pages"]}
    vma_row, pte_row = [], []
    names: dict[int, str] = {}
    for i in range(npages):
        a = base + i * PAGE
        m = next((m for m in proc["maps"] if m["start"] <= a < m["end"]), None)
        if m is None:
            vma_row.append(".")
            pte_row.append(" ")
            continue
        vma_row.append(names.setdefault(m["start"], _LETTERS[len(names) % len(_LETTERS)]))
        pg = pages.get(a)
        if pg is None:
            pte_row.append("-")
        elif pg["state"] == "swap":
            pte_row.append("s")
        elif pg.get("zero_page"):
            pte_row.append("z")
        else:
            mc = pg.get("mapcount")
            pte_row.append("?" if mc is None else str(mc) if mc < 10 else "+")
    return "".join(vma_row), "".join(pte_row)


def picture(kernel: dict, model: dict, pid: int | None, addr: int | None) -> list[str]:
    """Both sides of one process drawn one character per page, ruler first."""
    if pid is None or addr is None:
        return []
    base, n = window(kernel, model, pid, addr)
    kv, kp = draw_process(kernel, pid, base, n)
    mv, mp = draw_process(model, pid, base, n)
    ruler = "".join(str(i % 10) for i in range(n))
    return [f"pid {pid} from {base:#x}", f"             {ruler}",
            f"kernel vma   {kv}", f"       pte   {kp}",
            f"model  vma   {mv}", f"       pte   {mp}"]
