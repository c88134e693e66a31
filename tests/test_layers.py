"""The layers of docs/design.md are one-way, and mm/ has no import cycle.

Every module under src/rmaplab is parsed (ast); every import of rmaplab
counts, those inside functions and under ``TYPE_CHECKING`` included (a
local import is how a cycle hides).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

#: rank of each top-level part of the package: a module may import only from
#: its own rank or below (docs/design.md, "Layers"). ``config`` names a
#: scheme through rmap's registry, and mm reads it: it sits between them.
RANK = {
    "cli": 8,
    "report": 7, "show": 7,
    "workloads": 6, "trace": 6,
    "check": 5,
    "kernel": 4,
    "mm": 3,
    "config": 2,
    "rmap": 1,
    "asm": 0, "include": 0, "errors": 0, "": 0,
}


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(name: str, tree: ast.AST, modules: set[str], is_package: bool = False) -> set[str]:
    """The rmaplab modules (or packages) ``tree`` imports, wherever in it;
    ``modules``: every module there is."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                mod = ".".join(base + ([mod] if mod else []))
            # ``from pkg import mod``: the submodule when there is one
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.add(sub if sub in modules else mod)
    return {m for m in out if m == "rmaplab" or m.startswith("rmaplab.")}


def _scan(src: Path = SRC) -> dict[str, set[str]]:
    files = sorted((src / "rmaplab").rglob("*.py"))
    modules = {module_name(p, src) for p in files}
    return {module_name(p, src): imports_of(module_name(p, src), ast.parse(p.read_text(), str(p)),
                                            modules, p.name == "__init__.py")
            for p in files}


def part(module: str) -> str:
    """The layer key of a module: ``rmaplab.mm.memory`` -> ``mm``."""
    return module.split(".")[1] if "." in module else ""


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports that go up a layer, and modules in no layer."""
    bad = []
    for mod, deps in sorted(graph.items()):
        if part(mod) not in RANK:
            bad.append(f"{mod} is in no layer of docs/design.md")
            continue
        for dep in sorted(deps):
            if RANK.get(part(dep), 99) > RANK[part(mod)]:
                bad.append(f"{mod} imports {dep} (layer {part(dep)!r} is above {part(mod) or 'rmaplab'!r})")
    return bad


def cycles(graph: dict[str, set[str]], prefix: str) -> list[list[str]]:
    """The import cycles among the modules under ``prefix`` (Tarjan's
    strongly connected components of more than one module, or a module
    importing itself)."""
    nodes = sorted(m for m in graph if m.startswith(prefix))
    succ = {m: sorted(d for d in graph[m] if d in graph and d.startswith(prefix)) for m in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in succ[v]:
                out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return out


GRAPH = _scan()


def test_every_package_is_scanned():
    assert {part(m) for m in GRAPH} >= {"cli", "report", "show", "workloads", "trace", "check",
                                        "kernel", "mm", "config", "rmap", "asm", "include", "errors"}
    assert "rmaplab.mm.swap_state" in GRAPH["rmaplab.mm.memory"]      # a plain import is seen
    assert "rmaplab.rmap.registry" in GRAPH["rmaplab.config"]         # so is one inside a function


def test_no_import_goes_up_a_layer():
    bad = upward_imports(GRAPH)
    assert not bad, "imports against docs/design.md's layers:\n" + "\n".join(bad)


def test_mm_has_no_import_cycle():
    found = cycles(GRAPH, "rmaplab.mm.")
    assert not found, "import cycles in mm/: " + "; ".join(" <-> ".join(c) for c in found)


def test_rmap_keeps_no_copy_of_mm_flags():
    """rmap reads vm_flags and page flags from rmaplab.include.mm, never
    from its own copies."""
    for p in sorted((SRC / "rmaplab" / "rmap").glob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        assert not t.id.lstrip("_").startswith(("VM_", "PG_")), \
                            f"{p.name} defines {t.id}: import it from rmaplab.include.mm"


def test_the_flags_are_one_object_in_every_layer():
    from rmaplab.include import mm as inc
    from rmaplab.mm import mm_types, page
    assert mm_types.VM_LOCKED is inc.VM_LOCKED and mm_types.VM_SPECIAL == inc.VM_SPECIAL
    assert page.PG_swapcache is inc.PG_swapcache and page.PAGE_MAPPING_ANON == 1


@pytest.mark.parametrize("graph,prefix,want", [
    ({"rmaplab.mm.a": {"rmaplab.mm.b"}, "rmaplab.mm.b": {"rmaplab.mm.a"}}, "rmaplab.mm.",
     [["rmaplab.mm.a", "rmaplab.mm.b"]]),
    ({"rmaplab.mm.a": {"rmaplab.mm.a"}}, "rmaplab.mm.", [["rmaplab.mm.a"]]),
    ({"rmaplab.mm.a": {"rmaplab.mm.b"}, "rmaplab.mm.b": {"rmaplab.mm.c"},
      "rmaplab.mm.c": {"rmaplab.mm.a", "rmaplab.rmap.x"}, "rmaplab.mm.d": {"rmaplab.mm.a"}},
     "rmaplab.mm.", [["rmaplab.mm.a", "rmaplab.mm.b", "rmaplab.mm.c"]]),
    ({"rmaplab.mm.a": {"rmaplab.mm.b"}, "rmaplab.mm.b": set()}, "rmaplab.mm.", []),
])
def test_the_cycle_finder_finds_cycles(graph, prefix, want):
    assert cycles(graph, prefix) == want


def test_the_layer_check_catches_an_upward_import(tmp_path):
    pkg = tmp_path / "rmaplab"
    for sub in ("rmap", "mm", "newpart"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "mm" / "a.py").write_text("import numpy\n")
    (pkg / "rmap" / "s.py").write_text("def f():\n    from rmaplab.mm.a import x\n")
    (pkg / "rmap" / "t.py").write_text("from ..mm import a\n")
    bad = upward_imports(_scan(tmp_path))
    assert any(b.startswith("rmaplab.rmap.s imports rmaplab.mm.a") for b in bad)
    assert any(b.startswith("rmaplab.rmap.t imports rmaplab.mm.a") for b in bad)
    assert any("rmaplab.newpart is in no layer" in b for b in bad)
    assert not any(b.startswith("rmaplab.mm.a") for b in bad)
