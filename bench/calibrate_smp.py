#!/usr/bin/env python3
"""Calibrate the cost table of ``rmaplab smp`` on this machine's kernel.

Builds ``bench/calibrate_smp.c`` with the system C compiler, runs it (pinned
to CPU 0; the lock hand-off figure uses CPU 1 too), and prints the measured
figures beside the ones ``rmaplab.report.smp.costs.MEASURED`` holds. With
``--swap`` (root only) a temporary 512 MiB swap file is made and switched on
for the swap figures, then switched off and removed. The program runs three
times (``--runs``) and each figure is the median of the runs' medians: a
virtual machine's figures vary from run to run.

    python bench/calibrate_smp.py                  # table on stdout
    python bench/calibrate_smp.py --swap           # with pageout_page, fault_swap
    python bench/calibrate_smp.py --json costs.json  # a cost file for 'rmaplab smp --costs'

The cost file holds the table's entries recomputed from this run (the
``derived`` ones with their formulas), so ``rmaplab smp --costs costs.json``
simulates with this machine's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build(tmp: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        sys.exit("calibrate_smp: no C compiler (cc or gcc) found")
    exe = tmp / "calibrate_smp"
    subprocess.run([cc, "-O2", "-pthread", "-o", str(exe), str(HERE / "calibrate_smp.c")], check=True)
    return exe


def run(exe: Path, only: str = "") -> dict[str, float]:
    out = subprocess.run([str(exe)] + ([only] if only else []), check=True, capture_output=True,
                         text=True, timeout=600)
    if out.stderr.strip():
        print(out.stderr.strip(), file=sys.stderr)
    figures = {}
    for line in out.stdout.splitlines():
        name, _, val = line.partition(" ")
        if val:
            figures[name] = float(val)
    return figures


def with_swap(exe: Path, tmp: Path) -> dict[str, float]:
    if os.geteuid() != 0:
        print("calibrate_smp: --swap needs root; swap figures skipped", file=sys.stderr)
        return {}
    sw = tmp / "swapfile"
    subprocess.run(["fallocate", "-l", "512M", str(sw)], check=True)
    sw.chmod(0o600)
    subprocess.run(["mkswap", str(sw)], check=True, capture_output=True)
    subprocess.run(["swapon", str(sw)], check=True)
    try:
        return run(exe, "swap")
    finally:
        subprocess.run(["swapoff", str(sw)], check=False)
        sw.unlink(missing_ok=True)


#: calibrate_smp.c's names -> costs.MEASURED's
RENAME = {"fault_cow": "fault_cow", "lock_handoff": "lock_handoff_here"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--swap", action="store_true", help="make a temporary swap file (root)")
    ap.add_argument("--json", metavar="FILE", help="write a cost file for 'rmaplab smp --costs'")
    ap.add_argument("--runs", type=int, default=3,
                    help="run the program this many times; each figure is the median (default 3)")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE.parent / "src"))
    from rmaplab.report.smp import costs
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        exe = build(tmp)
        runs = [run(exe) for _ in range(max(1, args.runs))]
        if args.swap:
            runs = [{**r, **with_swap(exe, tmp)} for r in runs]
    fig = {k: statistics.median(r[k] for r in runs if k in r) for k in runs[0]}
    fig = {RENAME.get(k, k): v for k, v in fig.items()}
    width = max(map(len, fig))
    print(f"{'figure':<{width}}  {'this run':>10}  {'in the table':>12}")
    for k, v in fig.items():
        old = costs.MEASURED.get(k)
        print(f"{k:<{width}}  {v:>10.1f}  {'-' if old is None else f'{old:.1f}':>12}")
    if args.json:
        saved = dict(costs.MEASURED)
        costs.MEASURED.update({k: v for k, v in fig.items() if k in costs.MEASURED})
        table = costs._default_table()
        costs.MEASURED.clear()
        costs.MEASURED.update(saved)
        ns = {k: round(c.ns, 1) for k, c in table.items() if c.source in ("measured", "derived")}
        Path(args.json).write_text(json.dumps(ns, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
