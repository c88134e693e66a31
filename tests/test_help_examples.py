"""Every example in every command's --help runs, and exits 0 or the status
its help documents.

The examples are read from the parsers' epilogs, so a new example is
tested as soon as it is written. They run in order in one directory that
holds the files they name (a trace, a scheme file, a Makefile, ...);
commands with shell syntax (pipes, &&, globs, redirection) run in a shell,
the others in this process. A few are changed or skipped, each with its
reason (``CHANGED``, ``SKIPPED``); a stale entry there fails the test.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rmaplab.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

#: examples run with smaller parameters: example -> (command run, why)
CHANGED = {
    "rmaplab fuzz --steps 100000": ("rmaplab fuzz --steps 2000", "20 s at full size"),
    "rmaplab fuzz --scheme pure_anon_vma,anon_vma --profile modern --time 60":
        ("rmaplab fuzz --scheme pure_anon_vma,anon_vma --profile modern --time 1",
         "a minute at full size"),
    "rmaplab fuzz --scheme my_scheme.py:MyScheme --steps 1000000 --jobs 8":
        ("rmaplab fuzz --scheme my_scheme.py:MyScheme --steps 2000 --jobs 2",
         "minutes at full size"),
    "rmaplab check-scheme my_scheme.py:MyScheme --examples 500":
        ("rmaplab check-scheme my_scheme.py:MyScheme --examples 20", "15 s at full size"),
    "rmaplab conform --random 500 --keep diverged/":
        ("rmaplab conform --random 5 --keep diverged/", "40 s at full size"),
    "rmaplab bench": ("rmaplab bench --size 16M --repeat 1", "a 1 GiB process, several s"),
    "rmaplab bench --scheme all --size 256M":
        ("rmaplab bench --scheme all --size 16M --repeat 1", "a 256 MiB process per scheme"),
    "rmaplab bench --only reclaim --mem 64M --json":
        ("rmaplab bench --only reclaim --mem 4M --size 16M --json", "1 GiB of demand"),
    "rmaplab smp aim7 --cpus 1,2,4,8,16":
        ("rmaplab smp aim7 -p N=20 --cpus 1,2,4,8,16", "40 s at full size (aim7's reclaim)"),
    "rmaplab smp kbuild --costs my-machine.toml":
        ("rmaplab smp kbuild -p compiles=8 --costs my-machine.toml", "15 s at full size"),
    "rmaplab sweep aim7 --vary N=10,50,100,200 --metric walk_work_per_reclaimed --mem 16M "
    "-o aim7.png":
        ("rmaplab sweep aim7 --vary N=10,50 --metric walk_work_per_reclaimed --mem 16M "
         "-o aim7.png", "14 s at full size"),
}
#: examples not run: example -> why
SKIPPED = {
    "rmaplab fuzz --steps 10000000 --scheduler tcp://10.0.0.5:8786":
        "needs a Dask cluster at that address",
}
#: exit statuses the help documents for an example, besides 0
STATUS = {
    # "the same against the 2.6.7 model: expect differences" (1 some category differs)
    "rmaplab conform trace.jsonl --profile 2.6.7 --scheme anon_vma": {1},
}
#: conform's documented status when the live kernel cannot be used here
NO_LIVE_KERNEL = 3
SHELL = re.compile(r"[|&<>*;]")

MY_SCHEME = '''
from rmaplab.rmap.anon_vma import AnonVmaScheme


class MyScheme(AnonVmaScheme):
    """anon_vma under another name: the help's example scheme."""

    name = "my_scheme"
'''


def examples() -> list[tuple[str, str]]:
    """(command, example) for each example line of each epilog."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    out = []
    for name, p in sub.choices.items():
        text = p.epilog or ""
        m = re.search(r"^examples:\n(.*?)(?=^\S|\Z)", text, re.S | re.M)
        if not m:
            continue
        for line in m.group(1).splitlines():
            cmd = re.split(r"\s{2,}", line.strip())[0]
            if cmd.startswith(("rmaplab ", "strace ")):
                out.append((name, cmd))
    return out


@pytest.fixture(scope="module")
def here(tmp_path_factory):
    """The directory the examples run in, with the files they name."""
    d = tmp_path_factory.mktemp("examples")
    os.symlink(ROOT / "tests", d / "tests")
    old = os.getcwd()
    os.chdir(d)
    try:
        assert main(["generate", "fork_chain", "-p", "generations=6", "-o", "fork.jsonl"]) == 0
        assert main(["generate", "fork_chain", "-p", "generations=6",
                     "-o", "fork.jsonl.gz"]) == 0
        # conform's traces must suit the live worker: one of its corpus
        for name in ("trace.jsonl", "t.jsonl"):
            shutil.copy(ROOT / "tests/conformance/04-fork-child-merges.jsonl", d / name)
        (d / "my_scheme.py").write_text(MY_SCHEME)
        (d / "Makefile").write_text("all:\n\ttrue\n")
        (d / "prog").write_text("#!/bin/sh\ntrue\n")
        (d / "prog").chmod(0o755)
        (d / "my-machine.toml").write_text("[costs]\nfind_vma_calls = 30\n")
    finally:
        os.chdir(old)
    return d


ALL = examples()


def test_the_tables_name_live_examples():
    live = {e for _, e in ALL}
    assert set(CHANGED) <= live and set(SKIPPED) <= live and set(STATUS) <= live, \
        sorted((set(CHANGED) | set(SKIPPED) | set(STATUS)) - live)


@pytest.mark.parametrize("command,example", ALL, ids=[e for _, e in ALL])
def test_help_example_runs(command, example, here, monkeypatch, capfd):
    if example in SKIPPED:
        pytest.skip(SKIPPED[example])
    cmd = CHANGED.get(example, (example, ""))[0]
    ok = {0} | STATUS.get(example, set())
    if command == "conform":
        ok.add(NO_LIVE_KERNEL)
    monkeypatch.chdir(here)
    if SHELL.search(cmd) or cmd.startswith("strace"):
        env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
        p = subprocess.run(cmd, shell=True, cwd=here, env=env, capture_output=True, text=True,
                           timeout=600)
        code, err = p.returncode, p.stderr
    else:
        # as in a fresh process: the built-in schemes only, not the plugins
        # other tests registered (some broken on purpose)
        from rmaplab.rmap import registry
        registry.names()
        builtin = {n: c for n, c in registry._SCHEMES.items()
                   if c.__module__.startswith("rmaplab.rmap.")}
        monkeypatch.setattr(registry, "_SCHEMES", builtin)
        monkeypatch.setattr(registry, "_SPECS", {})
        code = main(shlex.split(cmd)[1:])
        err = capfd.readouterr().err
    assert code in ok, f"{cmd}: exit {code}\n{err[-2000:]}"
    assert "Traceback" not in err, err
