"""The reverse-map graph of a scheme, laid out by graphviz.

``dot_source(scheme.describe())`` gives DOT text (built with the
``graphviz`` package); ``render_svgs`` runs graphviz's ``dot`` on many
graphs at once and returns SVG text. What each scheme's graph shows:

- ``anon_vma``: pages -> ``struct anon_vma`` -> its list of VMAs, in walk
  order (newest first), each VMA inside its process;
- ``anon_vma_chain``: ``struct anon_vma`` nodes with their ``parent``
  links, and per VMA its ``anon_vma_chain``: an AVC edge to every anon_vma
  whose interval tree it is in (the one ``vma->anon_vma`` names in bold);
- ``pte_chain``: frames grouped by the form of their reverse map, PG_direct
  or a chain of ``struct pte_chain`` blocks, -> the processes whose ptes
  it holds;
- ``anonmm``: each bundle's ring of ``struct anonmm``, the mm each belongs
  to, and the pages pointing at each;
- ``none``: the mm list a walk must scan.

Lists are cut to the ``limit`` the description was made with; a node
says how many more there are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

FONT = "Helvetica"
C_PAGES, C_OBJ, C_VMA, C_MM, C_MORE = "#fff2b3", "#cfe3f7", "#ffffff", "#e9e9e9", "#f6f6f6"


class GraphvizMissing(RuntimeError):
    """graphviz (the ``dot`` program or the Python package) is not installed."""


def _digraph(title: str, rankdir: str = "LR") -> Any:
    try:
        import graphviz
    except ImportError:
        raise GraphvizMissing("the graphviz Python package is not installed "
                              "(pip install graphviz)") from None
    g = graphviz.Digraph()
    g.attr(rankdir=rankdir, fontname=FONT, fontsize="11", label=title, labelloc="t",
           labeljust="l", bgcolor="transparent", nodesep="0.12", ranksep="0.3")
    g.attr("node", shape="box", style="rounded,filled", fillcolor=C_VMA, fontname=FONT,
           fontsize="9", height="0.3", margin="0.06,0.03")
    g.attr("edge", fontname=FONT, fontsize="8", arrowsize="0.6", color="#555555")
    return g


def _vmas(g: Any, refs: list[dict[str, int]]) -> None:
    """VMA nodes, each inside a cluster for its process."""
    by_pid: dict[int, list[dict[str, int]]] = {}
    for r in refs:
        by_pid.setdefault(r["pid"], [])
        if all(x["vma"] != r["vma"] for x in by_pid[r["pid"]]):
            by_pid[r["pid"]].append(r)
    for pid, rs in by_pid.items():
        with g.subgraph(name=f"cluster_pid{pid}") as c:
            c.attr(label=f"pid {pid}", style="rounded,dashed", color="#999999", fontsize="9")
            for r in rs:
                c.node(f"v{r['vma']}", f"vma#{r['vma']}\n{r['start']:x}-{r['end']:x}",
                       tooltip=f"pid {r['pid']} vma#{r['vma']} {r['start']:#x}-{r['end']:#x}")


def _more(g: Any, name: str, text: str, src: str | None = None) -> None:
    g.node(name, text, shape="plaintext", style="", fontcolor="#666666")
    if src is not None:
        g.edge(src, name, style="dotted", arrowhead="none")


def _pages(g: Any, obj: str, n: int) -> None:
    if n:
        g.node(f"p_{obj}", f"{n} page{'s' if n != 1 else ''}", shape="note",
               fillcolor=C_PAGES, style="filled")
        g.edge(f"p_{obj}", obj, label="mapping")


def _meta(desc: dict[str, Any]) -> str:
    m = desc.get("metadata", {})
    return f"metadata {m.get('i386', 0):,} B (i386), {m.get('x86_64', 0):,} B (x86_64)"


def dot_source(desc: dict[str, Any]) -> str:
    """DOT text of the scheme's structures (see the module docstring)."""
    kind = desc.get("kind", "")
    build: dict[str, Callable[[dict[str, Any]], Any]] = {
        "anon_vma": _anon_vma, "anon_vma_chain": _anon_vma_chain, "pte_chain": _pte_chain,
        "anonmm": _anonmm, "none": _none}
    if kind in build:
        return build[kind](desc).source
    return _digraph(f"{desc['scheme']}: {_meta(desc)} (the scheme describes no structures)").source


