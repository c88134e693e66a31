"""The ptrace recorder (``rmaplab.trace.ptrace_record``) and ``rmaplab record``.

Two kinds of test:

- Without ptrace: the seccomp filter (run by a small classic-BPF
  interpreter), the comparison of two pagemap readings, runs of touches,
  the address space rebuilt from a stored ``/proc/PID/maps``, and stored
  recordings (tests/data/ptrace/, README.md there says how they were made)
  replayed on the model.
- Real programs recorded here (skipped, with the reason, where this process
  may not ptrace a child): /bin/true, a shell pipeline, Python importing
  modules and forking, gcc compiling a file, and C programs compiled by the
  test whose every page access is known (tests/data/ptrace/pages.c,
  threads.c).

Nothing here depends on timing or on the addresses a run gets.
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest

from rmaplab.cli.main import main
from rmaplab.config import Config
from rmaplab.kernel import Kernel
from rmaplab.trace import ptrace_sys as ps
from rmaplab.trace.live import Vma
from rmaplab.trace.ptrace_record import (MODEL_START_BRK, TRACED, changed_pages, exec_layout,
                                         record, touch_runs)
from rmaplab.trace.reader import NO_EXPECT, parse_trace, read_trace
from rmaplab.trace.replay import replay

DATA = Path(__file__).parent / "data" / "ptrace"
P = 4096

_why = ps.unavailable_reason()
needs_ptrace = pytest.mark.skipif(_why is not None, reason=f"cannot record: {_why}")
needs_cc = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                              reason="no C compiler (cc or gcc) to build the test programs")


def modern_replay(trace):
    """Replay on the modern profile; the mismatching result objects."""
    res: list[dict] = []
    replay(Kernel(Config(profile="modern")), trace, results=res.append)
    return [r for r in res if r.get("match") is False]


# -- the seccomp filter -----------------------------------------------------------------------

def run_bpf(prog, arch: int, nr: int) -> int:
    """Classic BPF, the instructions the filter uses, over seccomp_data."""
    data = {0: nr, 4: arch}
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        if code == 0x20:                    # ld w abs
            acc = data[k]
            pc += 1
        elif code == 0x15:                  # jeq k
            pc += 1 + (jt if acc == k else jf)
        elif code == 0x06:                  # ret k
            return k
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")


def test_seccomp_filter_traces_exactly_the_memory_and_process_calls():
    numbers = [ps.NR[n] for n in TRACED]
    prog = ps.seccomp_program(numbers)
    for nr in range(0, 500):
        want = ps.SECCOMP_RET_TRACE if nr in numbers else ps.SECCOMP_RET_ALLOW
        assert run_bpf(prog, ps.AUDIT_ARCH_X86_64, nr) == want, nr
    # another ABI (i386: 0x40000003) is let through untraced
    assert run_bpf(prog, 0x40000003, ps.NR["mmap"]) == ps.SECCOMP_RET_ALLOW
    assert {"mmap", "munmap", "mprotect", "mremap", "brk", "madvise", "mlock", "mlock2",
            "munlock", "clone", "clone3", "fork", "vfork", "execve", "exit",
            "exit_group"} <= set(TRACED)


# -- comparing pagemap readings ---------------------------------------------------------------

PRESENT, SWAP, FILE, EXCL, SD = ps.PM_PRESENT, ps.PM_SWAP, ps.PM_FILE, ps.PM_EXCLUSIVE, ps.PM_SOFT_DIRTY
ZERO = 0x3B30


def reading(entries: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    pages = sorted(entries)
    return np.array(pages, np.uint64), np.array([entries[p] for p in pages], np.uint64)


def changes(old: dict[int, int], new: dict[int, int], zero=ZERO, soft_dirty=False):
    op, oe = reading(old)
    p, e = reading(new)
    sel, written = changed_pages(op, oe, p, e, zero, soft_dirty)
    return {int(p[i]): ("w" if w else "r") for i, w in zip(sel, written)}


def test_changed_pages_new_pages_reads_and_writes():
    new = {
        10: PRESENT | EXCL | 0x1000,        # a new anonymous page of its own: written
        11: PRESENT | ZERO,                 # the zero page: read
        12: PRESENT | FILE | 0x2000,        # page cache: read (fault or fault-around)
        13: SWAP | 0x55,                    # swapped, not present: not a touch
    }
    assert changes({}, new) == {10: "w", 11: "r", 12: "r"}


def test_changed_pages_compares_with_the_last_reading():
    old = {10: PRESENT | EXCL | 0x1000, 11: PRESENT | ZERO, 12: PRESENT | FILE | 0x2000,
           14: PRESENT | 0x4000, 15: SWAP | 0x77, 16: PRESENT | FILE | 0x6000}
    new = {
        10: PRESENT | EXCL | 0x1000,        # unchanged: no touch
        11: PRESENT | EXCL | 0x3000,        # zero page replaced by a page: written
        12: PRESENT | EXCL | 0x5000,        # file page copied on write: written
        14: PRESENT | EXCL | 0x8000,        # shared after fork, now a copy: written
        15: PRESENT | EXCL | 0x9000,        # swapped in: read
        16: PRESENT | FILE | 0x7000,        # page cache page re-read on another frame: read
    }
    assert changes(old, new) == {11: "w", 12: "w", 14: "w", 15: "r", 16: "r"}
    # pages that went away make no touches
    assert changes(old, {10: old[10]}) == {}


def test_changed_pages_without_frame_numbers_uses_exclusive_mapping():
    """Not root: pagemap shows no frames; an exclusively mapped anonymous
    page is a page of its own, the zero page is mapped by everyone."""
    new = {1: PRESENT | EXCL, 2: PRESENT}
    assert changes({}, new, zero=None) == {1: "w", 2: "r"}
    # after fork: a shared page that is this process's own now was copied on write
    old = {1: PRESENT, 2: PRESENT, 3: PRESENT | FILE}
    new = {1: PRESENT | EXCL, 2: PRESENT, 3: PRESENT | FILE | EXCL}
    assert changes(old, new, zero=None) == {1: "w"}


def test_changed_pages_soft_dirty_sees_rewrites():
    old = {1: PRESENT | EXCL | 0x1000, 2: PRESENT | FILE | 0x2000}
    new = {1: PRESENT | EXCL | 0x1000 | SD, 2: PRESENT | FILE | 0x2000}
    assert changes(old, new, soft_dirty=True) == {1: "w"}
    assert changes(old, new, soft_dirty=False) == {}     # without soft-dirty: invisible


def test_touch_runs_cut_at_gaps_vmas_and_access():
    pages = np.array([1, 2, 3, 5, 6, 7, 8], np.uint64)
    written = np.array([1, 1, 0, 0, 0, 0, 0], bool)
    vma = np.array([0, 0, 0, 0, 0, 1, 1])
    assert touch_runs(pages, written, vma) == [(0, 2), (2, 3), (3, 5), (5, 7)]
    assert touch_runs(np.empty(0, np.uint64), np.empty(0, bool), np.empty(0, int)) == []


# -- the address space execve built, from stored maps -----------------------------------------

def stored_maps(name: str) -> tuple[list[Vma], int]:
    """A /proc/PID/maps saved at an exec, and the start_brk saved with it."""
    text = (DATA / name).read_text()
    vmas = []
    start_brk = None
    for line in text.splitlines():
        if line.startswith("# start_brk "):
            start_brk = int(line.split()[2], 16)
            continue
        col = line.split(maxsplit=5)
        lo, _, hi = col[0].partition("-")
        if int(lo, 16) >= 1 << 63:              # [vsyscall]: not a VMA (read_vmas)
            continue
        vmas.append(Vma(int(lo, 16), int(hi, 16), col[1], int(col[2], 16), int(col[4]),
                        col[5] if len(col) > 5 else "", []))
    assert start_brk is not None
    return vmas, start_brk


def test_exec_layout_rebuilds_the_address_space_and_the_break():
    vmas, start_brk = stored_maps("true.maps")
    files: dict[str, int] = {}

    def file_of(v):
        if v.path not in files:
            files[v.path] = len(files)
        return v.path

    items = list(exec_layout(7, vmas, start_brk, file_of))
    events = [x for x in items if isinstance(x, dict)]
    assert isinstance(items[0], str) and f"{start_brk:#x}" in items[0]
    assert events[0] == {"op": "brk", "pid": 7, "addr": start_brk, "expect": start_brk}
    assert events[1] == {"op": "munmap", "pid": 7, "addr": MODEL_START_BRK,
                         "len": start_brk - MODEL_START_BRK, "expect": 0}
    maps = events[2:]
    assert [(e["addr"], e["len"], e["prot"]) for e in maps] == [
        (v.start, v.end - v.start, v.perms[:3]) for v in vmas]
    assert all("fixed" in e["flags"] and e["expect"] == e["addr"] for e in maps)
    by = {v.path: e for v, e in zip(vmas, maps)}
    assert by["[stack]"]["flags"] == ["private", "anonymous", "fixed", "growsdown"]
    assert by["[vdso]"]["file"] is None and by["[vdso]"]["prot"] == "r-x"
    image = [e for v, e in zip(vmas, maps) if v.path == "/usr/bin/true"]
    assert [e["file"]["offset"] for e in image] == [v.offset for v in vmas
                                                    if v.path == "/usr/bin/true"]
    assert set(files) == {"/usr/bin/true", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"}
    # in the model: every mapping lands, and brk(NULL) is the real initial break
    lines = [b'{"format": "rmaplab-trace", "version": 1}', b'{"op": "spawn", "pid": 7}']
    lines += [orjson.dumps({"op": "file", "name": f, "size": 1 << 20}) for f in files]
    lines += [orjson.dumps(e) for e in events]
    lines.append(orjson.dumps({"op": "brk", "pid": 7, "addr": 0, "expect": start_brk}))
    lines.append(orjson.dumps({"op": "brk", "pid": 7, "addr": start_brk + 0x21000,
                               "expect": start_brk + 0x21000}))
    # the program's RELRO, as ld.so protects it
    relro = [v for v in vmas if v.path == "/usr/bin/true" and v.perms.startswith("rw")][0]
    lines.append(orjson.dumps({"op": "mprotect", "pid": 7, "addr": relro.start, "len": P,
                               "prot": "r--", "expect": 0}))
    trace = parse_trace(lines)
    assert modern_replay(trace) == []


def test_exec_layout_break_below_the_models():
    vmas, _ = stored_maps("true.maps")
    items = list(exec_layout(7, vmas, 0x4c5000, lambda v: None))
    assert not [x for x in items if isinstance(x, dict) and x["op"] in ("brk", "munmap")]
    assert any(isinstance(x, str) and "below where the model's starts" in x for x in items)
    # file mappings whose file is unknown are anonymous
    assert all("anonymous" in x["flags"] for x in items if isinstance(x, dict))


# -- stored recordings --------------------------------------------------------------------------

STORED = sorted(p.name for p in DATA.glob("*.jsonl.gz"))


def test_stored_recordings_exist():
    assert {"true.jsonl.gz", "sh-pipe.jsonl.gz", "python-fork.jsonl.gz", "gcc-c.jsonl.gz",
            "pages.jsonl.gz"} <= set(STORED)


@pytest.mark.parametrize("name", STORED)
def test_stored_recording_replays_every_recorded_result(name):
    """Recorded on Linux 6.18 (README.md): the modern profile reproduces
    every expectation: system call results, the exec layouts, touches."""
    path = DATA / name
    assert path.stat().st_size < 200 * 1024
    trace = read_trace(str(path))
    assert trace.header["source"].startswith("ptrace recording of ")
    expects = sum(1 for e in trace.events if e.expect is not NO_EXPECT)
    assert expects == len([e for e in trace.events if e.op not in ("spawn", "exec", "fork",
                                                                   "exit", "file")])
    bad = modern_replay(trace)
    assert bad == []
    # the 2.6.7 profile differs (bottom-up layout, EINVAL for huge lengths, ...)
    # but replays to the end
    replay(Kernel(), trace)


def test_stored_pages_recording_has_exactly_the_programs_touches():
    trace = read_trace(str(DATA / "pages.jsonl.gz"))
    check_pages_program(trace, 10)


# -- recording real programs ------------------------------------------------------------------

def check_pages_program(trace, n: int) -> None:
    """pages.c N, recorded: exactly its accesses of its 64 MiB mapping."""
    ev = trace.events
    (big,) = [e for e in ev if e.op == "mmap" and e.args[1] == 64 << 20]
    base = big.expect
    root = big.pid

    def touches(pid, lo=0, hi=len(ev)):
        """(page, pages, access) of each touch of pid in the mapping, among ev[lo:hi]."""
        return [((e.args[0] - base) // P, e.args[1] // P, e.args[2]) for e in ev[lo:hi]
                if e.op == "touch" and e.pid == pid and base <= e.args[0] < base + (64 << 20)]

    (fork,) = [e for e in ev if e.op == "fork"]
    child = fork.args[0]
    (madv,) = [e for e in ev if e.op == "madvise"]
    (unmap,) = [e for e in ev if e.op == "munmap" and e.args[1] == 64 << 20]
    i_fork, i_madv, i_unmap = ev.index(fork), ev.index(madv), ev.index(unmap)
    # before the fork: the N single pages, the run of 8, the page read
    assert touches(root, 0, i_fork) == (
        [(3 * i, 1, "w") for i in range(n)] + [(8192, 8, "w"), (12000, 1, "r")])
    # the child's copies on write; its read of a page it shares is no touch
    assert touches(child) == [(0, 1, "w"), (3, 1, "w")]
    assert [e.op for e in ev if e.pid == child and e.op != "touch"] == ["exit"]
    # the parent: nothing more until MADV_DONTNEED, then page 8192 written
    # again, seen before its munmap
    assert touches(root, i_fork, i_madv) == []
    assert touches(root, i_madv, i_unmap) == [(8192, 1, "w")]
    assert touches(root, i_unmap) == []
    written = sum(c for _, c, a in touches(root) if a == "w")
    assert written == n + 8 + 1


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """pages.c, threads.c and remap.c, compiled."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    cc = shutil.which("cc") or shutil.which("gcc")
    out = tmp_path_factory.mktemp("progs")
    for name, extra in (("pages", []), ("threads", ["-pthread"]), ("remap", [])):
        subprocess.run([cc, "-O1", "-Wall", *extra, "-o", str(out / name),
                        str(DATA / f"{name}.c")], check=True)
    return out


