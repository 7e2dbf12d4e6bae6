"""The ``fxkit`` command.

``fxkit trace MODEL`` traces a model and prints its code, graph or node table; ``fxkit explain
MODEL`` captures it with example inputs and prints what the capture assumed. MODEL is a bundled
model name (``fxkit.zoo``), ``hf:ClassName`` (a transformers model built from its default config,
no files), ``package.module:attr`` or ``path/to/file.py:attr``, where ``attr`` is a module
instance, a module class that needs no arguments, or a function returning a module.

This module owns argument parsing and model resolution; the library modules it calls never import
it. Each subcommand is one ``_Command`` in ``COMMANDS``: a name, a help line, a function adding its
arguments and a function running it. User errors print one line on stderr and exit with 1; Ctrl-C
exits with 130.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from ._resolve import ResolveError, resolve

__all__ = ["CliError", "COMMANDS", "load_model", "main", "progress"]


class CliError(Exception):
    """A problem to report to the user as one line, without a traceback."""


# --------------------------------------------------------------------------- progress


@contextlib.contextmanager
def progress(label: str, stream: Any = None) -> Iterator[None]:
    """Show ``label`` and the elapsed seconds on ``stream`` (stderr) while the block runs.

    Only when the stream is a terminal: pipes and logs get nothing. The line is cleared afterwards
    and the ticking thread is always stopped, also when the block raises.
    """
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if not (isatty and isatty()):
        yield
        return
    done = threading.Event()
    start = time.perf_counter()

    def tick() -> None:
        while not done.wait(0.25):
            stream.write(f"\r\x1b[2Kfxkit: {label} ({time.perf_counter() - start:.1f}s)")
            stream.flush()

    thread = threading.Thread(target=tick, name="fxkit-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        stream.write("\r\x1b[2K")
        stream.flush()


# --------------------------------------------------------------------------- models


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


def _parse_config(items: Sequence[str]) -> Dict[str, Any]:
    """``KEY=VALUE`` overrides; VALUE is a Python literal (``2``, ``0.1``, ``True``) or else a string."""
    overrides: Dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise CliError(f"--config {item!r}: expected KEY=VALUE, e.g. num_hidden_layers=2")
        try:
            overrides[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[key] = text
    return overrides


def _hf_model(name: str, overrides: Dict[str, Any]) -> torch.nn.Module:
    """``transformers.<name>`` built from its default config with ``overrides``; random weights."""
    try:
        import transformers
    except ImportError:
        raise CliError(f"hf:{name} needs the transformers package: pip install transformers") from None
    model_class = getattr(transformers, name, None)
    if not (isinstance(model_class, type) and issubclass(model_class, torch.nn.Module)):
        raise CliError(f"hf:{name}: transformers has no model class {name!r} (e.g. hf:LlamaForCausalLM)")
    config_class = getattr(model_class, "config_class", None)
    if config_class is None:
        raise CliError(f"hf:{name}: {name} names no config class to build it from")
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # its config warnings are not the user's problem here
    try:
        defaults = config_class()
        unknown = sorted(key for key in overrides if not hasattr(defaults, key))
        if unknown:
            # transformers would store a misspelt key silently; refuse it instead.
            fields = ", ".join(map(repr, unknown))
            raise CliError(f"hf:{name}: {config_class.__name__} has no field {fields}")
        config = config_class(**overrides) if overrides else defaults
        return model_class(config).eval()
    finally:
        transformers.logging.set_verbosity(verbosity)


def load_model(spec: str, *, meta: bool = False, config: Sequence[str] = ()) -> torch.nn.Module:
    """The module that ``spec`` names: a zoo name, ``hf:ClassName``, ``package.module:attr`` or ``file.py:attr``.

    With ``meta=True`` the module is built on the meta device: construction runs under
    ``torch.device("meta")``, so no weights are allocated at any point. ``config`` holds
    ``KEY=VALUE`` overrides of an ``hf:`` model's default config.
    """
    from . import zoo

    overrides = _parse_config(config)
    if overrides and not spec.startswith("hf:"):
        raise CliError(f"--config applies to hf: models only, not to {spec!r}")
    with torch.device("meta") if meta else contextlib.nullcontext():
        if spec.startswith("hf:"):
            return _hf_model(spec[3:], overrides)
        if ":" not in spec:
            if spec in zoo.MODELS:
                return zoo.get_model(spec)
            raise CliError(
                f"unknown model {spec!r}: use a bundled name ({', '.join(zoo.list_models())}),"
                " hf:ClassName, package.module:attr or path/to/file.py:attr"
            )
        return _model_from_attribute(resolve(spec), spec)


def _add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="bundled name, hf:ClassName (transformers), package.module:attr or path/to/file.py:attr",
    )
    parser.add_argument(
        "--config",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a field of an hf: model's default config, e.g. num_hidden_layers=2 (repeatable)",
    )


# --------------------------------------------------------------------------- example inputs


def _add_input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inputs",
        metavar="REF",
        help="example inputs: package.module:attr or path/to/file.py:attr naming a tuple, a dict of keyword"
        " inputs, or a function returning one (default for bundled and hf: models: built for you)",
    )
    parser.add_argument(
        "--shape",
        metavar="DIMS",
        action="append",
        default=[],
        help="a random example input of this shape, e.g. 2,3,32,32 (repeat for several inputs)",
    )
    parser.add_argument(
        "--dtype", default="float32", help="dtype of the --shape inputs (default float32; e.g. int64)"
    )
    parser.add_argument(
        "--meta", action="store_true", help="build the model and inputs on the meta device (no weights)"
    )


def _hf_inputs(model: torch.nn.Module, spec: str) -> Dict[str, Any]:
    """Inputs for an ``hf:`` model: token ids for text models, pixels for vision models."""
    config = getattr(model, "config", None)
    device = next(iter(model.parameters()), torch.empty(0)).device
    generator = torch.Generator().manual_seed(0)
    names = getattr(model, "main_input_name", "input_ids")
    if names == "input_ids" and getattr(config, "vocab_size", None):
        ids = torch.randint(0, int(config.vocab_size), (1, 8), generator=generator)
        return {"input_ids": ids.to(device)}
    if names == "pixel_values" and getattr(config, "image_size", None):
        size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
        pixels = torch.randn(1, getattr(config, "num_channels", 3), size, size, generator=generator)
        return {"pixel_values": pixels.to(device)}
    raise CliError(f"{spec}: no default example inputs for {type(model).__name__}; pass --inputs or --shape")


def _random_inputs(shapes: Sequence[str], dtype_name: str) -> List[torch.Tensor]:
    dtype = getattr(torch, dtype_name, None)
    if not isinstance(dtype, torch.dtype):
        raise CliError(f"--dtype {dtype_name!r} is not a torch dtype")
    generator = torch.Generator().manual_seed(0)
    values = []
    for text in shapes:
        try:
            shape = [int(dim) for dim in text.replace("x", ",").split(",") if dim]
        except ValueError:
            raise CliError(f"--shape {text!r}: expected sizes separated by commas, e.g. 2,3,32,32") from None
        if dtype.is_floating_point:
            values.append(torch.randn(shape, generator=generator).to(dtype))
        else:
            values.append(torch.randint(0, 10, shape, generator=generator).to(dtype))
    return values


def example_inputs(
    args: argparse.Namespace, model: torch.nn.Module
) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    """The positional and keyword example inputs that ``--inputs``/``--shape`` (or the model) give."""
    from . import zoo

    if args.inputs:
        value = resolve(args.inputs)
        if callable(value) and not isinstance(value, torch.Tensor):
            value = value()
    elif args.shape:
        value = _random_inputs(args.shape, args.dtype)
    elif args.model in zoo.MODELS:
        value = zoo.example_inputs(args.model)
    elif args.model.startswith("hf:"):
        value = _hf_inputs(model, args.model)
    else:
        raise CliError(f"{args.model}: capture needs example inputs; pass --inputs REF or --shape DIMS")
    if isinstance(value, dict):
        positional, keywords = (), dict(value)
    elif isinstance(value, torch.Tensor):
        positional, keywords = (value,), {}
    elif isinstance(value, (tuple, list)):
        positional, keywords = tuple(value), {}
    else:
        raise CliError(
            f"the example inputs are a {type(value).__name__}; expected a tensor, a tuple or a dict"
        )
    if args.meta:
        positional, keywords = _to_meta(positional), _to_meta(keywords)
    return positional, keywords


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to("meta")
    if isinstance(value, (tuple, list)):
        return type(value)(_to_meta(item) for item in value)
    if isinstance(value, dict):
        return {key: _to_meta(item) for key, item in value.items()}
    return value


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------- trace


def _table_text(graph: Any) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        graph.print_tabular()
    return buffer.getvalue().rstrip("\n")


def _add_trace_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_argument(parser)
    parser.add_argument(
        "--show",
        choices=("code", "graph", "table"),
        default="code",
        help="what to print: the generated code (default), the graph, or a table of the nodes",
    )
    parser.add_argument("--meta", action="store_true", help="build the model on the meta device (no weights)")


def _run_trace(args: argparse.Namespace) -> int:
    from .proxy import TraceError
    from .tracer import symbolic_trace

    model = load_model(args.model, meta=args.meta, config=args.config)
    try:
        with progress(f"tracing {args.model}"):
            traced = symbolic_trace(model)
    except TraceError as exc:
        # The message already says where, in the user's code; keep it on one line.
        raise CliError(f"cannot trace {args.model}: " + _one_line(str(exc))) from None
    if args.show == "code":
        text = traced.code.strip("\n").rstrip()
    elif args.show == "graph":
        text = str(traced.graph)
    else:
        text = _table_text(traced.graph)
    print(text)
    return 0


# --------------------------------------------------------------------------- explain


def _add_explain_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_argument(parser)
    _add_input_arguments(parser)
    parser.add_argument(
        "--leaf", metavar="NAME", action="append", default=[], help="a submodule to keep as a leaf"
    )


def _run_explain(args: argparse.Namespace) -> int:
    """``fxkit explain MODEL``: capture the model and print the report."""
    from .explain import explain
    from .guards import CaptureError

    model = load_model(args.model, meta=args.meta, config=args.config)
    positional, keywords = example_inputs(args, model)
    try:
        with progress(f"capturing {args.model}"):
            report = explain(model, positional, keywords, leaf_modules=list(args.leaf))
    except CaptureError as error:
        raise CliError(_one_line(str(error))) from None
    print(report.render())
    return 0


# --------------------------------------------------------------------------- save, view, diff


def _add_graph_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by save, view and diff (after the positional arguments naming graphs)."""
    _add_input_arguments(parser)
    parser.add_argument(
        "--capture",
        action="store_true",
        help="capture with example inputs (guards, automatic leaves) instead of symbolic tracing",
    )
    parser.add_argument(
        "--allow",
        metavar="REF",
        action="append",
        default=[],
        help="when reading a saved file: a function or module class (package.module:attr) it may name",
    )


