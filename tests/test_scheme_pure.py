"""pure_anon_vma (the seed's rejected variant) and the scheme registry."""

from __future__ import annotations

import textwrap

import pytest

from conftest import P, addr, check, new_kernel, pfn_at, read, write
from rmaplab.config import Config
from rmaplab.errors import ConfigError
from rmaplab.kernel import Kernel
from rmaplab.rmap import registry
from rmaplab.rmap.pure_anon_vma import FILE_ANON


def _library(scheme: str, readers: int):
    """``readers`` processes map a 4-page file privately (a library's data);
    pid 1 writes page 1 (a COW copy)."""
    k = new_kernel(scheme=scheme)
    k.declare_file("lib.so", 4 * P)
    for pid in range(2, readers + 1):
        k.spawn(pid)
    for pid in range(1, readers + 1):
        k.mmap(pid, addr(0), 4 * P, "rw-", ["private", "fixed"], file="lib.so")
        read(k, 0, 4, pid=pid)
    write(k, 1, 1, "mine")
    return k


def test_private_file_vmas_get_no_anon_vma_and_cow_pages_point_at_the_file():
    k = _library("pure_anon_vma", 3)
    vma = k.mm(1).mmap[0]
    assert vma.anon_vma is None
    pfn = pfn_at(k, 1)
    assert int(k.mem.mapping[pfn]) == FILE_ANON | (vma.vm_file.id << 1) | 1
    anon = new_kernel(scheme="pure_anon_vma")
    anon.mmap(1, addr(0), P, "rw-", ["private", "anonymous", "fixed"])
    write(anon, 0)
    assert anon.mm(1).mmap[0].anon_vma is not None          # anonymous VMAs: 2.6.7's anon_vma
    check(k)
    check(anon)


@pytest.mark.parametrize("readers", [2, 8, 32])
def test_the_long_search_visits_every_mapping_of_the_file(readers):
    """Walking pid 1's COW page: anon_vma looks at pid 1's one VMA;
    pure_anon_vma at every private mapping of the file at that offset."""
    costs = {}
    for scheme in ("anon_vma", "pure_anon_vma"):
        k = _library(scheme, readers)
        pfn = pfn_at(k, 1)
        before = k.stat.rmap_vmas_visited
        found = k.scheme.rmap_walk(pfn)
        costs[scheme] = k.stat.rmap_vmas_visited - before
        assert found == [(k.mm(1), addr(1))]
        check(k)
    assert costs == {"anon_vma": 1, "pure_anon_vma": readers}


def test_cow_pages_of_file_vmas_survive_fork_swap_and_reclaim():
    k = Kernel(Config(scheme="pure_anon_vma", mem_pages=64, swap_pages=256))
    k.spawn(1)
    k.declare_file("lib.so", 8 * P)
    k.mmap(1, addr(0), 8 * P, "rw-", ["private", "fixed"], file="lib.so")
    write(k, 0, 8, "private")
    k.fork(1, 2)
    write(k, 0, 2, "child", pid=2)
    assert k.reclaim(64) > 0
    assert read(k, 0, 8) == ["private"] * 8
    assert read(k, 0, 8, pid=2) == ["child"] * 2 + ["private"] * 6
    check(k)


# -- the registry ----------------------------------------------------------------------------

PLUGIN = '''
from rmaplab.rmap.anon_vma import AnonVmaScheme


class MyScheme(AnonVmaScheme):
    """anon_vma, under another name."""
    name = "my_scheme"


class Broken(AnonVmaScheme):
    """A walk that misses the newest VMA of every list."""
    name = "broken_walk"

    def anon_candidates(self, pfn):
        found = list(super().anon_candidates(pfn))
        return iter(found[1:])
'''


def test_a_scheme_in_one_file_runs_and_a_broken_one_is_caught(tmp_path):
    path = tmp_path / "plugin.py"
    path.write_text(textwrap.dedent(PLUGIN))
    cfg = Config(scheme=f"{path}:MyScheme")
    assert cfg.scheme == "my_scheme" and cfg.scheme_spec.endswith(":MyScheme")
    assert "my_scheme" in registry.names()
    k = Kernel(cfg)
    k.spawn(1)
    k.mmap(1, addr(0), 2 * P, "rw-", ["private", "anonymous", "fixed"])
    write(k, 0, 2)
    k.fork(1, 2)
    check(k)
    bad = Kernel(Config(scheme=f"{path}:Broken", debug_rmap=False))
    bad.spawn(1)
    bad.mmap(1, addr(0), P, "rw-", ["private", "anonymous", "fixed"])
    write(bad, 0)
    with pytest.raises(AssertionError, match="rmap|walk|found"):
        check(bad)


def test_bad_scheme_specs_are_one_line_errors(tmp_path):
    (tmp_path / "x.py").write_text("class NotAScheme:\n    name = 'x'\n")
    for spec, why in [("nope", "unknown scheme"), (f"{tmp_path}/missing.py:C", "does not exist"),
                      (f"{tmp_path}/x.py:Missing", "has no class"),
                      (f"{tmp_path}/x.py:NotAScheme", "not a subclass")]:
        with pytest.raises(ConfigError, match=why):
            Config(scheme=spec)


def test_the_study_measures_the_seeds_verdict_on_private_file_copies():
    from rmaplab.report.study import CASES, Job, run_job, verdicts
    assert any(c.name == "privfile" and "pure_anon_vma" in c.schemes for c in CASES)
    res = {("privfile", s): run_job(Job("privfile", s, (("processes", 16),)))[1]
           for s in ("anon_vma", "pure_anon_vma")}
    (v,) = [v for v in verdicts(res) if v.case == "privfile"]
    assert v.supported is True
    a, b = v.values["anon_vma"], v.values["pure_anon_vma"]
    assert b > 2 * a
    # fewer anon_vmas: the variant's saving
    assert res[("privfile", "pure_anon_vma")].peak_bytes["i386"] < \
        res[("privfile", "anon_vma")].peak_bytes["i386"]
