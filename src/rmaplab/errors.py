"""The error types of the model (the analogue of include/linux/errno.h).

Every layer raises one of these; nothing else escapes to a user.
"""

from __future__ import annotations

ERRNO_NAMES = ("EPERM", "ENOENT", "EBADF", "EAGAIN", "ENOMEM", "EACCES", "EFAULT",
               "EEXIST", "ENODEV", "EINVAL", "EOVERFLOW", "EOPNOTSUPP")


class SyscallError(Exception):
    """A system call failed with ``errno`` (its C name, e.g. ``"ENOMEM"``).

    The model's state after the raise is what Linux leaves after that error,
    which is sometimes a partial change (mprotect over a hole, for example).
    """

    def __init__(self, errno: str, why: str = "") -> None:
        assert errno in ERRNO_NAMES, errno
        super().__init__(f"{errno}: {why}" if why else errno)
        self.errno = errno
        self.why = why


class InvariantError(AssertionError):
    """A kernel invariant does not hold; the message says which and where."""


class ConfigError(ValueError):
    """A bad option or configuration value, explained for a user."""


class OOMKilled(Exception):
    """The process doing the work was chosen by the OOM killer and is gone."""

    def __init__(self, pid: int) -> None:
        super().__init__(f"pid {pid} was killed by the OOM killer")
        self.pid = pid
