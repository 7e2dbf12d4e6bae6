"""Saving and loading GraphModules without pickle.

A saved file is one ``safetensors`` file: the weights as tensors, and the graph, the submodule tree
and the plain-data meta as JSON in the file's metadata under the key ``"fxkit"``. Loading parses
JSON and tensors only: nothing is unpickled, nothing is imported, and every name in the file must
resolve to something on an allow-list (torch operators and tensor functions, ``operator``, ``math``,
a few builtins, fxkit's guard functions, ``torch.nn`` module classes) or to a function or module
class the caller passes in ``allowed=``. Anything else is refused with a ``ValueError`` naming it.

    fxkit.save(gm, "model.fxkit")
    gm = fxkit.load("model.fxkit", allowed=[my_helper, MyBlock])
"""

from __future__ import annotations

import builtins
import collections.abc
import functools
import json
import math
import operator
import os
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.utils._pytree as pytree

from . import _paths, _safetensors, _structure, guards
from ._fast_path import FastPathSwitch
from ._gc import collector_paused
from .graph import Graph
from .graph_module import GraphModule, _Container
from .node import Node

__all__ = ["FORMAT", "VERSION", "load", "save", "use_fast_path"]

FORMAT = "fxkit.graph_module"
_CONTAINER = "fxkit.graph_module._Container"
VERSION = 1

_FAST_PATH = FastPathSwitch("save/load")
#: ``with use_fast_path(False): ...`` loads through the plain definitions in this thread (each fast
#: path below, ``_bare_module`` and ``_stores_training``, names the benchmark figure it is kept for).
use_fast_path = _FAST_PATH.use

# Functions that build callables from strings or call what they are given: with them a graph
# could reach any object, so they are never resolved even though their modules are allowed.
_NEVER = {"operator.call", "operator.methodcaller", "operator.attrgetter"}
_BUILTINS = (
    "abs", "all", "any", "bool", "divmod", "float", "getattr", "int", "len", "max", "min", "pow",
    "range", "round", "slice", "sum", "tuple", "list", "dict",
)  # fmt: skip
_METHOD_OWNERS = (torch.Tensor, torch.Size, tuple, list, dict, str, int, float)
_NEVER_METHODS = {"format", "format_map", "register_hook", "register_post_accumulate_grad_hook"}


# --------------------------------------------------------------------------- allow-lists


@dataclass(frozen=True)
class _Names:
    """Allowed objects by saved name, and saved names by object id."""

    by_name: Dict[str, Any]
    by_id: Dict[int, str]


_TABLE: List[_Names] = []


# torch functions that make tensors from numbers: safe, and common in traced and captured graphs.
_FACTORIES = (
    "arange", "zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm", "eye", "linspace",
    "logspace", "tensor", "as_tensor", "scalar_tensor", "empty_strided", "tril_indices", "triu_indices",
    "is_grad_enabled", "get_default_dtype", "is_autocast_enabled",
)  # fmt: skip


def _builtin_table() -> _Names:
    """torch tensor functions, aten/prims ops are resolved separately; operator, math, builtins, guards."""
    if _TABLE:
        return _TABLE[0]
    by_name: Dict[str, Any] = {}
    overridable = torch.overrides.get_overridable_functions()
    allowed_ids = {id(fn) for functions in overridable.values() for fn in functions}
    for namespace in overridable:
        if namespace is torch.Tensor or not isinstance(namespace, type(torch)):
            continue
        for attr in dir(namespace):
            value = getattr(namespace, attr, None)
            if id(value) in allowed_ids:
                by_name.setdefault(f"{namespace.__name__}.{attr}", value)
    for module in (operator, math):
        for attr in dir(module):
            value = getattr(module, attr)
            name = f"{module.__name__}.{attr}"
            if not attr.startswith("_") and callable(value) and name not in _NEVER:
                by_name[name] = value
    for attr in _BUILTINS:
        by_name[f"builtins.{attr}"] = getattr(builtins, attr)
    for name in _FACTORIES:  # not overridable (no tensor argument), so not in torch's table above
        by_name[f"torch.{name}"] = getattr(torch, name)
    by_name["torch._C._set_grad_enabled"] = torch._C._set_grad_enabled  # `with torch.no_grad():` in a capture
    # The run-time checks of captured graphs, and how they rebuild and update structured values
    # (classes reach build_object and autograd_apply only from the allow-list).
    for helper in (*guards.GUARD_FUNCTIONS, guards.assign, guards.remove, guards.replace_items,
                   guards.build_object, guards.autograd_apply):  # fmt: skip
        by_name[f"fxkit.guards.{helper.__name__}"] = helper
    by_name["fxkit._structure.part_of"] = _structure.part_of
    by_id: Dict[int, str] = {}
    for name, value in by_name.items():
        by_id.setdefault(id(value), name)
    _TABLE.append(_Names(by_name, by_id))
    return _TABLE[0]


def _qualified_name(value: Any) -> Optional[str]:
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return None
    return f"{module}.{qualname}"


def _is_torch_nn_class(value: Any) -> bool:
    return (
        isinstance(value, type)
        and issubclass(value, torch.nn.Module)
        and value.__module__.startswith("torch.nn.")
        and not issubclass(value, GraphModule)
    )


