"""The ``nasrepro`` command.

Each command group lives in its own module exposing ``register(subparsers)``; a registered sub-parser
sets ``func`` (called with the parsed namespace, returns an exit code). Errors derived from
:class:`NasReproError` print as one line and exit 2; nothing else is swallowed.
"""
from __future__ import annotations

import argparse
import sys
from importlib import import_module

from nasrepro import __version__
from nasrepro.errors import NasReproError

#: modules that add sub-commands, in help order
COMMAND_MODULES = (
    "benchmarks.cli",  # data, query
    "reproduce.cli",  # run, compare, reproduce, report
    "algorithms.nn.train",  # train-eval
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse would print the usage first)
        self.exit(2, f"nasrepro: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nasrepro", description="Reproduce NAS papers on tabular benchmarks and supernets.")
    parser.add_argument("--version", action="version", version=f"nasrepro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module: let it show
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NasReproError as exc:
        print(f"nasrepro: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasrepro: interrupted (finished work is kept; run the same command again to resume)",
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
