"""Bad input never gives a traceback: wild system-call arguments give an
errno (or a signal for touches) and leave a valid state; bad trace lines are
reported as FILE:LINE: reason."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmaplab.check import check_rmap_complete, validate
from rmaplab.cli.main import main
from rmaplab.config import Config
from rmaplab.errors import SyscallError
from rmaplab.kernel import Kernel

U64 = (1 << 64) - 1
P = 4096
wild = st.one_of(st.integers(0, 64).map(lambda n: n * P),
                 st.integers(0, U64),
                 st.sampled_from([0, 1, P - 1, P + 1, 1 << 47, (1 << 47) - P, U64 - P + 1,
                                  U64, 0x2AAAAAAAB000]))
prots = st.sampled_from(["rw-", "r--", "---", "rwx", "-w-", "--x"])
mflags = st.lists(st.sampled_from(["private", "shared", "anonymous", "fixed", "populate",
                                   "locked", "growsdown", "noreserve", "fixed_noreplace"]),
                  max_size=4, unique=True)
ops = st.one_of(
    st.tuples(st.just("mmap"), wild, wild, prots, mflags),
    st.tuples(st.just("munmap"), wild, wild),
    st.tuples(st.just("mprotect"), wild, wild, prots),
    st.tuples(st.just("mremap"), wild, wild, wild,
              st.lists(st.sampled_from(["maymove", "fixed"]), unique=True), wild),
    st.tuples(st.just("brk"), wild),
    st.tuples(st.just("madvise"), wild, wild,
              st.sampled_from(["dontneed", "willneed", "normal", "random", "sequential"])),
    st.tuples(st.just("mlock"), wild, wild),
    st.tuples(st.just("munlock"), wild, wild),
    st.tuples(st.just("touch"), wild, st.integers(0, 64 * P), st.sampled_from("rw")),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=12))
def test_wild_arguments_give_errnos_not_exceptions(calls):
    # A small ceiling keeps runaway MAP_LOCKED/mlock/populate cheap: the
    # OOM killer then takes the process (results "SIGKILL").
    k = Kernel(Config(max_mem_pages=1 << 14))
    k.spawn(1)
    k.declare_file("f", 3 * P)
    for op, *args in calls:
        if 1 not in k.pids():
            break                      # the OOM killer took it
        try:
            if op == "mmap":
                addr, length, prot, flags = args
                f = None if "anonymous" in flags else "f"
                k.mmap(1, addr, length, prot, flags, file=f)
            elif op == "touch":
                addr, length, access = args
                r = k.touch(1, addr, length, access, "t")
                assert r.result in ("ok", "SIGSEGV", "SIGBUS", "SIGKILL")
            else:
                getattr(k, op)(1, *args)
        except SyscallError:
            pass
        check_rmap_complete(k, validate(k))


def test_bad_trace_lines_are_reported_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"op": "spawn", "pid": 1}\n'
                   '{"op": "mmap", "pid": 1, "addr": null, "len": "12z", "prot": "rw-",'
                   ' "flags": ["private", "anonymous"], "file": null}\n')
    assert main(["replay", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:" in err and "Traceback" not in err


def test_runaway_locked_mapping_meets_the_oom_killer():
    """Unlimited memory still ends: a MAP_LOCKED mapping of 64 TiB faults
    until the model's ceiling, then the OOM killer takes the process."""
    k = Kernel(Config(max_mem_pages=1 << 12))
    k.spawn(1)
    k.spawn(2)
    k.mmap(2, None, 8 * P, "rw-", ["private", "anonymous"])
    assert k.mmap(1, None, 1 << 46, "rw-", ["private", "anonymous", "locked"]) == "SIGKILL"
    assert k.oom_killed == [1] and k.pids() == [2]
    validate(k)
    k.exit(2)
    from rmaplab.check import check_no_leaks
    check_no_leaks(k)


def test_growsdown_shared_anonymous_stays_in_i_mmap():
    """Found by the wild-argument test: a MAP_GROWSDOWN shared anonymous
    mapping grown down by a touch below it must move in its shmem file's
    i_mmap; pages below the file's offset 0 give SIGBUS; growth past
    RLIMIT_STACK (8 MiB) gives SIGSEGV."""
    k = Kernel()
    k.spawn(1)
    a = 0x4000_0000
    k.mmap(1, a, P, "rw-", ["shared", "anonymous", "growsdown", "fixed"])
    assert k.touch(1, a - P, 1, "r").result == "SIGBUS"     # grew, but offset -1
    validate(k)
    assert k.mm(1).mmap[0].vm_start == a - P
    assert k.touch(1, a - (16 << 20), 1, "r").result == "SIGSEGV"
    assert k.touch(1, a, P, "w", "x").result == "ok"
    validate(k)


def test_every_command_module_exists_and_a_missing_one_is_loud(monkeypatch):
    import pytest

    from rmaplab.cli import main as cli_main
    cli_main.build_parser()                       # every listed command imports and registers
    monkeypatch.setattr(cli_main, "COMMANDS", cli_main.COMMANDS + ("no_such_command",))
    with pytest.raises(ModuleNotFoundError, match="no_such_command"):
        cli_main.build_parser()
