"""Terminal pictures for ``rmaplab show``, as rich ``Text`` lines.

- :func:`process_lines`: per process, one line per ``vm_area_struct``,
  its pages drawn one character per page (a VMA wider than the drawing
  puts several pages in a character and says how many);
- :func:`rmap_lines`: the selected scheme's structures (``struct
  anon_vma`` and its list, the anon_vma_chain tree, ``struct pte_chain``
  blocks, anonmm bundles, the 2.4 mm list), from the scheme's
  ``describe()``;
- :func:`page_lines`: one page's ``struct page`` fields, its reverse map
  and the places an rmap walk from it looks, with the walk's cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from rich.text import Text

from rmaplab.asm.page import PAGE_SHIFT
from rmaplab.show.state import ANON, FILE, KINDS, NONE, SWAP, ZERO, Row, Summary, expand, process_rows

#: the characters of a page, and the legend printed under a drawing
LEGEND = ("pages: - no pte, A anonymous, F page cache, 2-9 a frame mapped that many times"
          " (* 10 or more), z zero page, s swapped out")
SHARED_CHARS = "23456789*"
STYLES = {NONE: "grey50", ANON: "blue", FILE: "green", ZERO: "cyan", SWAP: "magenta", "?": "red"}
SHARED_STYLE = "bold yellow"
_ASCII = np.array([ord(c) for c in KINDS], dtype=np.uint8)


def page_chars(row: Row, mapcount: np.ndarray) -> np.ndarray:
    """One ASCII code per page of ``row``: its kind, or for a frame mapped
    more than once the number of ptes mapping it (``mapcount``: the frame
    table's, indexed by pfn)."""
    kinds, refs = expand(row)
    out = _ASCII[kinds]
    present = (kinds == KINDS.index(ANON)) | (kinds == KINDS.index(FILE))
    if present.any():
        mc = mapcount[refs[present]]
        shared = np.where(mc >= 10, ord("*"), ord("0") + np.minimum(mc, 9)).astype(np.uint8)
        out[present] = np.where(mc > 1, shared, out[present])
    return out


def squeeze(chars: np.ndarray, width: int) -> tuple[str, int]:
    """At most ``width`` characters for ``chars``: each character stands
    for ``per`` pages and shows the commonest of them. Returns the string
    and ``per``."""
    n = len(chars)
    per = max(1, -(-n // max(1, width)))
    if per == 1:
        return chars.tobytes().decode(), 1
    cells = [chr(int(np.bincount(chars[i:i + per], minlength=128).argmax()))
             for i in range(0, n, per)]
    return "".join(cells), per


def styled(chars: str) -> Text:
    """The drawing with a colour per kind (shared frames stand out)."""
    t = Text()
    i = 0
    while i < len(chars):
        j = i
        while j < len(chars) and chars[j] == chars[i]:
            j += 1
        c = chars[i]
        t.append(chars[i:j], style=SHARED_STYLE if c in SHARED_CHARS else STYLES.get(c, ""))
        i = j
    return t


def _row_key(row: Row, drawing: str, per: int) -> tuple:
    return (row.start, row.end, row.perms, row.file, drawing, per)


def _pid_label(pids: list[int]) -> str:
    if len(pids) == 1:
        return f"pid {pids[0]}"
    return f"pid {pids[0]}-{pids[-1]}"


def _av_label(avs: list[int | None]) -> str:
    known = [a for a in avs if a is not None]
    if not known:
        return "-"
    if len(set(known)) == 1 and len(known) == len(avs):
        return f"av{known[0]}"
    return f"av{min(known)}..{max(known)}"


def process_lines(kernel: Any, pids: Iterable[int], width: int = 64,
                  max_groups: int | None = 16) -> list[Text]:
    """Each process's VMAs, one line each. Consecutive processes whose
    lines are the same but for their anon_vma are drawn once, labelled
    with the pid range and how many they are."""
    mapcount = kernel.mem.mapcount
    groups: list[tuple[list[int], list[tuple], list[list[int | None]], list[tuple[str, int, Row]]]] = []
    for pid in pids:
        rows = process_rows(kernel, pid)
        drawn = [(*squeeze(page_chars(r, mapcount), width), r) for r in rows]
        key = [_row_key(r, d, per) for d, per, r in drawn]
        avs = [r.anon_vma for r in rows]
        if groups and groups[-1][1] == key:
            groups[-1][0].append(pid)
            for col, av in zip(groups[-1][2], avs):
                col.append(av)
        else:
            groups.append(([pid], key, [[a] for a in avs], drawn))
    out: list[Text] = []
    label_w = max((len(_pid_label(g[0])) for g in groups), default=5)
    shown = groups if max_groups is None else groups[:max_groups]
    for pids_, _, avcols, drawn in shown:
        label = _pid_label(pids_)
        count = f" ({len(pids_)} processes, drawn once)" if len(pids_) > 1 else ""
        if not drawn:
            out.append(Text(f"{label:<{label_w}}  no VMAs{count}"))
            continue
        for i, (chars, per, row) in enumerate(drawn):
            t = Text(f"{label if i == 0 else '':<{label_w}}  ", style="bold" if i == 0 else "")
            t.append(f"{row.start:012x}-{row.end:012x} {row.perms} {_av_label(avcols[i]):>6}  ")
            t.append_text(styled(chars))
            note = f"  {row.npages} page{'s' if row.npages != 1 else ''}" + (
                f", {per} per char" if per > 1 else "")
            if row.file:
                note += f"  {row.file}"
            t.append(note + (count if i == 0 else ""), style="grey50")
            out.append(t)
    if max_groups is not None and len(groups) > max_groups:
        rest = groups[max_groups:]
        n = sum(len(g[0]) for g in rest)
        out.append(Text(f"... {n} more process{'es' if n != 1 else ''} not drawn "
                        f"(--pid PID to pick, --all for every one)", style="grey50"))
    return out


def _ref(r: dict[str, int]) -> str:
    return f"pid {r['pid']} vma#{r['vma']}"


def _refs(refs: list[dict[str, int]], total: int, shown: int = 6) -> str:
    parts = [_ref(r) for r in refs[:shown]]
    if total > len(parts):
        parts.append(f"... {total - len(parts)} more")
    return ", ".join(parts) if parts else "none"


def _meta(desc: dict[str, Any]) -> str:
    m = desc.get("metadata", {})
    return f"metadata {m.get('i386', 0):,} B i386, {m.get('x86_64', 0):,} B x86_64"


def rmap_lines(desc: dict[str, Any], max_lines: int = 12) -> list[Text]:
    """The scheme's structures, from ``scheme.describe()``."""
    name = desc.get("kind", "")
    out: list[Text] = []
    head = Text(f"rmap: {desc['scheme']}", style="bold")
    if name == "anon_vma":
        n = desc["nr_anon_vmas"]
        head.append(f"  {n} anon_vma{'s' if n != 1 else ''}, {_meta(desc)}", style="")
        out.append(head)
        for av in desc["anon_vmas"][:max_lines]:
            out.append(Text(f"  av{av['id']}: {av['pages']:,} pages point here; list of "
                            f"{av['nr_vmas']} VMA{'s' if av['nr_vmas'] != 1 else ''}, walk order: "
                            + _refs(av["vmas"], av["nr_vmas"])))
        _more(out, n, max_lines, "anon_vmas")
    elif name == "anon_vma_chain":
        n = desc["nr_anon_vmas"]
        head.append(f"  {n} anon_vma{'s' if n != 1 else ''}, {desc['nr_avcs']} AVC"
                    f"{'s' if desc['nr_avcs'] != 1 else ''}, {desc['walk']} walk, merge rule "
                    f"{desc['merge_rule']}, {_meta(desc)}", style="")
        out.append(head)
        avs = {a["id"]: a for a in desc["anon_vmas"]}
        kids: dict[int, list[int]] = {}
        for a in desc["anon_vmas"]:
            if a["parent"] != a["id"]:
                kids.setdefault(a["parent"], []).append(a["id"])
        order: list[tuple[int, int]] = []

        def visit(i: int, depth: int) -> None:
            order.append((i, depth))
            for c in kids.get(i, []):
                visit(c, depth + 1)
        for a in desc["anon_vmas"]:
            if a["parent"] == a["id"] or a["parent"] not in avs:
                visit(a["id"], 0)
        for i, depth in order[:max_lines]:
            a = avs[i]
            rel = "root" if a["root"] == a["id"] else f"parent av{a['parent']}, root av{a['root']}"
            out.append(Text(f"  {'  ' * depth}av{i} ({rel}): {a['pages']:,} pages, "
                            f"{a['num_children']} child{'ren' if a['num_children'] != 1 else ''}, used by "
                            f"{_refs(a['active'], a['num_active_vmas'], 3)}; tree of {a['nr_avcs']} "
                            f"AVC{'s' if a['nr_avcs'] != 1 else ''}: {_refs(a['avcs'], a['nr_avcs'], 4)}"))
        _more(out, n, max_lines, "anon_vmas")
        for c in desc["chains"][:max_lines]:
            chain = ", ".join(f"av{i}" for i in c["chain"])
            if c["nr_avcs"] > len(c["chain"]):
                chain += f", ... {c['nr_avcs'] - len(c['chain'])} more"
            out.append(Text(f"  chain of {_ref(c['vma'])} (anon_vma av{c['anon_vma']}): {chain}"))
        _more(out, desc["nr_chained"], max_lines, "chains")
    elif name == "pte_chain":
        lg = desc["longest"]
        head.append(f"  {desc['direct']} direct pages, {desc['chained']} chained in "
                    f"{desc['blocks']:,} blocks of {desc['nrpte']} slots"
                    + (f"; longest {lg['ptes']} ptes in {lg['blocks']} block{'s' if lg['blocks'] != 1 else ''}"
                       f" (pfn {lg['pfn']})"
                       if lg else "") + f", {_meta(desc)}", style="")
        out.append(head)
        for g in desc["groups"][:max_lines]:
            if g["form"] == "direct":
                out.append(Text(f"  {g['frames']:,} frames: PG_direct, the pte of pid {g['pids'][0]}"))
            else:
                pids = ", ".join(f"pid {p}" for p in g["pids"])
                more = ", ..." if g["ptes"] > len(g["pids"]) else ""
                out.append(Text(f"  {g['frames']:,} frames: a chain of {g['ptes']} ptes in "
                                f"{g['blocks']} block{'s' if g['blocks'] != 1 else ''} "
                                f"({pids}{more})"))
        _more(out, desc["nr_groups"], max_lines, "groups")
    elif name == "anonmm":
        nb = desc["nr_bundles"]
        head.append(f"  {nb} bundle{'s' if nb != 1 else ''}, {desc['nr_anonmms']} anonmms, "
                    f"{_meta(desc)}", style="")
        out.append(head)
        for b in desc["bundles"][:max_lines]:
            ring = " -> ".join(
                f"am{a['id']} ({'pid ' + str(a['pid']) if a['pid'] is not None else 'exited'}, "
                f"count {a['count']:,}, {a['pages']:,} pages)" for a in b["ring"][:4])
            if b["nr"] > 4:
                ring += f" -> ... {b['nr'] - 4} more"
            out.append(Text(f"  bundle of am{b['head']}: {ring}"))
        _more(out, desc["nr_bundles"], max_lines, "bundles")
    elif name == "none":
        pids = ", ".join(str(p) for p in desc["mms"][:12])
        if desc["nr_mms"] > 12:
            pids += f", ... {desc['nr_mms'] - 12} more"
        head.append(f"  no reverse map: a walk scans the page tables of all {desc['nr_mms']} "
                    f"mms (pids {pids or 'none'})", style="")
        out.append(head)
    else:
        out.append(head)
    return out


def _more(out: list[Text], total: int, shown: int, what: str) -> None:
    if total > shown:
        out.append(Text(f"  ... {total - shown} more {what}", style="grey50"))


def summary_line(s: Summary) -> Text:
    return Text(f"{s.processes} process{'es' if s.processes != 1 else ''}, {s.vmas} "
                f"VMA{'s' if s.vmas != 1 else ''}; frames: {s.frames_used:,} used, "
                f"{s.mapped:,} mapped, {s.shared:,} shared by 2+ ptes; swap: {s.swap_used:,} pages",
                style="grey50")


def page_lines(kernel: Any, pid: int, addr: int, limit: int = 24) -> list[Text]:
    """One page: its pte, ``struct page``, the reverse map that leads back
    from it, and every place an rmap walk from it looks (the walk of the
    completeness check, which visits what ``try_to_unmap`` would)."""
    from rmaplab.mm.mm_types import VM_IO
    mm = kernel.mm(pid)
    addr &= ~((1 << PAGE_SHIFT) - 1)
    vma = mm.find_vma(addr)
    if vma is None or vma.vm_start > addr or vma.vm_flags & VM_IO:
        raise LookupError(f"pid {pid} has no VMA at {addr:#x}")
    scheme = kernel.scheme
    out = [Text(f"page {addr:#x} of pid {pid}: in vma#{vma.serial} "
                f"{vma.vm_start:012x}-{vma.vm_end:012x}", style="bold")]
    pte = int(mm.pgd.get(addr >> PAGE_SHIFT))
    if not pte:
        out.append(Text("  no pte: never touched, or unmapped; no frame, nothing to walk"))
        return out
    if not pte & 1:
        entry = pte >> 12
        pfn = kernel.ctx.swapper_space.get(entry)
        out.append(Text(f"  pte: swap entry {entry}" + (
            f", still in the swap cache as pfn {pfn}" if pfn is not None else
            "; the page is only on swap: no frame, nothing to walk")))
        if pfn is None:
            return out
    else:
        pfn = pte >> 12
        out.append(Text(f"  pte: present, pfn {pfn}, {'writable' if pte & 2 else 'read-only'}"
                        f"{', young' if pte & 0x20 else ''}{', dirty' if pte & 0x40 else ''}"))
    if pfn == 0:
        out.append(Text("  the zero page: reserved, shared by every read fault, no reverse map"))
        return out
    d = scheme.describe_page(pfn)
    kind = scheme.describe(0).get("kind", "")
    out.append(Text(f"  struct page: mapcount {d['mapcount']}, mapping {_mapping(d)}, "
                    f"index {d['index']:#x}"))
    out.append(Text(f"  reverse map ({scheme.name}): {_leads(d, kind)}"))
    if d["kind"] == "none":
        return out
    visits = scheme.walk_visits(pfn, limit)
    found, cost = scheme.walk_cost(pfn)
    out.append(Text("  a walk from this page looks at:", style="bold"))
    for i, v in enumerate(visits, 1):
        where = _ref(v["vma"]) if v["vma"] else f"pid {v['pid']}"
        if v["addr"] is None:
            what = "the page lies outside this VMA: skipped" if v["vma"] else "nothing"
            if kind == "none":
                what = "scanned, no pte maps the page"
        else:
            what = f"pte at {v['addr']:#x} " + ("maps the page" if v["found"] else
                                                "does not map it")
        t = Text(f"  {i:>4}. {where:<22} ")
        t.append(what, style="green" if v["found"] else "grey50")
        out.append(t)
    if len(visits) >= limit:
        out.append(Text(f"        ... (first {limit} shown)", style="grey50"))
    shown = ", ".join(f"{k.replace('rmap_', '')} {v:,}" for k, v in cost.items() if k != "rmap_walks")
    out.append(Text(f"  found {len(found)} pte{'s' if len(found) != 1 else ''}; cost: {shown}"))
    return out


def _mapping(d: dict[str, Any]) -> str:
    if d["kind"] == "file":
        return f"file {d['file']}"
    if d["kind"] == "none":
        return "none"
    for key, prefix in (("anon_vma", "av"), ("anonmm", "am")):
        if d.get(key) is not None:
            return f"{prefix}{d[key]} | PAGE_MAPPING_ANON"
    return "PAGE_MAPPING_ANON only"


def _leads(d: dict[str, Any], scheme: str) -> str:
    """What the reverse map of a page leads to, for a scheme of this kind."""
    if d["kind"] == "file":
        return f"the file's i_mmap: {d['i_mmap']} VMA{'s' if d['i_mmap'] != 1 else ''} cover the page"
    if d["kind"] == "none":
        return "the page is not mapped"
    if scheme == "anon_vma":
        return f"page->mapping -> av{d.get('anon_vma')}, whose list holds {d.get('nr_vmas')} VMAs"
    if scheme == "anon_vma_chain":
        n = d.get("nr_avcs")
        return (f"page->mapping -> av{d.get('anon_vma')} (root av{d.get('root')}), whose tree "
                f"holds {n} AVC{'s' if n != 1 else ''}; the walk queries it at page->index")
    if scheme == "anonmm":
        owner = f"pid {d['owner']}" if d.get("owner") is not None else "an exited mm"
        return (f"page->mapping -> am{d.get('anonmm')} ({owner}) in the bundle of am{d.get('head')} "
                f"({d.get('ring')} mms); page->index is the virtual page number")
    if scheme == "pte_chain":
        if "direct" in d:
            return f"PG_direct: the one pte of pid {d['direct']['pid']} at {d['direct']['addr']:#x}"
        return (f"a chain of {d.get('nr_blocks')} struct pte_chain block"
                f"{'s' if d.get('nr_blocks') != 1 else ''} holding {d['mapcount']} pte addresses")
    if scheme == "none":
        return "nothing: the walk scans every process's page tables"
    return f"page->mapping {d['mapping']:#x}, page->index {d['index']:#x}"