def as_trace(rec):
    return parse_trace(rec.lines(), "recording")


@needs_ptrace
def test_record_true():
    rec = record(["/bin/true"])
    r = rec.report
    assert r.status == 0 and r.processes == 1
    ev = rec.events
    assert ev[0] == {"op": "spawn", "pid": ev[0]["pid"]} and ev[-1]["op"] == "exit"
    assert Counter(e["op"] for e in ev)["exit"] == 1
    # every event but process life and file declarations carries its result
    assert all("expect" in e for e in ev if e["op"] not in ("spawn", "exec", "fork", "exit",
                                                            "file"))
    # the exec layout: the break placed first, then /usr/bin/true's image
    brk0, below = ev[1], ev[2]
    assert brk0["op"] == "brk" and brk0["addr"] == brk0["expect"] > MODEL_START_BRK
    assert below == {"op": "munmap", "pid": ev[0]["pid"], "addr": MODEL_START_BRK,
                     "len": brk0["addr"] - MODEL_START_BRK, "expect": 0}
    images = [e["file"]["name"] for e in ev if e["op"] == "mmap" and e["file"]]
    assert images[0] in ("/usr/bin/true", "/bin/true")
    # ld.so's first call: brk(NULL), which returns the placed break
    (first,) = [e for e in ev if e["op"] == "brk" and e["addr"] == 0][:1]
    assert first["expect"] == brk0["addr"]
    assert r.recorded == len(rec.recorded_events) > 10
    rep = rec.reproduction("modern")
    assert rep.recorded_ok == rep.recorded and rep.expects_ok == rep.expects
    assert "100.0 %" in rep.text()


