"""rmaplab smp: the simulation's laws (no waiting on one CPU, linear in the
costs, never slower with more CPUs when nothing is shared), the lock
behaviours on hand-made tasks, the cost file, and bad input.

Every time here is simulated time; nothing is timed on the wall clock.
"""

from __future__ import annotations

import json

import pytest

from rmaplab.cli.main import main
from rmaplab.errors import ConfigError
from rmaplab.report.smp import (CostTable, SimError, build_tasks, load_costs, parse_variants,
                                probe, run_smp, simulate)
from rmaplab.report.smp.claims import _events, forkstorm_case, ptl_case
from rmaplab.report.smp.eras import DEFAULT_ERA, ERAS, Variant
from rmaplab.report.smp.ops import Builder
from rmaplab.report.smp.sim import Op, Simulation
from rmaplab.rmap import registry
from rmaplab.workloads.generators import WORKLOADS

PAGE = 4096
BASE = 0x2AAAAAAAB000


def _workload(name: str, **params: int) -> list:
    return _events(WORKLOADS[name].generate(seed=1, **params), name)


@pytest.fixture(scope="module")
def small_aim7() -> list:
    return _workload("aim7", N=6, M=32, chunk=8, reads=2)


@pytest.fixture(scope="module")
def storm() -> list:
    return _events(forkstorm_case(users=8, rounds=2, vmas=4), "storm")


def _independent(procs: int = 6, pages: int = 24) -> list:
    """Processes that share nothing: spawned, each its own memory."""
    ev: list[dict] = []
    for p in range(1, procs + 1):
        a = BASE + p * 4096 * PAGE
        ev += [{"op": "spawn", "pid": p},
               {"op": "mmap", "pid": p, "addr": a, "len": pages * PAGE, "prot": "rw-",
                "flags": ["private", "anonymous", "fixed"], "file": None},
               {"op": "touch", "pid": p, "addr": a, "len": pages * PAGE, "access": "w", "token": "x"},
               {"op": "mprotect", "pid": p, "addr": a + PAGE, "len": PAGE, "prot": "r--"},
               {"op": "touch", "pid": p, "addr": a, "len": PAGE, "access": "r"},
               {"op": "munmap", "pid": p, "addr": a, "len": pages * PAGE},
               {"op": "exit", "pid": p}]
    return _events(ev, "independent")


#: the built-in schemes (other tests register plugins, some broken on purpose)
BUILTIN = [n for n in registry.names() if n in DEFAULT_ERA]
ALL = parse_variants("all", BUILTIN)


# -- the laws --------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["aim7", "storm", "ptl"])
def test_on_one_cpu_no_lock_is_ever_waited_for(case, small_aim7, storm):
    events, mem = {"aim7": (small_aim7, None), "storm": (storm, None),
                   "ptl": (_events(ptl_case(workers=3, pages=32, rounds=3, reclaim=32), "ptl"),
                           160)}[case]
    for r in run_smp(events, ALL, [1], mem_pages=mem):
        assert r.locks, r.variant
        for cls, s in r.locks.items():
            assert s["contended"] == 0 and s["wait_ns"] == 0, (r.variant, cls, s)
            assert s["trylock_failed"] == 0, (r.variant, cls, s)
        assert r.lock_wait_ns() == 0
        # one CPU does all the work and nothing else
        assert r.time_ns == pytest.approx(r.work_ns)


@pytest.mark.parametrize("cpus", [1, 3, 8])
def test_doubling_every_cost_doubles_the_time(storm, cpus):
    costs = CostTable()
    for v in (Variant("anon_vma_chain", ERAS["rwsem"]), Variant("anon_vma_chain", ERAS["mutex"]),
              Variant("pte_chain", ERAS["2.6.6"])):
        recs = probe(storm, v.scheme)
        one = simulate(build_tasks(recs, Builder(v.scheme, v.era, costs)), v, cpus, costs)
        two = simulate(build_tasks(recs, Builder(v.scheme, v.era, costs.scaled(2))), v, cpus,
                       costs.scaled(2))
        assert two.time_ns == 2 * one.time_ns, v.name
        # (lock figures are reported to 0.1 ns)
        assert two.lock_wait_ns() == pytest.approx(2 * one.lock_wait_ns(), abs=1.0), v.name