def _graph_module(spec: str, args: argparse.Namespace, shapes: bool = False) -> Any:
    """A saved file read back, or the model ``spec`` names traced (or captured with ``--capture``).

    With ``shapes``, the graph of a model gets each value's shape and dtype when example inputs exist.
    """
    from .proxy import TraceError
    from .serialize import load

    if os.path.isfile(spec):
        with progress(f"reading {spec}"):
            try:
                return load(spec, allowed=[resolve(ref) for ref in args.allow])
            except ValueError as error:
                raise CliError(f"{spec}: {error}") from None
    model = load_model(spec, meta=args.meta, config=args.config)
    inputs_known = bool(args.inputs or args.shape or spec.startswith("hf:")) or spec in _zoo_names()
    if args.capture:
        from .capture_tracer import capture
        from .guards import CaptureError

        positional, keywords = example_inputs(_with_model(args, spec), model)
        try:
            with progress(f"capturing {spec}"):
                return capture(model, positional, keywords).graph_module
        except CaptureError as error:
            raise CliError(_one_line(str(error))) from None
    try:
        with progress(f"tracing {spec}"):
            traced = _symbolic_trace(model)
    except TraceError as error:
        raise CliError(f"cannot trace {spec}: {_one_line(str(error))} (try --capture)") from None
    if shapes and inputs_known:
        positional, keywords = example_inputs(_with_model(args, spec), model)
        if not keywords:
            from .passes.shape_prop import ShapeProp

            with progress(f"propagating shapes through {spec}"):
                ShapeProp(traced).propagate(*positional)
    return traced


