"""Normalizing passes: ``NormalizeArgs`` binds call arguments to their parameter names (keyword
form, defaults filled in); ``NormalizeOperators`` writes ``torch.add(a, b)`` and the other binary
torch functions as the Python operator they stand for (``a + b``)."""

from __future__ import annotations

import operator
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from fxkit.experimental.schema_type_annotation import AnnotateTypesWithSchema
from fxkit.interpreter import Transformer
from fxkit.node import Argument, Node, Target
from fxkit.operator_schemas import normalize_function, normalize_module

__all__ = ["NormalizeArgs", "NormalizeOperators"]


def _argument_type(value: Any) -> Any:
    """The type ``normalize_function`` disambiguates overloads with: a node's ``meta["type"]``
    (None when absent), a Python value's class, and ``List[T]`` / ``Tuple[T, ...]`` for
    sequences whose items share one type."""
    if isinstance(value, Node):
        return value.meta.get("type")
    if isinstance(value, (list, tuple)):
        item_types = {_argument_type(item) for item in value}
        if len(item_types) == 1 and None not in item_types:
            (item_type,) = item_types
            return List[item_type] if isinstance(value, list) else Tuple[item_type, ...]  # type: ignore[valid-type]
        return None
    return type(value)


class NormalizeArgs(Transformer):
    """Copy a GraphModule, matching the arguments of each ``call_function`` and ``call_module``
    against the target's signature: with ``normalize_to_only_use_kwargs`` (the default) every
    argument becomes a keyword argument, in parameter order, and defaults are filled in.

    Torch operators with several overloads are normalized only when the argument types single
    one out; types come from ``meta["type"]`` of the argument nodes. Targets whose signature
    cannot be matched (positional-only or ``*args`` parameters, ambiguous overloads) are kept
    as they are. Node types and meta carry over.
    """

    def __init__(self, module: torch.nn.Module, normalize_to_only_use_kwargs: bool = True) -> None:
        super().__init__(module)
        self.node_map: Dict[Any, Node] = {}
        self.normalize_to_only_use_kwargs = normalize_to_only_use_kwargs

    def run_node(self, n: Node) -> Any:
        if n.op == "call_function":
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            arg_types = tuple(_argument_type(arg) for arg in n.args)
            kwarg_types = {name: _argument_type(value) for name, value in n.kwargs.items()}
            out = self.call_function(n.target, args, kwargs, arg_types, kwarg_types)
        else:
            out = super().run_node(n)
        if n.op != "output" and isinstance(getattr(out, "node", None), Node):
            self.node_map[out] = n
            for key, value in n.meta.items():
                out.node.meta.setdefault(key, value)
            out.node.type = n.type
        return out

    def call_function(
        self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any],
        arg_types: Optional[Tuple[Any, ...]] = None, kwarg_types: Optional[Dict[str, Any]] = None,
    ) -> Any:  # fmt: skip
        assert callable(target)
        normalized = normalize_function(
            target, args, kwargs, arg_types, kwarg_types, self.normalize_to_only_use_kwargs
        )
        if normalized is not None:
            args, kwargs = normalized.args, normalized.kwargs
        return self.tracer.create_proxy("call_function", target, args, kwargs)

    def call_module(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        assert isinstance(target, str)
        normalized = normalize_module(self.module, target, args, kwargs, self.normalize_to_only_use_kwargs)
        if normalized is not None:
            args, kwargs = normalized.args, normalized.kwargs
        return super().call_module(target, args, kwargs)


class NormalizeOperators(AnnotateTypesWithSchema):
    """Copy a GraphModule, spelling binary torch functions called with exactly two positional
    arguments as the Python operator (``torch.add(a, b)`` -> ``a + b``; the full table is
    ``binary_magic_method_remap``), and annotating node types as ``AnnotateTypesWithSchema``
    does. A call with keyword arguments (``alpha=``, ``rounding_mode=``) is kept: the operator
    could not express it. (torch.fx rewrites it too and drops the keywords.)
    """

    binary_magic_method_remap: Dict[Callable[[Any, Any], Any], Callable[[Any, Any], Any]] = {
        torch.add: operator.add, torch.sub: operator.sub, torch.mul: operator.mul, torch.div: operator.truediv,
        torch.floor_divide: operator.floordiv, torch.remainder: operator.mod, torch.eq: operator.eq,
        torch.ne: operator.ne, torch.lt: operator.lt, torch.le: operator.le, torch.gt: operator.gt,
        torch.ge: operator.ge,
    }  # fmt: skip

    def call_function(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        replacement = self.binary_magic_method_remap.get(target)  # type: ignore[call-overload]
        if replacement is not None and len(args) == 2 and not kwargs:
            return self.tracer.create_proxy("call_function", replacement, args, {})
        return super().call_function(target, args, kwargs)
