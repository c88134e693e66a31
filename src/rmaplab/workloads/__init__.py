"""Workloads: generators of traces (lists of trace-v1 event objects)."""