class _Resolver:
    """What the names in a file may mean: the built-in allow-list plus the caller's ``allowed``."""

    def __init__(self, allowed: Iterable[Any]) -> None:
        self.functions: Dict[str, Any] = {}
        self.classes: Dict[str, type] = {}
        self.methods: set = set()
        self.plain_training: Dict[type, bool] = {}  # per module class, for _stores_training
        for item in allowed:
            if isinstance(item, str):
                if not item.isidentifier():
                    raise ValueError(f"allowed method name {item!r} is not an identifier")
                self.methods.add(item)
                continue
            name = _qualified_name(item)
            if name is None:
                raise ValueError(f"allowed entry {item!r} has no importable name (a lambda or a local?)")
            if isinstance(item, type) and issubclass(item, torch.nn.Module):
                self.classes[name] = item
            elif callable(item):
                self.functions[name] = item
            else:
                raise ValueError(
                    f"allowed entry {item!r} is neither a function, a module class nor a method name"
                )

    def function(self, name: Any, where: str) -> Any:
        if not isinstance(name, str):
            raise ValueError(f"{where}: function name {name!r} is not a string")
        if name in self.functions:
            return self.functions[name]
        value = _builtin_table().by_name.get(name)
        if value is not None:
            return value
        op = _resolve_op(name)
        if op is not None:
            return op
        raise ValueError(
            f"{where}: refusing to load function {name!r}: only torch operators and tensor functions,"
            " operator, math, a few builtins and fxkit's guards load by themselves; pass the function"
            " in fxkit.load(..., allowed=[...]) if you trust it"
        )

    def module_class(self, name: Any, where: str) -> type:
        if not isinstance(name, str):
            raise ValueError(f"{where}: module class name {name!r} is not a string")
        if name in self.classes:
            return self.classes[name]
        if name.startswith("torch.nn."):
            module_name, _, class_name = name.rpartition(".")
            value = getattr(sys.modules.get(module_name), class_name, None)
            if _is_torch_nn_class(value) and _qualified_name(value) == name:
                self.classes[name] = value  # later modules of the same class skip the checks
                return value
        raise ValueError(
            f"{where}: refusing to build module class {name!r}: only torch.nn classes load by themselves;"
            " pass the class in fxkit.load(..., allowed=[...]) if you trust it"
        )

    def method(self, name: Any, where: str) -> str:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{where}: method name {name!r} is not an identifier")
        if name in self.methods:
            return name
        if not name.startswith("_") and name not in _NEVER_METHODS:
            if any(callable(getattr(owner, name, None)) for owner in _METHOD_OWNERS):
                return name
        raise ValueError(
            f"{where}: refusing method {name!r}: only public methods of tensors, sizes and Python containers"
            " load by themselves; pass the name in fxkit.load(..., allowed=[...]) if you trust it"
        )


def _resolve_op(name: str) -> Any:
    """``torch.ops.aten.add.Tensor`` (or a packet): aten and prims operators only."""
    parts = name.split(".")
    if len(parts) not in (4, 5) or parts[:2] != ["torch", "ops"] or parts[2] not in ("aten", "prims"):
        return None
    if not all(part.isidentifier() and not part.startswith("__") for part in parts[3:]):
        return None
    namespace = getattr(torch.ops, parts[2])
    try:
        value = getattr(namespace, parts[3])
        if len(parts) == 5:
            value = getattr(value, parts[4])
    except (AttributeError, RuntimeError):
        return None
    if isinstance(value, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        return value
    return None


def _function_name(value: Any, where: str) -> str:
    if isinstance(value, torch._ops.OpOverload):
        return f"torch.ops.{value.namespace}.{value._schema.name.split('::')[-1]}.{value._overloadname}"
    if isinstance(value, torch._ops.OpOverloadPacket):
        return f"torch.ops.{value._qualified_op_name.replace('::', '.')}"
    known = _builtin_table().by_id.get(id(value))
    if known is not None:
        return known
    name = _qualified_name(value)
    if name is None:
        raise ValueError(
            f"{where}: cannot save {value!r}: it has no importable name (a lambda or a local function?)"
        )
    return name


# --------------------------------------------------------------------------- values


def _encode(value: Any, where: str) -> Any:
    """A JSON value for a node argument or a plain meta value; ``ValueError`` for anything else."""
    cls = type(value)
    # Exact types first: they are nearly every value, and a type test is cheaper than isinstance chains.
    if cls is str or cls is int or cls is bool or value is None:
        return value
    if cls is tuple:
        return {"tuple": [_encode(item, where) for item in value]}
    if cls is Node:
        return {"node": value.name}
    if cls is dict:
        return {"dict": [[_encode(key, where), _encode(item, where)] for key, item in value.items()]}
    if cls is list:
        return [_encode(item, where) for item in value]
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, Node):
        return {"node": value.name}
    if isinstance(value, torch.Size):
        return {"size": [int(dim) for dim in value]}
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {"tuple": [_encode(item, where) for item in value]}
    if isinstance(value, list):
        return [_encode(item, where) for item in value]
    if isinstance(value, dict):
        return {"dict": [[_encode(key, where), _encode(item, where)] for key, item in value.items()]}
    if isinstance(value, slice):
        return {
            "slice": [_encode(value.start, where), _encode(value.stop, where), _encode(value.step, where)]
        }
    if isinstance(value, complex):
        return {"complex": [_encode(value.real, where), _encode(value.imag, where)]}
    if value is Ellipsis:
        return {"ellipsis": None}
    if value is guards.NOT_GIVEN:  # the default of a parameter a captured call left out
        return {"not_given": None}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).rpartition(".")[2]}
    if isinstance(value, torch.device):
        return {"device": str(value)}
    if isinstance(value, (torch.memory_format, torch.layout)):
        return {"torch": str(value).rpartition(".")[2]}
    if callable(value) and not isinstance(value, torch.nn.Module):
        return {"function": _function_name(value, where)}
    raise ValueError(f"{where}: cannot save a {type(value).__name__} ({value!r:.60})")


