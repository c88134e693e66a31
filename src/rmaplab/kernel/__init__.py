"""The facade: processes, system calls, faults, reclaim, configuration."""

from rmaplab.kernel.system import Kernel, NoSuchProcess, TouchResult

__all__ = ["Kernel", "NoSuchProcess", "TouchResult"]