def test_more_cpus_never_slow_a_workload_that_shares_no_lock():
    events = _independent()
    for v in ALL:
        res = run_smp(events, [v], [1, 2, 3, 4, 6, 8])
        times = [r.time_ns for r in res]
        assert all(b <= a for a, b in zip(times, times[1:])), (v.name, times)
        # pte_chain's page locks are simulated per stripe of 8 frames, which
        # two processes' frames can share (a departure docs/smp.md names)
        waits = [r.lock_wait_ns(c) for r in res for c in r.locks if c != "pte_chain"]
        assert not any(waits), v.name
        assert times[-1] < times[0]


def test_work_is_conserved_across_cpu_counts(small_aim7):
    v = Variant("anon_vma", ERAS["2.6.7"])
    a, b = run_smp(small_aim7, [v], [1, 4])
    assert a.work_ns == b.work_ns > 0
    assert b.time_ns < a.time_ns


# -- locks on hand-made tasks --------------------------------------------------------------

def _costs(**kw: float) -> CostTable:
    base = {"lock_handoff": 10.0, "context_switch": 1000.0, "spin_cap": 50.0}
    base.update(kw)
    return CostTable(base)


def _two_holders(key: tuple, hold: float, cpus: int, era: str) -> Simulation:
    sim = Simulation(cpus, ERAS[era], _costs())
    steps = [("l", key, "w", [("w", hold)], False)]
    sim.run({"a": [Op(0, "x", steps)], "b": [Op(1, "x", steps)]})
    return sim


def test_a_contended_spinlock_shows_the_wait_and_the_handoff():
    sim = _two_holders(("ptl", 1), 100.0, 2, "2.6.7")
    st = sim.lock_stats["ptl"]
    assert st.contended == 1 and st.wait_ns == 100.0 and st.spin_ns == 100.0
    assert sim.env.now == 100.0 + 10.0 + 100.0
    # a lock of its own for each: no wait
    sim = Simulation(2, ERAS["2.6.7"], _costs())
    sim.run({"a": [Op(0, "x", [("l", ("ptl", 1), "w", [("w", 100.0)], False)])],
             "b": [Op(1, "x", [("l", ("ptl", 2), "w", [("w", 100.0)], False)])]})
    assert sim.lock_stats["ptl"].contended == 0 and sim.env.now == 100.0


def test_a_sleeping_fifo_lock_costs_the_waiter_a_context_switch():
    # the 3.8 rwsem: the waiter sleeps, is handed the lock, is switched back in
    sim = _two_holders(("anon_vma", 1), 100.0, 2, "rwsem")
    st = sim.lock_stats["anon_vma"]
    assert st.contended == 1 and st.spin_ns == 0
    assert st.wait_ns == 100.0 + 1000.0
    assert sim.env.now == 100.0 + 1000.0 + 10.0 + 100.0


def test_an_adaptive_lock_spins_while_its_owner_runs():
    # the mutex: the owner is on a CPU, so the waiter spins (within spin_cap)
    sim = _two_holders(("anon_vma", 1), 40.0, 2, "mutex")
    st = sim.lock_stats["anon_vma"]
    assert st.wait_ns == 40.0 and st.spin_ns == 40.0
    # ... and sleeps once it has spun spin_cap
    sim = _two_holders(("anon_vma", 1), 400.0, 2, "mutex")
    assert sim.lock_stats["anon_vma"].spin_ns == 50.0
    assert sim.lock_stats["anon_vma"].wait_ns == 400.0 + 1000.0