@needs_ptrace
@pytest.mark.parametrize("argv, forks, execs", [
    (["sh", "-c", "ls / | wc -l"], 2, 2),
    (["python3", "-c", "import json, subprocess, os, email.message\n"
                       "pid = os.fork()\n"
                       "if pid == 0:\n"
                       "    json.dumps(list(range(10000))); os._exit(0)\n"
                       "os.waitpid(pid, 0)\n"
                       "subprocess.run(['true'], check=True)"], 2, 1),
])
def test_record_real_programs_reproduce(argv, forks, execs):
    rec = record(argv)
    c = rec.report.ops
    assert (c["spawn"], c["fork"], c["exec"], c["exit"]) == (1, forks, execs, 1 + forks)
    assert rec.report.processes == 1 + forks and rec.report.status == 0
    assert rec.report.touch_events > 0 and rec.report.pages_written > 0
    rep = rec.reproduction("modern")
    assert rep.fraction >= 0.99, rep.mismatches
    # every process but the root was made by a fork, and each ends
    pids = {e["pid"] for e in rec.events if "pid" in e}
    exits = [e["pid"] for e in rec.events if e["op"] == "exit"]
    assert sorted(exits) == sorted(pids)


@needs_ptrace
@needs_cc
def test_record_gcc_compiling_a_file(tmp_path):
    src = tmp_path / "small.c"
    src.write_text("int sq(int x) { return x * x; }\n")
    cc = shutil.which("gcc") or shutil.which("cc")
    rec = record([cc, "-O2", "-c", "-o", str(tmp_path / "small.o"), str(src)])
    assert rec.report.status == 0 and (tmp_path / "small.o").exists()
    assert rec.report.ops["exec"] >= 1 and rec.report.processes >= 2
    rep = rec.reproduction("modern")
    assert rep.fraction >= 0.99, rep.mismatches


