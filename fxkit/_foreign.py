"""Recognising torch.fx objects handed to fxkit, without importing torch.fx.

Every fxkit entry point that takes a Graph, GraphModule or Node asks here first: a torch.fx object
is either converted (where fxkit only reads it) or refused with a ``TypeError`` that says how to
convert it, never half-used. The exception: pure analyses whose answer is the graph's own nodes
(``get_source_partitions``) read a torch.fx graph in place, since a converted copy's nodes would
be of no use to the caller.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, Iterable, List, Optional, Tuple

__all__ = ["torch_fx_kind", "reject", "reject_all", "convert"]


def torch_fx_kind(obj: Any) -> Optional[str]:
    """``"GraphModule"``, ``"Graph"`` or ``"Node"`` when ``obj`` is that torch.fx object, else None.

    Looks torch.fx up in ``sys.modules``: if nobody imported it, no object can come from it.
    """
    fx = sys.modules.get("torch.fx")
    if fx is None or not hasattr(fx, "GraphModule"):  # partially imported: nothing built with it yet
        return None
    if isinstance(obj, fx.GraphModule):
        return "GraphModule"
    if isinstance(obj, fx.Graph):
        return "Graph"
    if isinstance(obj, fx.Node):
        return "Node"
    return None


def reject(obj: Any, where: str) -> None:
    """Raise a TypeError if ``obj`` is a torch.fx Graph, GraphModule or Node; ``where`` names the call."""
    kind = torch_fx_kind(obj)
    if kind is None:
        return
    if kind == "Node":
        how = "convert its graph (or module) with fxkit.interop.from_torch_fx(...) and use the fxkit node of the same name"
    else:
        how = f"convert it first with fxkit.interop.from_torch_fx({kind.lower()}) (and back with fxkit.interop.to_torch_fx)"
    raise TypeError(f"{where} got a torch.fx {kind}, which fxkit does not edit in place; {how}")


def reject_all(objs: Iterable[Any], where: str) -> None:
    """``reject`` each of ``objs`` (nodes of a partition, say); free when torch.fx was never imported."""
    if "torch.fx" in sys.modules:
        for obj in objs:
            reject(obj, where)


def convert(obj: Any) -> Any:
    """``obj`` itself, or its fxkit twin when it is a torch.fx GraphModule or Graph."""
    kind = torch_fx_kind(obj)
    if kind is None:
        return obj
    if kind == "Node":
        reject(obj, "fxkit")
    from .interop import from_torch_fx

    return from_torch_fx(obj)


def materialize_forward(module: Any) -> None:
    """Give a lazily compiled torch.fx GraphModule its real ``forward`` before it is traced.

    Dynamo hands out modules whose class ``forward`` is a ``(*args, **kwargs)`` stub until their
    code is first generated; reading ``code`` generates it, as calling the module would.
    """
    if torch_fx_kind(module) == "GraphModule":
        module.code  # noqa: B018  (the read generates the code and installs the real forward)


def wrapped_functions(
    own: Dict[Tuple[int, str], Dict[str, Any]], with_torch_fx: bool = True
) -> List[Tuple[Dict[str, Any], str]]:
    """The ``(globals, name)`` pairs to patch while tracing: fxkit's ``wrap`` registry, then torch.fx's
    (unless ``with_torch_fx`` is False)."""
    pairs = {key: (globals_dict, name) for key, globals_dict in list(own.items()) for name in (key[1],)}
    if with_torch_fx and "torch.fx._symbolic_trace" in sys.modules:
        from .interop import torch_fx_wrapped_functions

        for globals_dict, name in torch_fx_wrapped_functions():
            pairs.setdefault((id(globals_dict), name), (globals_dict, name))
    return list(pairs.values())


def wrapped_methods() -> List[Tuple[type, str]]:
    """The ``(class, name)`` methods torch.fx's registry asks to record while tracing (none if torch.fx
    was not imported)."""
    if "torch.fx._symbolic_trace" not in sys.modules:
        return []
    from .interop import torch_fx_wrapped_methods

    return list(dict.fromkeys(torch_fx_wrapped_methods()))