def _decode(value: Any, where: str, nodes: Optional[Dict[str, Node]], resolver: _Resolver) -> Any:
    cls = type(value)
    if cls is str or cls is int or cls is bool or cls is float or value is None:
        return value
    if cls is list:
        return [_decode(item, where, nodes, resolver) for item in value]
    if cls is not dict or len(value) != 1:
        raise ValueError(f"{where}: malformed value {value!r:.80}")
    ((tag, body),) = value.items()
    if tag == "node" and nodes is not None:
        node = nodes.get(body) if type(body) is str else None
        if node is None:
            raise ValueError(f"{where}: refers to node {body!r}, which is not defined before it")
        return node
    if tag == "tuple" and type(body) is list:
        return tuple([_decode(item, where, nodes, resolver) for item in body])
    if tag == "dict" and type(body) is list:
        result = {}
        for item in body:
            key, item_value = _pair(item, where)
            result[_decode(key, where, nodes, resolver)] = _decode(item_value, where, nodes, resolver)
        return result
    if tag == "size" and isinstance(body, list) and all(type(dim) is int for dim in body):
        return torch.Size(body)
    if tag == "slice" and isinstance(body, list) and len(body) == 3:
        return slice(*(_decode(item, where, nodes, resolver) for item in body))
    if tag == "float" and body in ("inf", "-inf", "nan"):
        return float(body)
    if tag == "complex" and isinstance(body, list) and len(body) == 2:
        real, imag = (_decode(item, where, nodes, resolver) for item in body)
        if isinstance(real, float) and isinstance(imag, float):
            return complex(real, imag)
    if tag == "ellipsis" and body is None:
        return Ellipsis
    if tag == "not_given" and body is None:
        return guards.NOT_GIVEN
    if tag == "dtype" and isinstance(getattr(torch, str(body), None), torch.dtype):
        return getattr(torch, body)
    if tag == "device" and isinstance(body, str):
        try:
            return torch.device(body)
        except RuntimeError as error:
            raise ValueError(f"{where}: bad device {body!r}: {error}") from None
    if tag == "torch" and isinstance(getattr(torch, str(body), None), (torch.memory_format, torch.layout)):
        return getattr(torch, body)
    if tag == "function":
        return resolver.function(body, where)
    raise ValueError(f"{where}: malformed value {value!r:.80}")


def _pair(item: Any, where: str) -> Tuple[Any, Any]:
    if type(item) is not list or len(item) != 2:
        raise ValueError(f"{where}: malformed dict entry {item!r:.80}")
    return item[0], item[1]


def _plain(value: Any) -> bool:
    """Plain data: what survives JSON and back unchanged."""
    cls = type(value)
    if cls is str or cls is int or cls is bool:
        return True
    if cls is tuple or cls is list:
        return all(_plain(item) for item in value)
    if cls is dict:
        return all(_plain(key) and _plain(item) for key, item in value.items())
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device, torch.Size)):
        return True
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(_plain(key) and _plain(item) for key, item in value.items())
    return False


def _encode_meta(meta: Dict[str, Any], where: str) -> Dict[str, Any]:
    """The plain-data entries of a node's meta; ``nn_module_stack`` keeps its paths and class names."""
    if not meta:
        return {"dict": []}
    kept: Dict[str, Any] = {}
    for key, value in meta.items():
        if key == "nn_module_stack" and isinstance(value, dict):
            value = {
                path: (entry[0], entry[1] if isinstance(entry[1], str) else _qualified_name(entry[1]) or "?")
                for path, entry in value.items()
                if isinstance(entry, tuple) and len(entry) == 2
            }
        if key == "tensor_meta":
            value = _plain_tensor_meta(value)
        if isinstance(key, str) and _plain(value):
            kept[key] = value
    return _encode(kept, where)


_MEMORY_FORMAT_NAMES = {torch.contiguous_format: "contiguous_format", torch.channels_last: "channels_last",
                        torch.channels_last_3d: "channels_last_3d", torch.preserve_format: "preserve_format"}  # fmt: skip
_MEMORY_FORMATS = {name: value for value, name in _MEMORY_FORMAT_NAMES.items()}
_TENSOR_META_MARK = "fxkit.TensorMetadata"


def _plain_tensor_meta(value: Any) -> Any:
    """ShapeProp's ``tensor_meta`` (one record or a structure of them) as plain data, or None.

    A record becomes ``[mark, shape, dtype, requires_grad, stride, memory format, is_quantized]``;
    quantization parameters are not kept (the record is then dropped)."""
    from .passes.shape_prop import TensorMetadata

    if isinstance(value, TensorMetadata):
        if value.is_quantized or value.memory_format not in (None, *_MEMORY_FORMAT_NAMES):
            return None
        memory_format = None if value.memory_format is None else _MEMORY_FORMAT_NAMES[value.memory_format]
        return [_TENSOR_META_MARK, value.shape, value.dtype, value.requires_grad, tuple(value.stride),
                memory_format, False]  # fmt: skip
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        items = [_plain_tensor_meta(item) for item in value]
        return None if any(item is None for item in items) else type(value)(items)
    if isinstance(value, dict):
        items = {key: _plain_tensor_meta(item) for key, item in value.items()}
        return None if any(item is None for item in items.values()) else items
    return value if _plain(value) else None