@needs_ptrace
def test_record_pages_program_sees_exactly_its_writes(programs):
    n = 37
    rec = record([str(programs / "pages"), str(n)])
    assert rec.report.status == 0
    trace = as_trace(rec)
    check_pages_program(trace, n)
    assert modern_replay(trace) == []


@needs_ptrace
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to drop CAP_SYS_ADMIN")
def test_record_without_frame_numbers_sees_the_same_writes(programs, tmp_path):
    """Without CAP_SYS_ADMIN pagemap hides frame numbers: writes are seen by
    the exclusive-mapping bit (and the seccomp filter needs no_new_privs)."""
    out = tmp_path / "pages.jsonl"
    subprocess.run(["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin",
                    sys.executable, "-m", "rmaplab.cli.main", "record", "-q", "-o", str(out),
                    "--", str(programs / "pages"), "10"], check=True)
    trace = read_trace(str(out))
    assert "frame numbers hidden" in trace.header["source"]
    check_pages_program(trace, 10)
    assert modern_replay(trace) == []


@needs_ptrace
def test_record_without_seccomp_gives_the_same_trace(programs):
    """Stopping at every system call finds the same calls and touches."""
    a = record([str(programs / "pages"), "5"])
    b = record([str(programs / "pages"), "5"], seccomp=False)
    assert a.report.seccomp and not b.report.seccomp
    assert b.report.stops > a.report.stops
    check_pages_program(as_trace(b), 5)

    def calls(rec):
        return [(e["op"], e["expect"] if isinstance(e["expect"], str) else None)
                for i, e in enumerate(rec.events) if i in set(rec.recorded_events)]
    assert calls(a) == calls(b)


