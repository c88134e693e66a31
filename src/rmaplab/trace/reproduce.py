"""How many recorded results a replay on the model reproduces.

A recorded trace (``rmaplab record``, ``rmaplab import-strace``) carries the
results the traced program got as ``expect``. ``reproduction`` replays it
on the model and counts the events whose result the model gives again:
over the events that carry a recorded system-call result, and over every
event with an ``expect`` (observed touches and the events made from
``/proc`` at exec included).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Reproduction:
    profile: str
    recorded: int = 0            # events with a recorded (system call) result
    recorded_ok: int = 0
    expects: int = 0             # every event with expect
    expects_ok: int = 0
    #: the first mismatches, as replay's results file gives them
    mismatches: list = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return self.recorded_ok / self.recorded if self.recorded else 1.0

    def text(self) -> str:
        out = (f"replay --profile {self.profile}: {self.recorded_ok} of {self.recorded} "
               f"recorded results reproduced ({100 * self.fraction:.1f} %)")
        if self.expects != self.recorded:
            out += f"; {self.expects_ok} of {self.expects} expectations in all"
        return out


def reproduction(lines: Iterable[bytes], recorded: Iterable[int], profile: str = "modern",
                 keep: int = 20) -> Reproduction:
    """Replay the trace ``lines`` (JSON Lines, as written) on a fresh model
    of ``profile``; ``recorded`` are the indexes of the events (counting
    from 0, comments and header not counted) that carry a recorded result."""
    from rmaplab.config import Config
    from rmaplab.kernel import Kernel
    from rmaplab.trace.reader import NO_EXPECT, parse_trace
    from rmaplab.trace.replay import replay
    trace = parse_trace(list(lines), filename="<recording>")
    bad: list[dict] = []

    def sink(obj: dict) -> None:
        if obj.get("match") is False:
            bad.append(obj)

    replay(Kernel(Config(profile=profile)), trace, results=sink)
    rec = set(recorded)
    r = Reproduction(profile)
    r.recorded = len(rec)
    r.expects = sum(1 for e in trace.events if e.expect is not NO_EXPECT)
    r.recorded_ok = r.recorded - sum(1 for b in bad if b["event"] in rec)
    r.expects_ok = r.expects - len(bad)
    r.mismatches = bad[:keep]
    return r
