"""Checking: kernel invariants, rmap completeness against a brute-force scan."""

from rmaplab.check.validate import check_no_leaks, check_rmap_complete, validate

__all__ = ["check_no_leaks", "check_rmap_complete", "validate"]