def _tensor_meta_from_plain(value: Any, where: str) -> Any:
    from .passes.shape_prop import TensorMetadata

    if isinstance(value, list) and value[:1] == [_TENSOR_META_MARK]:
        _expect(len(value) == 7, where, "malformed tensor_meta record")
        _, shape, dtype, requires_grad, stride, memory_format, _ = value
        _expect(
            isinstance(shape, torch.Size)
            and isinstance(dtype, torch.dtype)
            and isinstance(requires_grad, bool)
            and isinstance(stride, tuple)
            and all(isinstance(step, int) for step in stride)
            and (memory_format is None or memory_format in _MEMORY_FORMATS),
            where,
            "malformed tensor_meta record",
        )
        return TensorMetadata(shape, dtype, requires_grad, stride,
                              None if memory_format is None else _MEMORY_FORMATS[memory_format], False, {})  # fmt: skip
    if isinstance(value, (list, tuple)):
        return type(value)(_tensor_meta_from_plain(item, where) for item in value)
    if isinstance(value, dict):
        return {key: _tensor_meta_from_plain(item, where) for key, item in value.items()}
    return value


_TYPES: Dict[str, Any] = {
    "int": int, "float": float, "bool": bool, "str": str, "None": type(None), "Tensor": torch.Tensor,
    "Size": torch.Size, "dtype": torch.dtype, "device": torch.device, "Any": typing.Any,
    **{name: getattr(torch, name) for name in ("LongTensor", "FloatTensor", "DoubleTensor", "HalfTensor",
       "BFloat16Tensor", "IntTensor", "ShortTensor", "ByteTensor", "CharTensor", "BoolTensor")},
}  # fmt: skip
_GENERICS: Dict[str, Any] = {
    "List": typing.List, "Tuple": typing.Tuple, "Dict": typing.Dict, "Union": typing.Union,
    "Sequence": typing.Sequence,
}  # fmt: skip
_ORIGINS = {
    list: "List",
    tuple: "Tuple",
    dict: "Dict",
    typing.Union: "Union",
    collections.abc.Sequence: "Sequence",
}


def _encode_type(value: Any, where: str) -> Any:
    """A node's type annotation: simple types and typing generics of them."""
    if value is None:
        return None
    for name, known in _TYPES.items():
        if value is known:
            return name
    for name, generic in _GENERICS.items():
        if value is generic:
            return {name: []}
    origin = typing.get_origin(value)
    if origin is types.UnionType:  # ``X | None``: kept as written, so the code reads the same
        return {"|": [_encode_type(arg, where) for arg in typing.get_args(value)]}
    name = _ORIGINS.get(origin)
    if name is not None:
        return {name: [_encode_type(arg, where) for arg in typing.get_args(value)]}
    if isinstance(value, type) and _qualified_name(value) is not None:
        # Another class (a transformers Cache): loads only if allowed, like a function.
        return {"class": _qualified_name(value)}
    raise ValueError(f"{where}: cannot save the type annotation {value!r}")


def _decode_type(value: Any, where: str, resolver: Optional["_Resolver"] = None) -> Any:
    if value is None:
        return None
    if isinstance(value, str) and value in _TYPES:
        return _TYPES[value]
    if isinstance(value, dict) and len(value) == 1:
        ((name, args),) = value.items()
        if name == "|" and isinstance(args, list) and len(args) >= 2:
            members = [_decode_type(arg, where, resolver) for arg in args]
            try:
                return functools.reduce(operator.or_, members)
            except TypeError as error:
                raise ValueError(f"{where}: bad type annotation {value!r:.80}: {error}") from None
        if name == "class" and resolver is not None:
            cls = resolver.function(args, where)
            if not isinstance(cls, type):
                raise ValueError(f"{where}: type annotation {args!r:.80} is not a class")
            return cls
        if name in _GENERICS and isinstance(args, list):
            if not args:
                return _GENERICS[name]
            decoded = tuple(_decode_type(arg, where, resolver) for arg in args)
            try:
                return _GENERICS[name][decoded if len(decoded) > 1 else decoded[0]]
            except TypeError as error:
                raise ValueError(f"{where}: bad type annotation {value!r:.80}: {error}") from None
    raise ValueError(f"{where}: malformed type annotation {value!r:.80}")


# --------------------------------------------------------------------------- graphs

_OPS = ("placeholder", "get_attr", "call_function", "call_method", "call_module", "output")
# Attribute reads that lead from a value to frames and globals (the classic way out of a sandbox).
_NEVER_ATTRIBUTES = {
    "gi_frame",
    "gi_code",
    "cr_frame",
    "ag_frame",
    "tb_frame",
    "f_globals",
    "f_builtins",
    "f_locals",
    "f_back",
}