@needs_ptrace
def test_record_threads_and_vfork(programs):
    rec = record([str(programs / "threads")])
    ev = rec.events
    assert rec.report.status == 0
    root = ev[0]["pid"]
    c = rec.report.ops
    # the thread is no process; the vfork child is at its exec
    assert (c["spawn"], c["fork"], c["exec"], c["exit"]) == (1, 1, 1, 2)
    (fork,) = [e for e in ev if e["op"] == "fork"]
    i = ev.index(fork)
    assert fork["pid"] == root and ev[i + 1] == {"op": "exec", "pid": fork["child"]}
    # the thread's 3 pages: mapped, written and partly unmapped under the process's pid
    maps3 = [e for e in ev if e["op"] == "mmap" and e["len"] == 3 * P and e["pid"] == root
             and e["file"] is None and "fixed" not in e["flags"]]
    base = maps3[-1]["expect"]           # the thread's (ld.so makes one of 3 pages too)
    writes = [e for e in ev if e["op"] == "touch" and base <= e["addr"] < base + 3 * P]
    assert [(e["pid"], e["addr"] - base, e["len"], e["access"]) for e in writes] == [
        (root, 0, 3 * P, "w")]
    assert {"op": "munmap", "pid": root, "addr": base, "len": P, "expect": 0} in ev
    rep = rec.reproduction("modern")
    assert rep.recorded_ok == rep.recorded, rep.mismatches


@needs_ptrace
def test_record_mremap_dontunmap_keeps_its_new_address(programs):
    """MREMAP_DONTUNMAP reads new_address without MREMAP_FIXED: the event
    carries it (as called when the call failed, the address got as the
    hint when it moved), and the model gives the same results."""
    rec = record([str(programs / "remap")])
    assert rec.report.status == 0
    remaps = [e for e in rec.events if e["op"] == "mremap"]
    hint = 0x200000000000
    assert [(e["flags"], e.get("new_addr"), e["expect"]) for e in remaps] == [
        (["maymove", "dontunmap"], hint + 1, "EINVAL"),
        (["maymove", "dontunmap"], hint, hint),
        (["maymove"], None, hint)]                  # grown in place: nothing is there
    # the moved pages are not touches: the source's writes were seen before
    touched = [e for e in rec.events if e["op"] == "touch" and hint <= e["addr"] < hint + (1 << 20)]
    assert touched == []
    rep = rec.reproduction("modern")
    assert rep.recorded_ok == rep.recorded and rep.expects_ok == rep.expects, rep.mismatches