def _symbolic_trace(model: Any) -> Any:
    from .tracer import symbolic_trace

    return symbolic_trace(model)


def _zoo_names() -> Any:
    from . import zoo

    return zoo.MODELS


def _with_model(args: argparse.Namespace, spec: str) -> argparse.Namespace:
    copied = argparse.Namespace(**vars(args))
    copied.model = spec
    return copied


def _add_save_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_argument(parser)
    _add_graph_source_arguments(parser)
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the file to write")


def _run_save(args: argparse.Namespace) -> int:
    from .serialize import save

    gm = _graph_module(args.model, args, shapes=True)  # the shapes travel with the file, for `view`
    try:
        with progress(f"writing {args.output}"):
            save(gm, args.output)
    except ValueError as error:
        raise CliError(f"cannot save {args.model}: {_one_line(str(error))}") from None
    print(f"wrote {args.output}: {len(gm.graph.nodes)} nodes")
    return 0


def _add_view_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_argument(parser)
    _add_graph_source_arguments(parser)
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the HTML file to write")
    parser.add_argument(
        "--diff", metavar="OTHER", help="show OTHER (a saved file or a model) side by side with MODEL"
    )


def _run_view(args: argparse.Namespace) -> int:
    from .view import diff_html, to_html, write_html

    gm = _graph_module(args.model, args, shapes=True)
    if args.diff:
        other = _graph_module(args.diff, args, shapes=True)
        with progress("drawing the page"):
            page = diff_html(gm, other)
    else:
        with progress("drawing the page"):
            page = to_html(gm)
    write_html(page, args.output)
    print(f"wrote {args.output}: {len(gm.graph.nodes)} nodes")
    return 0


