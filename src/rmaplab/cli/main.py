"""``rmaplab``: the command-line entry point.

Each subcommand lives in its own module under ``rmaplab.cli`` and exposes
``register(subparsers)``, which adds its parser and sets ``func``; ``func``
returns the exit status. Exit status 2 means bad input (a bad trace line, a
bad option), reported in one line without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rmaplab import __version__
from rmaplab.errors import ConfigError

#: subcommand modules, in the order ``--help`` lists them
COMMANDS = ("compare", "sweep", "demo", "show", "replay", "conform", "generate", "import_strace",
            "record", "check_scheme", "fuzz", "bench", "smp")


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def add_profile_option(p: argparse.ArgumentParser, default: str = "2.6.7") -> None:
    """``--profile``: the kernel era the model follows as a whole."""
    p.add_argument("--profile", choices=("2.6.7", "modern"), default=default,
                   help="kernel era: 2.6.7 (Linux 2.6.7 with the 2.6.8-2.6.11 fixes) or modern "
                        f"(Linux 6.18 as observed, anon_vma_chain by default) (default {default})")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rmaplab",
        description="An executable model of Linux reverse mapping for anonymous pages "
                    "(anon_vma, Linux 2.6.7) and its rivals.",
        epilog="Run 'rmaplab COMMAND --help' for the options and examples of each command.")
    p.add_argument("--version", action="version", version=f"rmaplab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        # a command module that is missing is a broken install: fail loudly
        importlib.import_module(f"rmaplab.cli.{name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (UsageError, ConfigError) as e:
        print(f"rmaplab: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("rmaplab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
