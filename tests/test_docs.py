"""The README's profile table is the list of rules: every rule of
``rmaplab.config.RULES`` has a row, and every test a row names exists."""

from __future__ import annotations

import re
from pathlib import Path

import test_profile_modern
from rmaplab.config import RULES

ROOT = Path(__file__).resolve().parent.parent


def _profile_rows() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Profiles: 2.6.7 and modern", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `(\w+)` \|.*\| `(test_\w+)` \|$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_readme_profile_table_lists_every_rule_with_a_real_test():
    rows = _profile_rows()
    assert sorted(rows) == sorted(RULES)
    for rule, test in rows.items():
        assert hasattr(test_profile_modern, test), f"{rule}: no test named {test}"
