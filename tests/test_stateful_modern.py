"""The scheme test kit (``rmaplab.check.kit``) on every registered scheme,
under both profiles: random programs of the system calls the modern profile
changes or adds (top-down mmap anywhere, MAP_FIXED_NOREPLACE, descriptors
opened r/w/rw, 6.17 multi-VMA mremap moves and shrinks, MREMAP_DONTUNMAP,
old_len 0 views, growth that merges, MADV_COLD and MADV_PAGEOUT,
fault-around, fork that skips VMAs without an anon_vma, MAP_POPULATE /
MAP_LOCKED / mlock population, VM_NORESERVE, the reclaim event) and the old
ones, on small memory with swap, with ``validate`` and
``check_rmap_complete`` after every step and a data oracle.

A failure prints a replayable program and the kit's trace of it.
``RMAPLAB_MODERN_EXAMPLES=N`` runs more examples per scheme (default 40);
``RMAPLAB_STATS=1`` prints what the programs did.
"""

from __future__ import annotations

import os
import textwrap

import pytest

from rmaplab.check.kit import KitFailure, check_scheme
from rmaplab.config import SCHEMES

EXAMPLES = int(os.environ.get("RMAPLAB_MODERN_EXAMPLES", "40") or 40)


@pytest.mark.parametrize("profile", ["modern", "2.6.7"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_kit_passes_every_scheme(scheme: str, profile: str) -> None:
    try:
        rep = check_scheme(scheme, examples=EXAMPLES if profile == "modern" else EXAMPLES // 2,
                           profile=profile)
    except KitFailure as e:
        pytest.fail(f"{e}\n{e.replay_hint}\n{e.trace}")
    if os.environ.get("RMAPLAB_STATS"):
        print(scheme, profile, dict(sorted(rep.outcomes.items())))
    assert rep.outcomes.get("mremap ok"), "no mremap succeeded: the rules miss the VMAs"
    assert rep.outcomes.get("touch w") and rep.outcomes.get("touch r")


BROKEN = '''
from rmaplab.rmap.{module} import {base}


class Broken({base}):
    """{base} whose walk misses the first VMA it finds."""
    name = "broken_{module}"

    def candidates(self, pfn):
        return iter(list(super().candidates(pfn))[1:])
'''


@pytest.mark.parametrize("module,base", [
    ("anon_vma", "AnonVmaScheme"), ("anon_vma_chain", "AnonVmaChainScheme"),
    ("anonmm", "AnonmmScheme"), ("pte_chain", "PteChainScheme"), ("none", "NoRmapScheme"),
    ("pure_anon_vma", "PureAnonVmaScheme")])
def test_a_walk_that_misses_a_mapping_fails_the_kit_with_a_replayable_trace(module, base,
                                                                            tmp_path):
    from rmaplab.cli.main import main
    path = tmp_path / f"broken_{module}.py"
    path.write_text(textwrap.dedent(BROKEN.format(module=module, base=base)))
    spec = f"{path}:Broken"
    with pytest.raises(KitFailure) as ei:
        check_scheme(spec, examples=200, debug_rmap=False)
    failure = ei.value
    assert "rmap walk" in str(failure.error) or "cannot reach" in str(failure.error)
    assert len(failure.events) < 40, "the failing program was not shrunk"
    trace = tmp_path / "fail.jsonl"
    trace.write_text(failure.trace)
    # the trace replays to the same broken invariant (exit 1: the model broke)
    assert main(["replay", str(trace), "--check", "--quiet", "--scheme", spec, "--profile", "modern",
                 "--mem", "192K", "--swap", "2048K"]) == 1
