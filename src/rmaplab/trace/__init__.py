"""Traces (``spec/trace-v1.md``): reading, replaying, results and state dumps."""

from rmaplab.trace.reader import NO_EXPECT, Event, Trace, TraceError, parse_trace, read_trace

__all__ = ["NO_EXPECT", "Event", "Trace", "TraceError", "parse_trace", "read_trace"]
