"""The compare report: a card per claim, with its verdict, the figures it
rests on, a chart of that measure and the sweep that goes with it."""

from __future__ import annotations

import re

import pytest

from rmaplab.report.html import study_page
from rmaplab.report.study import (CASES, SWEEP_FANOUT, SWEEP_PRESSURE, SWEEP_VMAS, SWEEP_X, Job,
                                  run_job, verdicts)


def small_study() -> dict:
    jobs = [Job("swapout", s, (("workers", 4), ("pages", 96)), 256)
            for s in ("anon_vma", "anonmm", "pte_chain")]
    jobs += [Job("mremap", s, (("children", 2), ("pages", 32))) for s in ("anon_vma", "anonmm")]
    jobs += [Job("lowmem", s, (("vmas", 20), ("children", 4)))
             for s in ("anon_vma", "anonmm", "pte_chain")]
    jobs += [Job("fork", s, (("pages", 512), ("children", 2))) for s in ("anon_vma", "pte_chain")]
    jobs += [Job("fanout", s, (("children", 12), ("pages", 16)))
             for s in ("anon_vma", "anon_vma_chain")]
    return {(j.case, j.scheme): m for j, m in map(run_job, jobs)}


def study_html(res: dict) -> str:
    series = {}
    for c in (4, 8):
        for s in ("anon_vma", "anon_vma_chain"):
            m = run_job(Job("fanout", s, (("children", c), ("pages", 16))))[1]
            series.setdefault(s, []).append((c, m.as_dict()["walk_work_per_reclaimed"]))
    sweeps = {SWEEP_FANOUT: (SWEEP_X[SWEEP_FANOUT], "rmap work per reclaimed page", series)}
    cases = [(c.name, c.title, [res[(c.name, s)] for s in c.schemes if (c.name, s) in res])
             for c in CASES]
    return study_page("claims", verdicts(res), cases, sweeps)


@pytest.fixture(scope="module")
def study():
    return small_study()


def test_verdicts_carry_the_values_they_rest_on(study):
    vs = verdicts(study)
    fan = next(v for v in vs if v.case == "fanout")
    assert fan.values == {"anon_vma": study[("fanout", "anon_vma")].per_reclaimed(),
                          "anon_vma_chain": study[("fanout", "anon_vma_chain")].per_reclaimed()}
    assert fan.sweep == SWEEP_FANOUT
    low = next(v for v in vs if v.case == "lowmem")
    assert low.values["anonmm"] == study[("lowmem", "anonmm")].peak_bytes["i386"]
    assert low.sweep == SWEEP_VMAS
    assert next(v for v in vs if "swap-out" in v.claim).sweep == SWEEP_PRESSURE
    for v in vs:
        assert v.values and v.measure, v.claim
        # every figure in the text is one of the values
        for name, val in v.values.items():
            assert name in v.figures


def test_study_page_has_a_card_per_claim_with_its_charts(study):
    text = study_html(study)
    vs = verdicts(study)
    cards = re.findall(r"<section class='claim' id='c(\d+)'>(.*?)</section>", text, re.S)
    assert [int(i) for i, _ in cards] == list(range(1, len(vs) + 1))
    for (_, body), v in zip(cards, vs):
        assert ("supported</span>" if v.supported else "not supported</span>") in body
        imgs = re.findall(r"src='data:image/png;base64,", body)
        assert len(imgs) == (2 if v.sweep == SWEEP_FANOUT else 1), v.claim
        assert f"every measure of the case: {v.case}" in body
    assert "http" not in text