def test_readers_share_an_rwsem_and_a_trylock_gives_up():
    sim = Simulation(2, ERAS["rwsem-read"], _costs())
    read = [("l", ("anon_vma", 1), "r", [("w", 100.0)], False)]
    sim.run({"a": [Op(0, "x", read)], "b": [Op(1, "x", read)]})
    assert sim.lock_stats["anon_vma"].contended == 0 and sim.env.now == 100.0
    sim = Simulation(2, ERAS["2.6.7"], _costs())
    sim.run({"a": [Op(0, "x", [("l", ("ptl", 1), "w", [("w", 100.0)], False)])],
             "b": [Op(1, "x", [("l", ("ptl", 1), "w", [("w", 100.0)], True)])]})
    st = sim.lock_stats["ptl"]
    assert st.trylock_failed == 1 and st.wait_ns == 0 and sim.env.now == 100.0


def test_a_sleeping_lock_under_a_spinlock_is_refused():
    sim = Simulation(1, ERAS["rwsem"], _costs())
    bad = [("l", ("ptl", 1), "w", [("l", ("anon_vma", 1), "w", [("w", 1.0)], False)], False)]
    with pytest.raises(SimError, match="under a spinlock"):
        sim.run({"a": [Op(0, "x", bad)]})


def test_dependencies_order_fork_child_and_reaping(storm):
    v = Variant("anon_vma_chain", ERAS["spin"])
    tasks = build_tasks(probe(storm, v.scheme), Builder(v.scheme, v.era, CostTable()))
    ops = {op.id: (name, op) for name, lst in tasks.items() for op in lst}
    forks = [op for _, op in ops.values() if op.kind == "fork"]
    exits = [op for _, op in ops.values() if op.kind == "exit"]
    # every child's first event waits for its fork; users wait for their children's exits
    firsts = [lst[0] for name, lst in tasks.items() if name != "pid 1"]
    assert all(any(ops[d][1].kind == "fork" for d in op.deps) for op in firsts)
    # (the last round's exits are followed by nothing of their parents')
    reaped = sum(1 for _, op in ops.values() for d in op.deps if ops[d][1].kind == "exit")
    assert reaped == len(exits) - 8 == 8
    assert len(forks) == 8 + 16


def test_a_contended_root_lock_shows_wait_on_many_cpus(storm):
    v_rw, v_m = Variant("anon_vma_chain", ERAS["rwsem"]), Variant("anon_vma_chain", ERAS["mutex"])
    rw, m = run_smp(storm, [v_rw, v_m], [8])
    assert rw.locks["anon_vma"]["contended"] > 0 and rw.lock_wait_ns("anon_vma") > 0
    # the FIFO rwsem makes its waiters sleep: more wait than the spinning mutex
    assert rw.lock_wait_ns("anon_vma") > m.lock_wait_ns("anon_vma")


def test_trylock_walks_skip_busy_page_tables_in_2_6_7():
    events = _events(ptl_case(workers=4, pages=32, rounds=4, reclaim=48), "ptl")
    res = run_smp(events, [Variant("anon_vma", ERAS["2.6.7"]), Variant("anon_vma", ERAS["2.6.9"])],
                  [8], mem_pages=192)
    tried, spun = res
    # 2.6.7 skips a busy mm where 2.6.9 spins on its lock
    assert tried.locks["ptl"]["trylock_failed"] > 0
    assert spun.locks["ptl"]["trylock_failed"] == 0
    assert spun.locks["ptl"]["contended"] > tried.locks["ptl"]["contended"]
    assert tried.by_op["reclaim"]["ptl"]["hold_ns"] > 0


# -- the cost file -------------------------------------------------------------------------

def test_a_cost_file_overrides_entries(tmp_path, small_aim7):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"op.fork": 1.0, "fault_anon": 5000}))
    c = load_costs(str(f))
    assert c["op.fork"] == 1.0 and c["fault_anon"] == 5000.0
    assert c.entries["fault_anon"].source == "file"
    assert c["fork_ptes"] == CostTable()["fork_ptes"]
    t = tmp_path / "c.toml"
    t.write_text("[costs]\n\"op.fork\" = 2.5\n")
    assert load_costs(str(t))["op.fork"] == 2.5
    v = Variant("anon_vma", ERAS["2.6.7"])
    (base,) = run_smp(small_aim7, [v], [1])
    (more,) = run_smp(small_aim7, [v], [1], costs=c)
    assert more.time_ns != base.time_ns