@needs_ptrace
def test_record_a_process_killed_by_a_signal():
    rec = record(["sh", "-c", "kill -9 $$"])
    assert rec.report.status == -signal.SIGKILL
    assert "killed by SIGKILL" in rec.header["source"]
    ev = rec.events
    assert ev[-1] == {"op": "exit", "pid": ev[0]["pid"]}


# -- the command -------------------------------------------------------------------------------

@needs_ptrace
def test_cli_record_summary_and_trace(tmp_path, capsys):
    out = tmp_path / "true.jsonl"
    assert main(["record", "-o", str(out), "--", "/bin/true"]) == 0
    err = capsys.readouterr().err
    assert "recorded /bin/true: exited with status 0" in err
    assert "1 processes" in err and "touches" in err and "pages written" in err
    assert "replay --profile modern: " in err and "recorded results reproduced (100.0 %)" in err
    t = read_trace(str(out))
    assert t.header["source"].startswith("ptrace recording of /bin/true: exited with status 0")
    assert any(e.op == "touch" for e in t.events)
    assert main(["record", "-q", "--touch", "none", "-o", str(out), "--", "/bin/true"]) == 0
    assert capsys.readouterr().err == ""
    assert not [e for e in read_trace(str(out)).events if e.op == "touch"]


@needs_ptrace
def test_cli_record_pid_map(tmp_path, capsys):
    out = tmp_path / "sh.jsonl"
    assert main(["record", "--pid-map", "--no-replay", "-o", str(out), "--",
                 "sh", "-c", "true | true"]) == 0
    err = capsys.readouterr().err
    assert "pid map (real pid -> trace pid):" in err
    assert "-> trace pid 1: root process" in err
    t = read_trace(str(out))
    assert {e.pid for e in t.events if e.pid is not None} == {1, 2, 3}
    assert [(e.op, e.pid, e.args) for e in t.events if e.op == "fork"] == [
        ("fork", 1, (2,)), ("fork", 1, (3,))]
    assert "replay --profile" not in err


def test_cli_record_options(tmp_path, capsys):
    out = str(tmp_path / "x.jsonl")
    assert main(["record", "-o", out, "--via", "strace", "--touch", "observed", "--",
                 "/bin/true"]) == 2
    assert "--touch observed needs the ptrace recorder" in capsys.readouterr().err
    assert main(["record", "-o", out, "--via", "ptrace", "--touch", "read-all", "--",
                 "/bin/true"]) == 2
    assert "use --via strace" in capsys.readouterr().err
    assert main(["record", "-o", out, "--via", "ptrace", "--keep-log", out + ".log", "--",
                 "/bin/true"]) == 2
    assert "--keep-log is for --via strace" in capsys.readouterr().err
    assert main(["record", "-o", out, "--", str(tmp_path / "no-such-command")]) == 2
    assert "not an executable file" in capsys.readouterr().err
    assert main(["record", "-o", out, "--", "no-such-command-rmaplab"]) == 2
    assert "command not found" in capsys.readouterr().err


@needs_ptrace
def test_cli_record_ctrl_c_stops_cleanly(tmp_path):
    """SIGINT to rmaplab (as Ctrl-C sends it) while the command runs: the
    command is stopped, the trace holds what was recorded, exit status 130."""
    out = tmp_path / "sleep.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "rmaplab.cli.main", "record", "-o", str(out),
                          "--", "sh", "-c", "echo ready; exec sleep 600"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert p.stdout.readline() == "ready\n"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert "interrupted" in err
    t = read_trace(str(out))
    assert "interrupted" in t.header["source"]
    ops = [e.op for e in t.events]
    assert ops[0] == "spawn" and "exec" in ops and ops[-1] == "exit"


def test_stored_gz_is_gzip():
    for name in STORED:
        with gzip.open(DATA / name) as f:
            assert f.readline().startswith(b'{"format":"rmaplab-trace"')


@needs_ptrace
def test_recording_ends_when_the_tracees_do_though_the_recorder_has_other_children():
    """Regression: the loop waited for ECHILD, so a child of the recording
    process that never exits (here multiprocessing's resource tracker, which
    an earlier test in the same pytest run had started) made it spin for
    ever after the command ended."""
    code = ("from multiprocessing import resource_tracker\n"
            "resource_tracker.ensure_running()\n"
            "from rmaplab.trace.ptrace_record import record\n"
            "r = record(['/bin/true'])\n"
            "print(r.report.processes)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
