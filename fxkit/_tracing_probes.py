"""Library functions that ask "is this value being traced?", answered yes for fxkit's traced values.

Libraries leave out checks that read tensor values while a tracer runs. transformers, for one,
builds its attention masks without looking at them when ``is_tracing(mask)`` says so; a graph
captured that way is right for every padding, where reading the mask would make each padding
pattern a guard (and ``symbolic_trace`` would stop at the read). Those functions recognise
torch.fx's Proxy, Dynamo and fake tensors, not fxkit's values.

So each trace gives the probes of libraries already imported a body that answers True for an fxkit
Proxy (a captured tensor included) and runs the original body otherwise. The function object stays
the same, so every module that imported it by name sees the change, and there is one patch per
probe to undo (the tracer's patch registry puts the original body back when the trace ends).
Nothing is imported here.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Dict, List, Tuple

from .proxy import Proxy

__all__ = ["PROBES", "answering_body", "probe_functions"]

#: (module, function) of each probe: a function of the value(s) in question that returns a bool.
PROBES: Tuple[Tuple[str, str], ...] = (
    ("transformers.utils.import_utils", "is_tracing"),
    ("transformers.utils.import_utils", "is_torch_fx_proxy"),
)

# id(original body) -> (original body, the function as it was, the answering body); kept, since
# every trace installs the same body again.
_bodies: Dict[int, Tuple[types.CodeType, types.FunctionType, types.CodeType]] = {}


def probe_functions() -> List[types.FunctionType]:
    """The probes of the libraries already imported (plain functions with plain parameters)."""
    found: List[types.FunctionType] = []
    for module_name, name in PROBES:
        module = sys.modules.get(module_name)
        function = getattr(module, name, None) if module is not None else None
        if isinstance(function, types.FunctionType) and _plain_parameters(function.__code__):
            found.append(function)
    return found


def _plain_parameters(code: types.CodeType) -> bool:
    no_varargs = not code.co_flags & (0x04 | 0x08)  # CO_VARARGS, CO_VARKEYWORDS
    return no_varargs and not code.co_kwonlyargcount and not code.co_freevars


def answering_body(function: types.FunctionType, body: types.CodeType) -> types.CodeType:
    """A body for ``function`` (whose body is ``body``) with the same parameters: True when an
    argument is an fxkit Proxy, else what ``body`` returns."""
    made = _bodies.get(id(body))
    if made is not None and made[0] is body:
        return made[2]
    as_it_was = types.FunctionType(
        body, function.__globals__, function.__name__, function.__defaults__, function.__closure__
    )
    parameters = ", ".join(body.co_varnames[: body.co_argcount])
    source = (
        f"def {function.__name__}({parameters}):\n"
        "    from fxkit._tracing_probes import _answer\n"
        f"    return _answer({id(body)}, ({parameters}{',' if parameters else ''}))\n"
    )
    namespace: Dict[str, Any] = {}
    exec(
        compile(source, f"<fxkit: {function.__module__}.{function.__name__} while tracing>", "exec"),
        namespace,
    )
    answering = namespace[function.__name__].__code__
    _bodies[id(body)] = (body, as_it_was, answering)
    return answering


def _answer(body_id: int, arguments: Tuple[Any, ...]) -> Any:
    if any(isinstance(value, Proxy) for value in arguments):
        return True
    return _bodies[body_id][1](*arguments)
