"""The trace reader and the strace importer under random input: every bad
input is a one-line TraceError naming the line, never another exception.
Inputs are mutations of valid events (fields dropped, retyped, renamed;
values replaced by extremes) and raw noise."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from rmaplab.trace.reader import TraceError, parse_trace
from rmaplab.workloads.random_trace import random_trace

VALID = random_trace(3, events=40)
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                   st.floats(allow_nan=True), st.text(max_size=12),
                   st.sampled_from(["0x10", "0xZZ", "-1", "1e3", "rw-", "rwxx", "private", "w"]),
                   st.lists(st.text(max_size=6), max_size=3),
                   st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@st.composite
def mutated(draw) -> str:
    ev = dict(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(ev) + ["op", "pid", "extra", "len"]))
        what = draw(st.sampled_from(["drop", "set", "rename"]))
        if what == "drop":
            ev.pop(key, None)
        elif what == "set":
            ev[key] = draw(VALUES)
        else:
            ev[key + "x"] = ev.pop(key, None)
    return json.dumps(ev)


LINES = st.one_of(mutated(), st.text(max_size=40),
                  st.sampled_from(["{", "[]", "null", "{}", '{"op": 1}', "\x00", "# c"]))


@settings(max_examples=400, deadline=None)
@given(st.lists(LINES, min_size=1, max_size=6), st.booleans())
def test_bad_lines_are_trace_errors_with_the_line(lines, head):
    body = [json.dumps(e) for e in VALID[:3]] + lines
    if head:
        body.insert(0, '{"format": "rmaplab-trace", "version": 1}')
    try:
        parse_trace(body, filename="f.jsonl")
    except TraceError as e:
        msg = str(e)
        assert msg.startswith("f.jsonl"), msg
        assert "\n" not in msg
        assert e.line is None or 1 <= e.line <= len(body)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=1, max_size=8))
def test_strace_import_never_raises_anything_but_its_own_errors(lines):
    import tempfile
    from pathlib import Path

    from rmaplab.cli.main import main
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "x.log"
        log.write_text("\n".join(lines) + "\n")
        assert main(["import-strace", str(log), "-o", str(Path(d) / "x.jsonl")]) in (0, 1, 2)