def _anon_vma(d: dict[str, Any]) -> Any:
    n = d["nr_anon_vmas"]
    g = _digraph(f"{d['scheme']}: {n} anon_vma{'s' if n != 1 else ''}; {_meta(d)}", "TB")
    refs = [r for av in d["anon_vmas"] for r in av["vmas"]]
    _vmas(g, refs)
    for av in d["anon_vmas"]:
        a = f"av{av['id']}"
        g.node(a, f"anon_vma av{av['id']}\n{av['nr_vmas']} VMAs on its list", shape="ellipse",
               fillcolor=C_OBJ)
        _pages(g, a, av["pages"])
        prev, label = a, "head"
        for r in av["vmas"]:
            g.edge(prev, f"v{r['vma']}", label=label)
            prev, label = f"v{r['vma']}", ""
        if av["nr_vmas"] > len(av["vmas"]):
            _more(g, f"more_{a}", f"... {av['nr_vmas'] - len(av['vmas'])} more VMAs", prev)
    if n > len(d["anon_vmas"]):
        _more(g, "more_av", f"... {n - len(d['anon_vmas'])} more anon_vmas")
    return g


def _anon_vma_chain(d: dict[str, Any]) -> Any:
    n = d["nr_anon_vmas"]
    g = _digraph(f"{d['scheme']}: {n} anon_vmas, {d['nr_avcs']} AVCs ({d['walk']} walk); "
                 f"{_meta(d)}")
    shown = {a["id"] for a in d["anon_vmas"]}
    _vmas(g, [c["vma"] for c in d["chains"]])
    for a in d["anon_vmas"]:
        node = f"av{a['id']}"
        root = " (root)" if a["root"] == a["id"] else ""
        g.node(node, f"anon_vma av{a['id']}{root}\n{a['nr_avcs']} AVCs, "
                     f"{a['num_children']} children, {a['num_active_vmas']} VMAs",
               shape="ellipse", fillcolor=C_OBJ)
        _pages(g, node, a["pages"])
        if a["parent"] != a["id"] and a["parent"] in shown:
            g.edge(node, f"av{a['parent']}", label="parent", style="dotted", color="#2060a0")
    for c in d["chains"]:
        v = f"v{c['vma']['vma']}"
        for av in c["chain"]:
            if av not in shown:
                continue
            own = av == c["anon_vma"]
            g.edge(v, f"av{av}", label="anon_vma" if own else "avc",
                   style="bold" if own else "dashed", color="#2060a0" if own else "#888888")
    if n > len(d["anon_vmas"]):
        _more(g, "more_av", f"... {n - len(d['anon_vmas'])} more anon_vmas")
    if d["nr_chained"] > len(d["chains"]):
        _more(g, "more_vma", f"... {d['nr_chained'] - len(d['chains'])} more VMAs with chains")
    return g


def _pte_chain(d: dict[str, Any]) -> Any:
    g = _digraph(f"{d['scheme']}: {d['direct']} direct pages, {d['chained']} chained in "
                 f"{d['blocks']:,} blocks; {_meta(d)}")
    mms: set[int] = set()
    for i, grp in enumerate(d["groups"]):
        node = f"g{i}"
        g.node(node, f"{grp['frames']} frame{'s' if grp['frames'] != 1 else ''}", shape="note",
               fillcolor=C_PAGES, style="filled")
        if grp["form"] == "direct":
            g.edge(node, f"mm{grp['pids'][0]}", label="pte.direct")
            mms.add(grp["pids"][0])
            continue
        blk = f"b{i}"
        g.node(blk, f"{grp['blocks']} struct pte_chain\n{grp['ptes']} pte addresses",
               shape="box3d", style="filled", fillcolor=C_OBJ)
        g.edge(node, blk, label="pte.chain")
        for pid in grp["pids"]:
            g.edge(blk, f"mm{pid}")
            mms.add(pid)
        if grp["ptes"] > len(grp["pids"]):
            _more(g, f"more_{blk}", f"... {grp['ptes'] - len(grp['pids'])} more ptes", blk)
    for pid in sorted(mms):
        g.node(f"mm{pid}", f"pid {pid}\npage tables", shape="folder", style="filled",
               fillcolor=C_MM)
    if d["nr_groups"] > len(d["groups"]):
        _more(g, "more_g", f"... {d['nr_groups'] - len(d['groups'])} more groups of frames")
    return g