@pytest.mark.parametrize("text,why", [
    ('{"op.frok": 1}', "unknown cost 'op.frok'"),
    ('{"fault_anon": -3}', "non-negative"),
    ('{"fault_anon": "fast"}', "non-negative"),
    ('[1, 2]', "expected an object"),
    ('{"fault_anon": ', "not valid JSON"),
])
def test_a_bad_cost_file_is_one_line(tmp_path, text, why):
    f = tmp_path / "bad.json"
    f.write_text(text)
    with pytest.raises(ConfigError, match=why) as e:
        load_costs(str(f))
    assert "\n" not in str(e.value)


# -- variants and the command line ------------------------------------------------------------

def test_all_runs_every_scheme_and_every_anon_vma_chain_era():
    names = [v.name for v in ALL]
    assert {v.scheme for v in ALL} == set(BUILTIN) == set(DEFAULT_ERA)
    # a scheme rmaplab does not know runs under 2.6.9's rules
    assert parse_variants("all", BUILTIN + ["mine"])[-1].name == "mine@2.6.9"
    for era in ("spin", "mutex", "rwsem", "rwsem-read", "rwsem-steal", "rwsem-spin"):
        assert f"anon_vma_chain@{era}" in names
    assert parse_variants("anon_vma,anon_vma@2.6.9", registry.names())[1].era.name == "2.6.9"


@pytest.mark.parametrize("argv,why", [
    (["aim7", "--cpus", "0"], "--cpus"),
    (["aim7", "--cpus", "two"], "--cpus"),
    (["aim7", "--cpus", ","], "--cpus"),
    (["aim7", "--scheme", "anon_vmx"], "unknown scheme"),
    (["aim7", "--scheme", "anon_vma@rwsem"], "not anon_vma's"),
    (["aim7", "--scheme", "anon_vma_chain@3.0"], "unknown era"),
    (["aim7", "--costs", "/nonexistent/costs.json"], "cost file"),
    (["no-such-workload"], "neither a trace file nor a workload"),
    (["aim7", "-p", "N=-1"], "aim7"),
])
def test_bad_input_is_one_line(capsys, argv, why):
    assert main(["smp", *argv, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rmaplab: ") and why in err and "\n" not in err


def test_json_table_and_plot(capsys, tmp_path):
    args = ["smp", "aim7", "-p", "N=3", "-p", "M=16", "-p", "chunk=8", "--cpus", "1,2",
            "--scheme", "anon_vma,anon_vma_chain@rwsem", "-q"]
    assert main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(r["variant"], r["cpus"]) for r in out["results"]] == [
        ("anon_vma@2.6.7", 1), ("anon_vma@2.6.7", 2), ("anon_vma_chain@rwsem", 1),
        ("anon_vma_chain@rwsem", 2)]
    r = out["results"][0]
    assert r["throughput_per_s"] > 0 and "fork" in r["ops"] and "anon_vma" in r["locks"]
    png = tmp_path / "smp.png"
    assert main(args + ["-o", str(png)]) == 0
    text = capsys.readouterr().out
    assert "events per simulated ms" in text and "lock wait/event" in text
    assert png.read_bytes()[:4] == b"\x89PNG"


SMALL = {"aim7": {"N": 4, "M": 16, "chunk": 8}, "kbuild": {"jobs": 2, "compiles": 4, "headers": 8},
         "realloc": {"buffers": 2, "steps": 12}, "jit": {"regions": 8, "flips": 24},
         "shared_server": {"workers": 2, "size": 64, "private": 32, "ops": 4, "chunk": 8},
         "fork_chain": {"generations": 6, "pages": 8, "write": 2}}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_workload_runs_under_every_scheme(name):
    assert set(SMALL) == set(WORKLOADS)
    events = _workload(name, **SMALL[name])
    for r in run_smp(events, ALL, [1, 4], mem_pages=256 if name == "aim7" else None):
        assert r.events and r.time_ns > 0 and r.throughput > 0, r.variant
