"""The structure of values crossing a capture's boundary: containers, objects and plain values.

An input of a captured program may be any nesting of tuples, lists, dicts, NamedTuples,
dataclasses, user objects holding tensors in attributes (transformers caches), types registered
with ``torch.utils._pytree``, enums and plain Python values. :func:`fingerprint` describes such a
value as a nested tuple of strings and numbers -- tensors appear only as ``("tensor",)`` -- so that
the generated code can carry the example's fingerprint as a literal and compare it with the
fingerprint of each call's input (:func:`first_difference` names where they differ).
"""

from __future__ import annotations

import dataclasses
import enum
import types
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch
import torch.utils._pytree as pytree
from torch import nn

# Values compared by equality (their repr is part of the fingerprint).
_PLAIN_TYPES = (
    int,
    float,
    bool,
    complex,
    str,
    bytes,
    type(None),
    type(Ellipsis),
    torch.dtype,
    torch.device,
    torch.layout,
    torch.memory_format,
    enum.Enum,
)
# Values compared by identity: functions, classes, modules and other objects without a structure.
_OPAQUE_TYPES = (
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
    nn.Module,
)


def type_name(value: Any) -> str:
    cls = value if isinstance(value, type) else type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def is_plain(value: Any) -> bool:
    return isinstance(value, _PLAIN_TYPES)


def is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def _is_pytree_node(value: Any) -> bool:
    cls = type(value)
    return cls in pytree.SUPPORTED_NODES and cls not in (tuple, list, dict) and not is_namedtuple(value)


def has_attributes(value: Any) -> bool:
    """Whether ``value`` is a user object flattened by its attributes (a dataclass, a cache...)."""
    return hasattr(value, "__dict__") and not isinstance(value, _OPAQUE_TYPES) and not is_plain(value)


def children(value: Any) -> Optional[List[Tuple[Tuple[str, Any], Any]]]:
    """The parts of a structured value as ``((how, key), part)`` pairs, or None for a leaf.

    ``how`` is ``"item"`` (``value[key]``), ``"attr"`` (``getattr(value, key)``) or ``"pytree"``
    (the key-th child of ``torch.utils._pytree``'s flattening).
    """
    if isinstance(value, torch.Tensor) or is_plain(value) or isinstance(value, _OPAQUE_TYPES):
        return None
    if type(value) in (tuple, list) or is_namedtuple(value):
        return [(("item", index), item) for index, item in enumerate(value)]
    if isinstance(value, dict):
        parts: List[Tuple[Tuple[str, Any], Any]] = [(("item", key), item) for key, item in value.items()]
        if type(value) is not dict and type(value).__dict__.get("__dataclass_fields__") is None:
            parts.extend(
                (("attr", key), item) for key, item in vars(value).items() if not key.startswith("__")
            )
        return parts
    if _is_pytree_node(value):
        flat, _ = pytree.SUPPORTED_NODES[type(value)].flatten_fn(value)
        return [(("pytree", index), item) for index, item in enumerate(flat)]
    if has_attributes(value):
        return [(("attr", key), item) for key, item in vars(value).items()]
    if isinstance(value, (tuple, list)):
        return [(("item", index), item) for index, item in enumerate(value)]
    return None


def fingerprint(value: Any, opaque: Optional[List[Any]] = None) -> Any:
    """A literal description of ``value``'s structure and plain values (tensors: ``("tensor",)``).

    Objects without structure (functions, classes, modules) are described by their position in
    ``opaque``, which the caller compares by identity.
    """
    seen: Dict[int, int] = {}
    found: List[Any] = [] if opaque is None else opaque
    return _fingerprint(value, seen, found)


def _fingerprint(value: Any, seen: Dict[int, int], opaque: List[Any]) -> Any:
    if isinstance(value, torch.Tensor):
        return ("tensor",)
    if is_plain(value):
        return ("value", type_name(value), repr(value))
    if isinstance(value, _OPAQUE_TYPES):
        opaque.append(value)
        return ("opaque", type_name(value), len(opaque) - 1)
    if id(value) in seen:
        return ("same as", seen[id(value)])
    parts = children(value)
    if parts is None:
        opaque.append(value)
        return ("opaque", type_name(value), len(opaque) - 1)
    seen[id(value)] = len(seen)
    context: Any = ""
    if _is_pytree_node(value):
        context = repr(pytree.SUPPORTED_NODES[type(value)].flatten_fn(value)[1])
    described = tuple((how, repr(key), _fingerprint(part, seen, opaque)) for (how, key), part in parts)
    return ("node", type_name(value), context, described)