def _encode_graph(graph: Graph, where: str) -> Dict[str, Any]:
    from .codegen import CodeGen, _PyTreeCodeGen

    codegen = graph._codegen
    if type(codegen) not in (CodeGen, _PyTreeCodeGen):
        raise ValueError(
            f"{where}: cannot save a graph with a custom code generator ({type(codegen).__name__});"
            " fxkit.save handles the default calling convention and the pytree one of symbolic_trace"
        )
    record: Dict[str, Any] = {}
    if type(codegen) is _PyTreeCodeGen:
        record["pytree"] = _encode_pytree_info(codegen.pytree_info, where)
    nodes = []
    for node in graph.nodes:
        at = f"{where}, node {node.name!r}"
        if node.op == "call_function":
            target: Any = _function_name(node.target, at)
        elif isinstance(node.target, str):
            target = node.target
        else:
            raise ValueError(f"{at}: cannot save the {node.op} target {node.target!r}")
        entry = {
            "op": node.op,
            "name": node.name,
            "target": target,
            "args": _encode(tuple(node.args), at),
            "kwargs": _encode(dict(node.kwargs), at),
        }
        if node.type is not None:  # None and an empty meta are what a reader takes when they are left out
            entry["type"] = _encode_type(node.type, at)
        meta = _encode_meta(node.meta, at)
        if meta["dict"]:
            entry["meta"] = meta
        nodes.append(entry)
    record["nodes"] = nodes
    return record


def _encode_pytree_info(info: Any, where: str) -> Dict[str, Any]:
    """The pytree calling convention as JSON: torch's own treespec serialization, which names types
    by their registered ``serialized_type_name`` and is read back without running code."""

    def spec(value: Optional[pytree.TreeSpec]) -> Optional[str]:
        if value is None:
            return None
        try:
            return pytree.treespec_dumps(value)
        except Exception as error:
            raise ValueError(f"{where}: cannot save the graph's input/output structure: {error}") from None

    return {"orig_args": list(info.orig_args), "in_spec": spec(info.in_spec), "out_spec": spec(info.out_spec)}


def _decode_pytree_info(record: Any, where: str) -> Any:
    from .codegen import _PyTreeInfo

    _expect(isinstance(record, dict), where, "malformed pytree calling convention")
    names = record.get("orig_args")
    _expect(
        isinstance(names, list) and all(isinstance(n, str) and n.isidentifier() for n in names),
        where,
        "the pytree argument names must be identifiers",
    )

    def spec(text: Any) -> Optional[pytree.TreeSpec]:
        if text is None:
            return None
        _expect(isinstance(text, str), where, "malformed pytree spec")
        try:
            return pytree.treespec_loads(text)
        except Exception as error:
            raise ValueError(f"{where}: bad pytree spec: {type(error).__name__}: {error}"[:300]) from None

    return _PyTreeInfo(names, spec(record.get("in_spec")), spec(record.get("out_spec")))


def _dotted(name: Any) -> bool:
    return isinstance(name, str) and all(part.isidentifier() or part.isdigit() for part in name.split("."))


def _check_target(op: str, target: Any, where: str) -> None:
    if op == "output":
        ok = target == "output"
    elif op == "placeholder":
        ok = isinstance(target, str) and target.lstrip("*").isidentifier()
    else:
        ok = _dotted(target)
    if not ok:
        raise ValueError(f"{where}: bad {op} target {target!r:.80}")


def _decode_graph(record: Any, where: str, resolver: _Resolver) -> Graph:
    _expect(isinstance(record, dict) and isinstance(record.get("nodes"), list), where, "malformed graph")
    graph = Graph()
    nodes: Dict[str, Node] = {}
    for entry in record["nodes"]:
        _expect(isinstance(entry, dict), where, "malformed node")
        op, name = entry.get("op"), entry.get("name")
        at = f"{where}, node {name!r:.60}"
        _expect(op in _OPS, at, f"unknown op {op!r:.40}")
        _expect(isinstance(name, str) and name.isidentifier(), at, "a node name must be an identifier")
        target = entry.get("target")
        if op == "call_function":
            target = resolver.function(target, at)
        elif op == "call_method":
            target = resolver.method(target, at)
        else:
            _check_target(op, target, at)
        args = _decode(entry.get("args"), at, nodes, resolver)
        kwargs = _decode(entry.get("kwargs"), at, nodes, resolver)
        _expect(isinstance(args, tuple), at, "args must be a tuple")
        _expect(isinstance(kwargs, dict) and all(isinstance(k, str) for k in kwargs), at, "bad kwargs")
        if target is builtins.getattr:
            attribute = args[1] if len(args) == 2 else None
            _expect(
                isinstance(attribute, str)
                and not attribute.startswith("__")
                and attribute not in _NEVER_ATTRIBUTES,
                at,
                f"refusing getattr of {attribute!r:.60}",
            )
        node = graph.create_node(
            op, target, args, kwargs, name=name, type_expr=_decode_type(entry.get("type"), at, resolver)
        )
        _expect(
            node.name == name, at, f"the name is taken or not allowed (the graph would call it {node.name!r})"
        )
        if "meta" in entry:  # left out when empty
            meta = _decode(entry["meta"], at, None, resolver)
            _expect(isinstance(meta, dict), at, "meta must be a dict")
            if "tensor_meta" in meta:
                meta["tensor_meta"] = _tensor_meta_from_plain(meta["tensor_meta"], at)
            node.meta.update(meta)
        nodes[name] = node
    if "pytree" in record:
        from .codegen import _PyTreeCodeGen

        graph.set_codegen(_PyTreeCodeGen(_decode_pytree_info(record["pytree"], f"{where}, pytree")))
    graph.lint()
    return graph