def _anonmm(d: dict[str, Any]) -> Any:
    nb = d["nr_bundles"]
    g = _digraph(f"{d['scheme']}: {nb} bundle{'s' if nb != 1 else ''}, {d['nr_anonmms']} anonmms; "
                 f"{_meta(d)}")
    for b in d["bundles"]:
        ring = b["ring"]
        for a in ring:
            node = f"am{a['id']}"
            head = " (head)" if a["id"] == b["head"] else ""
            g.node(node, f"anonmm am{a['id']}{head}\ncount {a['count']}", shape="ellipse",
                   fillcolor=C_OBJ)
            _pages(g, node, a["pages"])
            if a["pid"] is not None:
                g.node(f"mm{a['pid']}", f"pid {a['pid']}\nmm", shape="folder", style="filled",
                       fillcolor=C_MM)
                g.edge(node, f"mm{a['pid']}", label="mm")
            else:
                g.node(f"x{a['id']}", "exited", shape="plaintext", style="", fontcolor="#999999")
                g.edge(node, f"x{a['id']}", label="mm", style="dotted")
        for x, y in zip(ring, ring[1:]):
            g.edge(f"am{x['id']}", f"am{y['id']}", label="ring", style="dashed",
                   color="#2060a0", constraint="false")
        if b["nr"] > len(ring):
            _more(g, f"more_b{b['head']}", f"... {b['nr'] - len(ring)} more in the ring",
                  f"am{ring[-1]['id']}")
    if d["nr_bundles"] > len(d["bundles"]):
        _more(g, "more_bundles", f"... {d['nr_bundles'] - len(d['bundles'])} more bundles")
    return g


def _none(d: dict[str, Any]) -> Any:
    g = _digraph(f"{d['scheme']}: no reverse map; a walk scans every page table of {d['nr_mms']} mms")
    prev = "mmlist"
    g.node(prev, "init_mm.mmlist", shape="plaintext", style="")
    for pid in d["mms"]:
        g.node(f"mm{pid}", f"pid {pid}\npage tables", shape="folder", style="filled",
               fillcolor=C_MM)
        g.edge(prev, f"mm{pid}")
        prev = f"mm{pid}"
    if d["nr_mms"] > len(d["mms"]):
        _more(g, "more_mm", f"... {d['nr_mms'] - len(d['mms'])} more mms", prev)
    return g


_COMMENT = re.compile(r"<!--.*?-->\n?", re.S)


def _clean(svg: str) -> str:
    """The ``<svg>`` element alone, without XML prologue or comments."""
    svg = _COMMENT.sub("", svg)
    return svg[svg.index("<svg"):].strip()


def render_svgs(sources: Sequence[str], jobs: int = 2,
                progress: Callable[[int], None] | None = None, batch: int = 24) -> list[str]:
    """SVG text of each DOT source, laid out by graphviz ``dot``; many
    graphs go to one ``dot`` run, and ``jobs`` runs go at once. Raises
    GraphvizMissing when ``dot`` cannot be run."""
    try:
        import graphviz
    except ImportError:
        raise GraphvizMissing("the graphviz Python package is not installed "
                              "(pip install graphviz)") from None
    chunks = [list(sources[i:i + batch]) for i in range(0, len(sources), batch)]

    def dot(data: str) -> str:
        try:
            return graphviz.pipe("dot", "svg", data.encode(), quiet=True).decode()
        except graphviz.ExecutableNotFound:
            raise GraphvizMissing("graphviz's 'dot' program was not found "
                                  "(Debian: apt-get install graphviz)") from None

    def run(chunk: list[str]) -> list[str]:
        # Many graphs to one dot: fast, but graphviz 2.43 sometimes breaks
        # down on a sequence it lays out fine one by one; then one by one,
        # and a graph dot cannot lay out says so in its place.
        try:
            svgs = [_clean(s + "</svg>") for s in dot("\n".join(chunk)).split("</svg>") if "<svg" in s]
            if len(svgs) == len(chunk):
                return svgs
        except graphviz.CalledProcessError:
            pass
        out = []
        for src in chunk:
            try:
                out.append(_clean(dot(src)))
            except (graphviz.CalledProcessError, ValueError) as e:
                out.append(_failed(str(e).splitlines()[0][:200]))
        return out

    out: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        for svgs in ex.map(run, chunks):
            out.extend(svgs)
            if progress is not None:
                progress(len(out))
    return out


def _failed(why: str) -> str:
    """An SVG that says graphviz could not draw this graph."""
    from html import escape
    return ("<svg xmlns='http://www.w3.org/2000/svg' width='420' height='40'><text x='6' y='24' "
            f"font-size='12' fill='#b00020'>graphviz could not lay out this graph: {escape(why)}"
            "</text></svg>")


def dot_available() -> bool:
    """Can graphviz's ``dot`` be run?"""
    try:
        render_svgs(["digraph{}"])
    except (GraphvizMissing, OSError, RuntimeError):
        return False
    return True
