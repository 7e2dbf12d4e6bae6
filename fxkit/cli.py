"""The ``fxkit`` command.

``fxkit trace MODEL [--show code|graph|table]`` traces a model and prints its generated
code, its graph, or a table of its nodes. MODEL is a bundled model name (``fxkit.zoo``),
``package.module:attr`` or ``path/to/file.py:attr``, where ``attr`` is a module instance, a
module class that needs no arguments, or a function returning a module.

Each subcommand is one ``_Command`` in ``COMMANDS``: a name, a help line, a function adding
its arguments and a function running it. Errors print one line on stderr and exit with 1.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence

import torch

__all__ = ["CliError", "COMMANDS", "load_model", "main"]


class CliError(Exception):
    """A problem to report to the user as one line, without a traceback."""


def _model_from_attribute(value: Any, spec: str) -> torch.nn.Module:
    """Turn what ``spec`` names into a module instance."""
    if isinstance(value, torch.nn.Module):
        return value
    if isinstance(value, type) and issubclass(value, torch.nn.Module):
        try:
            return value()
        except TypeError as exc:
            raise CliError(f"{spec}: cannot build {value.__name__} without arguments ({exc})") from None
    if callable(value):
        try:
            built = value()
        except TypeError as exc:
            raise CliError(f"{spec}: calling {getattr(value, '__name__', value)}() failed ({exc})") from None
        if isinstance(built, torch.nn.Module):
            return built
        raise CliError(
            f"{spec}: {getattr(value, '__name__', value)}() returned {type(built).__name__}, not a torch.nn.Module"
        )
    raise CliError(
        f"{spec} is a {type(value).__name__}, not a torch.nn.Module, a module class or a function returning one"
    )


def _load_python_file(path: str, spec: str) -> Any:
    if not os.path.isfile(path):
        raise CliError(f"{spec}: no such file {path!r}")
    module_name = "_fxkit_cli_" + os.path.splitext(os.path.basename(path))[0]
    file_spec = importlib.util.spec_from_file_location(module_name, path)
    if file_spec is None or file_spec.loader is None:
        raise CliError(f"{spec}: {path!r} is not a Python file")
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    file_spec.loader.exec_module(module)
    return module


def load_model(spec: str) -> torch.nn.Module:
    """The module that ``spec`` names: a zoo name, ``package.module:attr`` or ``file.py:attr``."""
    from . import zoo

    if ":" not in spec:
        if spec in zoo.MODELS:
            return zoo.get_model(spec)
        raise CliError(
            f"unknown model {spec!r}: use a bundled name ({', '.join(zoo.list_models())}),"
            " package.module:attr or path/to/file.py:attr"
        )
    location, _, attr_path = spec.rpartition(":")
    if not location or not attr_path:
        raise CliError(f"{spec!r}: expected package.module:attr or path/to/file.py:attr")
    if location.endswith(".py") or os.sep in location:
        module = _load_python_file(location, spec)
    else:
        try:
            module = importlib.import_module(location)
        except ImportError as exc:
            raise CliError(f"{spec}: cannot import {location!r} ({exc})") from None
    value: Any = module
    for part in attr_path.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise CliError(f"{spec}: {location!r} has no attribute {attr_path!r}") from None
    return _model_from_attribute(value, spec)


def _table_text(graph: Any) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        graph.print_tabular()
    return buffer.getvalue().rstrip("\n")


def _add_trace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", help="bundled name, package.module:attr or path/to/file.py:attr"
    )
    parser.add_argument(
        "--show",
        choices=("code", "graph", "table"),
        default="code",
        help="what to print: the generated code (default), the graph, or a table of the nodes",
    )


def _run_trace(args: argparse.Namespace) -> int:
    from .proxy import TraceError
    from .tracer import symbolic_trace

    model = load_model(args.model)
    try:
        traced = symbolic_trace(model)
    except TraceError as exc:
        # The message already says where, in the user's code; keep it on one line.
        raise CliError(f"cannot trace {args.model}: " + " ".join(str(exc).split())) from None
    if args.show == "code":
        text = traced.code.strip("\n").rstrip()
    elif args.show == "graph":
        text = str(traced.graph)
    else:
        text = _table_text(traced.graph)
    print(text)
    return 0


@dataclass(frozen=True)
class _Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: List[_Command] = [
    _Command(
        "trace", "trace a model and print its code, graph or node table", _add_trace_arguments, _run_trace
    ),
    _Command(
        "explain",
        "capture a model with example inputs and report its guards, leaves and specializations",
        lambda parser: _explain().add_cli_arguments(parser),
        lambda args: _explain().run_cli(args),
    ),
]


def _explain() -> Any:
    from . import explain

    return explain


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fxkit", description="Trace PyTorch models into graphs and inspect them."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except CliError as exc:
        print(f"fxkit: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader (e.g. `| head`) stopped early: not an error of ours. Silence the final flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # the user's model raised: report it without a traceback
        print(
            f"fxkit: error: {args.command} {getattr(args, 'model', '')}: {type(exc).__name__}: "
            + " ".join(str(exc).split()),
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