def _add_diff_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("before", metavar="A", help="a saved file or a model (as for MODEL)")
    parser.add_argument("after", metavar="B", help="a saved file or a model (as for MODEL)")
    parser.add_argument(
        "--config", metavar="KEY=VALUE", action="append", default=[], help="as for MODEL, for hf: models"
    )
    _add_graph_source_arguments(parser)
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the HTML file to write")


def _run_diff(args: argparse.Namespace) -> int:
    args.diff = args.after
    args.model = args.before
    return _run_view(args)


# --------------------------------------------------------------------------- the command table


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
        _add_explain_arguments,
        _run_explain,
    ),
    _Command(
        "save",
        "trace (or capture) a model and save its graph and weights to a file",
        _add_save_arguments,
        _run_save,
    ),
    _Command(
        "view",
        "write a self-contained HTML page of a model's graph or of a saved file",
        _add_view_arguments,
        _run_view,
    ),
    _Command("diff", "write an HTML page showing two graphs side by side", _add_diff_arguments, _run_diff),
]


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
    try:
        args = _parser().parse_args(argv)
        return args.run(args)
    except (CliError, ResolveError) as exc:
        print(f"fxkit: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fxkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) stopped early: not an error of ours. Silence the final flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # the user's model raised: report it without a traceback
        command = " ".join(sys.argv[1:3] if argv is None else list(argv)[:2])
        print(f"fxkit: error: {command}: {type(exc).__name__}: {_one_line(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    # Run the imported fxkit.cli, not this __main__ copy, so that there is one CliError class.
    from fxkit.cli import main as _main

    sys.exit(_main())