def first_difference(actual: Any, expected: Any, path: str = "") -> Optional[str]:
    """Where two fingerprints differ, in words (``.layers[0].keys is a tensor, expected None``)."""
    if actual == expected:
        return None
    if actual[0] != "node" or expected[0] != "node" or actual[1] != expected[1] or actual[2] != expected[2]:
        return f"{path or 'the value'} is {_describe(actual)}, expected {_describe(expected)}"
    actual_parts = {(how, key): part for how, key, part in actual[3]}
    expected_parts = {(how, key): part for how, key, part in expected[3]}
    for how, key, part in expected[3]:
        where = f"{path}{_step(how, key)}"
        if (how, key) not in actual_parts:
            return f"{where} is missing"
        difference = first_difference(actual_parts[(how, key)], part, where)
        if difference is not None:
            return difference
    extra = [f"{path}{_step(how, key)}" for how, key, _ in actual[3] if (how, key) not in expected_parts]
    if extra:
        return f"{extra[0]} was not there during capture"
    return f"{path or 'the value'} has its parts in another order"


def _step(how: str, key: str) -> str:
    if how == "attr":
        return f".{key.strip(chr(39))}"
    if how == "pytree":
        return f"<child {key}>"
    return f"[{key}]"


def describe_fingerprint(description: Any) -> str:
    """A short description of a fingerprint: ``a dict of 2 parts``."""
    return _describe(description)


def path_text(path: Tuple[Tuple[str, Any], ...]) -> str:
    return "".join(_step(how, repr(key)) for how, key in path) or "the top level"


def _describe(description: Any) -> str:
    tag = description[0]
    if tag == "tensor":
        return "a tensor"
    if tag == "value":
        return description[2]
    if tag == "node":
        return f"a {description[1].rpartition('.')[2]} of {len(description[3])} parts"
    if tag == "opaque":
        return f"the {description[1].rpartition('.')[2]} object"
    return "a reference to an earlier part"


def part_of(value: Any, how: str, key: Any) -> Any:
    """The part ``(how, key)`` of ``value`` (see :func:`children`)."""
    if how == "item":
        return value[key]
    if how == "attr":
        return getattr(value, key)
    flat, _ = pytree.SUPPORTED_NODES[type(value)].flatten_fn(value)
    return flat[key]


def rebuild(value: Any, replace: Callable[[Any], Any], copies: Dict[int, Any]) -> Any:
    """A copy of ``value`` with every leaf ``leaf`` replaced by ``replace(leaf)``.

    Containers and objects are copied (objects without calling their ``__init__``), so that the
    original is not changed when the copy is; ``copies`` maps ``id(original)`` to its copy.
    """
    if id(value) in copies:
        return copies[id(value)]
    parts = children(value)
    if parts is None:
        return replace(value)
    cls = type(value)
    if cls in (tuple, list):
        new: Any = cls(rebuild(part, replace, copies) for _, part in parts)
    elif is_namedtuple(value):
        new = cls(*(rebuild(part, replace, copies) for _, part in parts))
    elif _is_pytree_node(value):
        node = pytree.SUPPORTED_NODES[cls]
        flat, context = node.flatten_fn(value)
        new = node.unflatten_fn([rebuild(part, replace, copies) for _, part in parts], context)
    elif isinstance(value, dict):
        new = copies[id(value)] = cls.__new__(cls)
        for (how, key), part in parts:
            if how == "item":
                dict.__setitem__(new, key, rebuild(part, replace, copies))
            else:
                object.__setattr__(new, key, rebuild(part, replace, copies))
    elif isinstance(value, (tuple, list)):
        items = [rebuild(part, replace, copies) for _, part in parts]
        new = cls.__new__(cls, items)
        if isinstance(new, list):
            list.extend(new, items)
    else:
        new = copies[id(value)] = cls.__new__(cls)
        for (_, key), part in parts:
            object.__setattr__(new, key, rebuild(part, replace, copies))
    copies[id(value)] = new
    return new


def walk(
    value: Any, path: Tuple[Tuple[str, Any], ...] = ()
) -> Iterator[Tuple[Tuple[Tuple[str, Any], ...], Any]]:
    """Every part of ``value`` with its path of ``(how, key)`` steps, parents before children."""
    seen: Dict[int, None] = {}
    pending = [(path, value)]
    while pending:
        here, current = pending.pop()
        yield here, current
        parts = children(current)
        if parts is None or id(current) in seen:
            continue
        seen[id(current)] = None
        pending.extend((here + (step,), part) for step, part in reversed(parts))


def is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)