def _expect(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{where}: {message}")


# --------------------------------------------------------------------------- modules

_INTERNALS: List[frozenset] = []


def _internal_attributes() -> Tuple[frozenset, frozenset]:
    """``__dict__`` keys every nn.Module has, and those GraphModule adds: state, not user attributes."""
    if not _INTERNALS:
        plain = frozenset(torch.nn.Module().__dict__)
        graph_module = frozenset(GraphModule(torch.nn.Module(), Graph()).__dict__) | {"_code", "meta"}
        _INTERNALS.extend([plain, graph_module])
    return _INTERNALS[0], _INTERNALS[1]


class _TensorStore:
    """Tensors to write, each object once: tied parameters stay tied."""

    def __init__(self) -> None:
        self.tensors: Dict[str, torch.Tensor] = {}
        self.keys: Dict[int, str] = {}
        self.storages: Dict[Tuple[torch.device, int], str] = {}

    def reference(self, tensor: torch.Tensor, key: str) -> Dict[str, Any]:
        known = self.keys.get(id(tensor))
        if known is not None:
            return {"tensor": known}
        self.keys[id(tensor)] = key
        if tensor.is_meta:
            return {
                "meta": {"shape": list(tensor.shape), "dtype": str(tensor.dtype).rpartition(".")[2]},
                "key": key,
            }
        storage = tensor.untyped_storage()
        if storage.nbytes():
            other = self.storages.setdefault((tensor.device, storage.data_ptr()), key)
            if other != key:
                raise ValueError(
                    f"cannot save {key!r}: it shares memory with {other!r}; fxkit.save keeps a tensor used in"
                    " two places (tied weights) but not views of one another: clone one of them"
                )
        value = tensor.detach()
        self.tensors[key] = (value if value.is_cpu else value.cpu()).contiguous()
        return {"tensor": key}


def _encode_module(module: torch.nn.Module, path: str, store: _TensorStore) -> Dict[str, Any]:
    where = path or "the root module"
    hooks = [name for name, value in vars(module).items() if name.endswith("hooks") and value]
    if hooks:
        raise ValueError(f"{where}: cannot save a module with hooks ({', '.join(hooks)}): hooks are code")
    plain, graph_module = _internal_attributes()
    record: Dict[str, Any] = {"training": module.training}
    skip = plain
    if isinstance(module, GraphModule):
        # The pytree specs the module keeps are rebuilt from the graph's calling convention.
        skip = graph_module | {"_in_spec", "_out_spec"}
        record["class"] = "fxkit.GraphModule"
        record["class_name"] = type(module).__name__
        record["graph"] = _encode_graph(module.graph, where)
        meta = getattr(module, "meta", {})
        record["meta"] = _encode({k: v for k, v in meta.items() if isinstance(k, str) and _plain(v)}, where)
    else:
        name = _qualified_name(type(module))
        if name is None:
            raise ValueError(
                f"{where}: cannot save a {type(module).__name__}: its class has no importable name"
            )
        record["class"] = name
    prefix = f"{path}." if path else ""
    saved: Dict[str, Any] = {}
    for name, parameter in module._parameters.items():
        if parameter is None:
            saved[name] = None
        else:
            reference = store.reference(parameter, prefix + name)
            if not parameter.requires_grad:  # True when left out
                reference["requires_grad"] = False
            saved[name] = reference
    record["parameters"] = saved
    record["buffers"] = {
        name: None if buffer is None else store.reference(buffer, prefix + name)
        for name, buffer in module._buffers.items()
    }
    record["non_persistent"] = sorted(module._non_persistent_buffers_set)
    record["modules"] = {
        name: None if child is None else _encode_module(child, prefix + name, store)
        for name, child in module._modules.items()
    }
    attributes: Dict[str, Any] = {}
    children, parameters, buffers = module._modules, module._parameters, module._buffers
    for name, value in vars(module).items():
        if name in skip or name in children or name in parameters or name in buffers:
            continue  # fxkit's GraphModule mirrors its children in __dict__ for fast attribute reads
        cls = type(value)
        if cls is int or cls is str or cls is bool or value is None:
            attributes[name] = value  # what _encode would give, without naming the place first
        elif isinstance(value, torch.Tensor):
            attributes[name] = {"tensor_attribute": store.reference(value, prefix + name)}
        else:
            attributes[name] = _encode(value, f"{where}, attribute {name!r}")
    record["attributes"] = attributes
    for field in _EMPTY_WHEN_LEFT_OUT:
        if not record[field]:
            del record[field]
    return record


# Fields a reader takes as empty when they are left out: a Linear layer's record is a third shorter
# without them, and the JSON of the file is written and read twice (its text sits in the header).
_EMPTY_WHEN_LEFT_OUT = ("parameters", "buffers", "non_persistent", "modules", "attributes")


class _TensorLoader:
    def __init__(self, tensors: Dict[str, torch.Tensor]) -> None:
        self.tensors = tensors
        self.made: Dict[str, Tuple[bool, torch.Tensor]] = {}

    def get(self, reference: Any, where: str, name: str, parameter: bool) -> torch.Tensor:
        """The tensor ``reference`` names; ``where`` and ``name`` say whose it is in an error."""
        if type(reference) is not dict:
            raise ValueError(f"{where}.{name}: malformed tensor reference")
        if "meta" in reference:
            key, tensor = self._meta_tensor(reference, f"{where}.{name}")
        else:
            key = reference.get("tensor")
            made = self.made.get(key) if type(key) is str else None
            if made is not None:
                if made[0] != parameter:
                    raise ValueError(f"{where}.{name}: tensor {key!r} is both a parameter and not")
                return made[1]
            tensor = self.tensors.get(key) if type(key) is str else None
            if tensor is None:
                raise ValueError(f"{where}.{name}: no tensor {key!r:.60} in the file")
        if parameter:
            requires_grad = reference.get("requires_grad", True)
            if type(requires_grad) is not bool:
                raise ValueError(f"{where}.{name}: requires_grad must be a bool")
            tensor = torch.nn.Parameter(tensor, requires_grad=requires_grad)
        self.made[key] = (parameter, tensor)
        return tensor

    def _meta_tensor(self, reference: Dict[str, Any], where: str) -> Tuple[str, torch.Tensor]:
        key, spec = reference.get("key"), reference["meta"]
        _expect(isinstance(key, str) and key not in self.tensors, where, "malformed meta tensor")
        _expect(isinstance(spec, dict), where, "malformed meta tensor")
        shape, dtype = spec.get("shape"), getattr(torch, str(spec.get("dtype")), None)
        ok = isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)
        _expect(ok and isinstance(dtype, torch.dtype), where, "malformed meta tensor")
        return key, torch.empty(shape, dtype=dtype, device="meta")


