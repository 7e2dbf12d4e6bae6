"""Flattening inputs along a known ``TreeSpec``, used by pytree-flattened generated code."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch.utils._pytree as pytree
from torch.utils._pytree import tree_flatten  # noqa: F401  (torch.fx._pytree re-exports it)

__all__ = ["register_pytree_flatten_spec", "tree_flatten_spec"]

FlattenFnSpec = Callable[[Any, pytree.TreeSpec], List[Any]]
ExactMatchFnSpec = Callable[[Any, pytree.TreeSpec], bool]

#: type -> function giving a value's children in the order its spec lists them.
SUPPORTED_NODES: Dict[type, FlattenFnSpec] = {}
#: type -> function telling whether a value matches its spec exactly (kept for callers that ask).
SUPPORTED_NODES_EXACT_MATCH: Dict[type, Optional[ExactMatchFnSpec]] = {}


def register_pytree_flatten_spec(
    cls: type, flatten_fn_spec: FlattenFnSpec, flatten_fn_exact_match_spec: Optional[ExactMatchFnSpec] = None
) -> None:
    """Teach ``tree_flatten_spec`` how to read the children of ``cls`` values along a spec (a type
    also registered with ``torch.utils._pytree``); registering again replaces the functions."""
    SUPPORTED_NODES[cls] = flatten_fn_spec
    SUPPORTED_NODES_EXACT_MATCH[cls] = flatten_fn_exact_match_spec


def _dict_flatten_spec(d: Dict[Any, Any], spec: pytree.TreeSpec) -> List[Any]:
    """The values of ``d`` for the keys the spec recorded, in its order (extra keys ignored)."""
    return [d[key] for key in spec.context]


def _list_flatten_spec(d: List[Any], spec: pytree.TreeSpec) -> List[Any]:
    """The first ``spec.num_children`` items of ``d``."""
    return [d[index] for index in range(spec.num_children)]


def _tuple_flatten_spec(d: Tuple[Any, ...], spec: pytree.TreeSpec) -> List[Any]:
    return [d[index] for index in range(spec.num_children)]


def _namedtuple_flatten_spec(d: Tuple[Any, ...], spec: pytree.TreeSpec) -> List[Any]:
    return [d[index] for index in range(spec.num_children)]


def _dict_flatten_spec_exact_match(d: Dict[Any, Any], spec: pytree.TreeSpec) -> bool:
    """Whether ``d`` has exactly as many keys as the spec."""
    return len(d) == len(spec.context)


def _list_flatten_spec_exact_match(d: List[Any], spec: pytree.TreeSpec) -> bool:
    return len(d) == spec.num_children


def _tuple_flatten_spec_exact_match(d: Tuple[Any, ...], spec: pytree.TreeSpec) -> bool:
    return len(d) == spec.num_children


def _namedtuple_flatten_spec_exact_match(d: Tuple[Any, ...], spec: pytree.TreeSpec) -> bool:
    return len(d) == spec.num_children


def _deregister_pytree_flatten_spec(cls: type) -> None:
    SUPPORTED_NODES.pop(cls, None)
    SUPPORTED_NODES_EXACT_MATCH.pop(cls, None)


def _children(spec: pytree.TreeSpec) -> List[pytree.TreeSpec]:
    children = getattr(spec, "children", None)
    if callable(children):
        return list(children())
    return list(spec.children_specs)


def tree_flatten_spec(pytree: Any, spec: "pytree.TreeSpec") -> List[Any]:  # noqa: F811  (torch.fx's name)
    """Leaves of ``pytree`` (the value) in the order ``spec`` lists them.

    Unlike a plain flatten, dicts are read by the keys the spec recorded, so a caller may pass a dict
    whose keys come in another order (or with extra keys) and still line up with the placeholders.
    """
    leaves: List[Any] = []
    _walk(pytree, spec, leaves)
    return leaves


_PROXY_TYPE: Optional[type] = None


def _is_proxy(value: Any) -> bool:
    global _PROXY_TYPE
    if _PROXY_TYPE is None:
        from .proxy import Proxy  # imported on first use: no import cycle through codegen

        _PROXY_TYPE = Proxy
    return isinstance(value, _PROXY_TYPE)


def _walk(value: Any, spec: pytree.TreeSpec, leaves: List[Any]) -> None:
    if spec.is_leaf():
        leaves.append(value)
        return
    children = _children(spec)
    flatten_fn = SUPPORTED_NODES.get(spec.type)
    if flatten_fn is not None:
        for item, child in zip(flatten_fn(value, spec), children):
            _walk(item, child, leaves)
        return
    if _is_proxy(value):
        # Retracing code that flattens its inputs: the input is one traced value, so its parts
        # are read with getitem (all children of a level first, then each child), as torch.fx does.
        items = _dict_flatten_spec(value, spec) if spec.type is dict else _list_flatten_spec(value, spec)
        for item, child in zip(items, children):
            _walk(item, child, leaves)
        return
    if spec.type is dict or (isinstance(value, dict) and isinstance(spec.context, list)):
        keys = spec.context
        if not isinstance(value, dict):
            raise TypeError(f"expected a dict with keys {keys} for this input, got {type(value).__name__}")
        missing = [key for key in keys if key not in value]
        if missing:
            raise KeyError(f"input dict is missing keys {missing}; the traced program expects {keys}")
        for key, child in zip(keys, children):
            _walk(value[key], child, leaves)
        return
    if spec.type in (list, tuple) or isinstance(value, (list, tuple)):
        items = list(value) if isinstance(value, (list, tuple)) else pytree.tree_flatten(value)[0]
        if len(items) != len(children):
            raise ValueError(
                f"expected a {spec.type.__name__} of {len(children)} items for this input, got {len(items)}"
            )
        for item, child in zip(items, children):
            _walk(item, child, leaves)
        return
    flat, _ = pytree.tree_flatten(value)
    leaves.extend(flat)