def _names(record: Dict[str, Any], field: str, where: str) -> Dict[str, Any]:
    value = record.get(field, _ABSENT)
    if value is _ABSENT:
        return {}
    _expect(type(value) is dict, where, f"malformed {field}")
    digits = field != "attributes"
    for name in value:
        ok = type(name) is str and (name.isidentifier() or (digits and name.isdigit()))
        _expect(ok and not name.startswith("__"), where, f"bad name {name!r:.60} in {field}")
    return value


_ABSENT = object()


def _bare_module(cls: type) -> torch.nn.Module:
    """A ``cls`` with nn.Module's empty state: the class's own ``__init__`` would run its code with
    the file's values, so it is not called."""
    module = cls.__new__(cls)
    state = _empty_state() if _FAST_PATH.enabled() and not getattr(cls, "call_super_init", False) else None
    if state is None:
        torch.nn.Module.__init__(module)
        return module
    # What nn.Module.__init__ sets, copied from a template: 0.3 ms instead of 0.7 ms for the 200
    # Linear layers of benchmarks/bench_save.py.
    attributes = module.__dict__
    for name, factory, value in state:
        attributes[name] = value if factory is None else factory()
    return module


_STATE: List[Optional[List[Tuple[str, Optional[type], Any]]]] = []


def _empty_state() -> Optional[List[Tuple[str, Optional[type], Any]]]:
    """nn.Module.__init__'s attributes as (name, container type or None, constant), or None if one
    is neither an empty dict/set nor a constant (a torch version that sets other state)."""
    if not _STATE:
        state: Optional[List[Tuple[str, Optional[type], Any]]] = []
        for name, value in torch.nn.Module().__dict__.items():
            if type(value) in (dict, collections.OrderedDict, set) and not value:
                state.append((name, type(value), None))
            elif value is None or type(value) is bool:
                state.append((name, None, value))
            else:
                state = None
                break
        _STATE.append(state)
    return _STATE[0]


def _attribute_problem(module: torch.nn.Module, name: str) -> Optional[str]:
    """Why ``name`` cannot be a plain attribute of ``module``, or None."""
    plain, graph_module = _internal_attributes()
    if name in plain or name in graph_module:
        return "an internal attribute"
    if hasattr(type(module), name):
        return "shadows a class attribute"
    if name in module._modules or name in module._parameters or name in module._buffers:
        return "defined twice"
    return None


def _decode_module(record: Any, path: str, loader: _TensorLoader, resolver: _Resolver) -> torch.nn.Module:
    where = path or "the root module"
    _expect(isinstance(record, dict), where, "malformed module")
    class_name = record.get("class")
    is_graph_module = class_name == "fxkit.GraphModule"
    if is_graph_module:
        module = torch.nn.Module()  # the root the GraphModule is built from
    elif class_name == _CONTAINER:
        module = _Container()  # fxkit's own holder of qualified paths: its __init__ is known
    else:
        module = _bare_module(resolver.module_class(class_name, where))
    prefix = f"{path}." if path else ""
    for name, child in _names(record, "modules", where).items():
        module._modules[name] = (
            None if child is None else _decode_module(child, prefix + name, loader, resolver)
        )
    parameters = module._parameters
    for name, reference in _names(record, "parameters", where).items():
        parameters[name] = None if reference is None else loader.get(reference, where, name, True)
    non_persistent = record.get("non_persistent", [])
    _expect(isinstance(non_persistent, list), where, "malformed non_persistent")
    buffers = module._buffers
    for name, reference in _names(record, "buffers", where).items():
        buffers[name] = None if reference is None else loader.get(reference, where, name, False)
    if non_persistent:
        _expect(all(name in buffers for name in non_persistent), where, "non_persistent names no buffer")
        module._non_persistent_buffers_set.update(non_persistent)
    for name, value in _names(record, "attributes", where).items():
        problem = _attribute_problem(module, name)
        if problem is not None:
            raise ValueError(f"{where}, attribute {name!r}: {problem}")
        if type(value) is dict and value.keys() == {"tensor_attribute"}:
            value = loader.get(value["tensor_attribute"], where, name, False)
        elif not (value is None or type(value) in (str, int, bool, float)):
            value = _decode(value, f"{where}, attribute {name!r}", None, resolver)
        module.__dict__[name] = value
    if is_graph_module:
        module = _graph_module(record, module, where, resolver)
    training = record.get("training", True)
    _expect(isinstance(training, bool), where, "training must be a bool")
    if is_graph_module or not _stores_training(module, resolver.plain_training):
        module.training = training  # not train(): children keep their own recorded flags
    else:
        module.__dict__["training"] = training
    return module


def _stores_training(module: torch.nn.Module, known: Dict[type, bool]) -> bool:
    """Fast path: whether ``module.training = flag`` would only store the flag in ``__dict__``
    (nn.Module.__setattr__ does that unless a parameter, buffer or child is called ``training``;
    the class neither overrides it nor has a ``training`` descriptor). The assignment took 0.4 ms
    for the 200 Linear layers of benchmarks/bench_save.py."""
    if not _FAST_PATH.enabled():
        return False
    cls = type(module)
    plain = known.get(cls)
    if plain is None:
        found = next((vars(klass)["training"] for klass in cls.__mro__ if "training" in vars(klass)), None)
        plain = cls.__setattr__ is torch.nn.Module.__setattr__ and not hasattr(type(found), "__set__")
        known[cls] = plain
    return plain and not ("training" in module._parameters or "training" in module._buffers
                          or "training" in module._modules)  # fmt: skip


def _graph_module(
    record: Dict[str, Any], root: torch.nn.Module, where: str, resolver: _Resolver
) -> GraphModule:
    class_name = record.get("class_name", "GraphModule")
    _expect(isinstance(class_name, str) and class_name.isidentifier(), where, "bad class_name")
    graph = _decode_graph(record.get("graph"), where, resolver)
    for node in graph.nodes:
        if node.op == "output":
            _expect(
                len(node.args) == 1 and not node.kwargs, where, f"output node {node.name} must take one value"
            )
        elif node.op == "call_module":
            _expect(
                isinstance(_paths.lookup(root, str(node.target)), torch.nn.Module), where,
                f"node {node.name} calls module {node.target!r:.80}, which the file does not hold",
            )  # fmt: skip
    gm = GraphModule(root, graph, class_name)
    for name, child in root._modules.items():
        if name not in gm._modules:
            gm.add_module(name, child)
    for table in ("_parameters", "_buffers"):
        for name, value in getattr(root, table).items():
            getattr(gm, table).setdefault(name, value)
    gm._non_persistent_buffers_set.update(root._non_persistent_buffers_set)
    plain, graph_internal = _internal_attributes()
    for name, value in vars(root).items():
        if name not in plain and name not in graph_internal and name not in gm.__dict__:
            gm.__dict__[name] = value
    meta = _decode(record.get("meta", {"dict": []}), where, None, resolver)
    _expect(isinstance(meta, dict), where, "meta must be a dict")
    gm.meta.update(meta)
    return gm


# --------------------------------------------------------------------------- files


def save(gm: GraphModule, path: Union[str, os.PathLike]) -> None:
    """Write ``gm`` (code, names, plain meta, submodules, weights) to ``path``; see docs/save.md."""
    if not isinstance(gm, GraphModule):
        raise TypeError(f"fxkit.save takes a GraphModule, not a {type(gm).__name__}")
    with collector_paused():  # thousands of small objects and no cycles: 1.5 ms of 23 ms was the collector
        store = _TensorStore()
        record = {"format": FORMAT, "version": VERSION, "module": _encode_module(gm, "", store)}
        text = json.dumps(record, separators=(",", ":"), allow_nan=False)
        del record  # its objects go before the write, not at the end of the pause
        _safetensors.write(path, store.tensors, {"fxkit": text})


def _read(path: Union[str, os.PathLike]) -> Tuple[Dict[str, Any], Dict[str, torch.Tensor]]:
    try:
        metadata, tensors = _safetensors.read(path)
    except ValueError as error:
        raise ValueError(f"{path}: not an fxkit file ({error})") from None
    try:
        record = json.loads(metadata["fxkit"])
    except (KeyError, ValueError, RecursionError) as error:
        raise ValueError(f"{path}: not an fxkit file (no readable fxkit metadata: {error})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path}: not an fxkit file (format is not {FORMAT!r})")
    if record.get("version") != VERSION:
        raise ValueError(f"{path}: fxkit file version {record.get('version')!r}; this fxkit reads {VERSION}")
    return record, tensors


def load(
    path: Union[str, os.PathLike], *, allowed: Sequence[Union[Callable[..., Any], type, str]] = ()
) -> GraphModule:
    """Read a GraphModule written by :func:`save`, resolving names only through allow-lists.

    ``allowed`` adds your own functions, module classes and method names. A file that is not a
    valid fxkit file, or that names anything not allowed, raises ``ValueError``; nothing from the
    file is unpickled, imported or executed.
    """
    resolver = _Resolver(allowed)
    with collector_paused():
        record, tensors = _read(path)
        try:
            module = _decode_module(record.get("module"), "", _TensorLoader(tensors), resolver)
        except ValueError:
            raise
        except (KeyError, TypeError, IndexError, AttributeError, RuntimeError, RecursionError) as error:
            # A hand-edited or damaged file that passed the checks above but does not make a graph.
            raise ValueError(f"{path}: invalid fxkit file ({type(error).__name__}: {error})") from None
        del record  # as in save
    if not isinstance(module, GraphModule):
        raise ValueError(f"{path}: the root module is not a GraphModule")
    return module
