"""Proxy values: the symbols that flow through a program while it is traced.

Every operation done on a :class:`Proxy` (an operator, a method call, an attribute
read, a ``torch`` function) is recorded as a :class:`~fxkit.node.Node` in the graph
of the proxy's tracer, and answered with a new proxy standing for the result.
"""

from __future__ import annotations

import collections
import copy
import dis
import enum
import linecache
import operator
import os
import sys
import types
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch
import torch.utils._pytree as pytree

from . import traceback as _node_meta
from ._atoms import ATOMIC_ARG_TYPES, SCALAR_TYPES
from .graph import Graph
from .immutable_collections import immutable_dict, immutable_list  # noqa: F401  (torch.fx has these names here too)
from .node import Node, map_arg
from .operator_schemas import check_for_mutable_operation  # noqa: F401

__all__ = [
    "Attribute",
    "GraphAppendingTracer",
    "MetaProxy",
    "ParameterProxy",
    "Proxy",
    "Scope",
    "ScopeContextManager",
    "TraceError",
    "TracerBase",
]

_FXKIT_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_TORCH_MODULE_FILE = os.path.join("torch", "nn", "modules", "module.py")


class TraceError(ValueError):
    """Raised when traced code needs a concrete value that a Proxy cannot give."""


def _is_internal_frame(filename: str) -> bool:
    return filename.startswith(_FXKIT_DIR) or filename.endswith(_TORCH_MODULE_FILE)


def _user_frame(start: Optional[types.FrameType]) -> Optional[types.FrameType]:
    """The innermost frame that belongs to the traced program, not to fxkit."""
    frame = start
    while frame is not None and _is_internal_frame(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def _where(start: Optional[types.FrameType]) -> str:
    """`` at FILE:LINE in FUNC: SOURCE`` for the user's frame, or '' if none is found."""
    frame = _user_frame(start)
    if frame is None:
        return ""
    filename, lineno = frame.f_code.co_filename, frame.f_lineno
    source = linecache.getline(filename, lineno).strip()
    where = f"\n  at {filename}:{lineno} in {frame.f_code.co_name}"
    return f"{where}: {source}" if source else where


class Scope:
    """The module whose ``forward`` is being traced: its qualified path and type."""

    def __init__(self, module_path: str, module_type: Any):
        self.module_path = module_path
        self.module_type = module_type


class ScopeContextManager:
    """Swaps the fields of ``scope`` for those of ``current_scope`` inside a ``with``."""

    def __init__(self, scope: Scope, current_scope: Scope):
        self._scope = scope
        self._saved = (scope.module_path, scope.module_type)
        scope.module_path = current_scope.module_path
        scope.module_type = current_scope.module_type

    def __enter__(self) -> Scope:
        return self._scope

    def __exit__(self, *exc_info: Any) -> None:
        self._scope.module_path, self._scope.module_type = self._saved


# Types that are stored in a graph as they are; and, checked with isinstance, subclasses of them
# (an IntEnum) and enum members.
_ATOMIC_ARG_TYPES = ATOMIC_ARG_TYPES
_CONSTANT_CLASSES = tuple(SCALAR_TYPES) + (enum.Enum,)
_OPERATOR_ARG_TYPES: Tuple[type, ...] = tuple(
    cls
    for cls in (getattr(torch._ops, "OpOverload", None), getattr(torch._ops, "HigherOrderOperator", None))
    if cls is not None
)


def assert_fn(x: object) -> None:
    """``assert x`` as a function (what traced ``assert`` statements call)."""
    assert x


class TracerBase:
    """The part of a tracer that a Proxy needs: it turns operations into nodes."""

    # Optional behaviours, all off unless a subclass or an instance turns them on.
    record_stack_traces = check_mutable_operations = trace_asserts = proxy_buffer_attributes = False
    traced_func_name: str = "forward"
    graph: Graph
    scope: Scope
    module_stack: "collections.OrderedDict[str, Tuple[str, Any]]"
    node_name_to_scope: Dict[str, Tuple[str, type]]

    def create_node(
        self,
        kind: str,
        target: Any,
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
        name: Optional[str] = None,
        type_expr: Optional[Any] = None,
    ) -> Node:
        """Add one node to ``self.graph``; override to see or change every node made."""
        if kind == "call_function" and self.check_mutable_operations:
            check_for_mutable_operation(target, args, kwargs)
        node = self.graph.create_node(kind, target, args, kwargs, name, type_expr)
        self.node_name_to_scope[node.name] = (self.scope.module_path, self.scope.module_type)
        if _node_meta.should_preserve_node_meta:
            _node_meta.copy_current_meta_to(node)
        elif self.module_stack:
            node.meta["nn_module_stack"] = collections.OrderedDict(self.module_stack)
        if self.record_stack_traces and not node.meta.get("stack_trace"):
            stack_trace = self._user_stack_trace()
            if stack_trace:
                node.meta["stack_trace"] = stack_trace
                node.stack_trace = stack_trace
        return node

    def _user_stack_trace(self) -> str:
        """The user's frames (outermost first) from the traced root down to here."""
        from .tracer import _ROOT_CALL_CODES  # the codes of the frames that start a trace

        entries = []
        frame: Optional[types.FrameType] = sys._getframe(1)
        while frame is not None and frame.f_code not in _ROOT_CALL_CODES:
            filename = frame.f_code.co_filename
            if not _is_internal_frame(filename):
                lineno = frame.f_lineno
                source = linecache.getline(filename, lineno).strip()
                entries.append(f'File "{filename}", line {lineno}, in {frame.f_code.co_name}\n    {source}')
            frame = frame.f_back
        if frame is None:
            # Not created by the traced code (placeholders, output, Proxy edits outside a trace):
            # torch.fx records no stack trace for such nodes.
            return ""
        return "\n  ".join(reversed(entries))

    def proxy(self, node: Node) -> "Proxy":
        """Wrap a node in a Proxy; override to use a Proxy subclass."""
        return Proxy(node, self)

    def create_proxy(
        self,
        kind: str,
        target: Any,
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
        name: Optional[str] = None,
        type_expr: Optional[Any] = None,
        proxy_factory_fn: Optional[Callable[[Node], "Proxy"]] = None,
    ) -> "Proxy":
        """Record ``kind``/``target`` applied to ``args``/``kwargs`` and return its Proxy."""
        node = self.create_node(kind, target, self.create_arg(args), self.create_arg(kwargs), name, type_expr)
        return self.proxy(node) if proxy_factory_fn is None else proxy_factory_fn(node)

    def create_arg(self, a: Any) -> Any:
        """Turn a Python value that appears as an argument into a graph argument."""
        cls = type(a)
        if cls in _ATOMIC_ARG_TYPES:
            return a
        if isinstance(a, Proxy):
            return a.node
        if isinstance(a, Node):
            return a
        if hasattr(a, "__fx_create_arg__"):
            return a.__fx_create_arg__(self)
        if isinstance(a, tuple):
            if hasattr(a, "_fields"):  # a NamedTuple is rebuilt field by field
                return cls(*[self.create_arg(elem) for elem in a])
            return tuple(self.create_arg(elem) for elem in a)
        if isinstance(a, list):
            return [self.create_arg(elem) for elem in a]
        if isinstance(a, dict):
            converted = {}
            for key, value in a.items():
                key = self.create_arg(key)
                traced = _first_node(key)
                if traced is not None:
                    # The first sentence is torch.fx's; code matches on it.
                    raise RuntimeError(
                        f"Keys for dictionaries used as an argument cannot contain a Node. Got key: {traced}"
                        f" (the traced value {traced.name!r} cannot be a dict key; use a constant key)"
                    )
                converted[key] = self.create_arg(value)
            return converted
        if isinstance(a, slice):
            return slice(self.create_arg(a.start), self.create_arg(a.stop), self.create_arg(a.step))
        if isinstance(a, range):
            return range(self.create_arg(a.start), self.create_arg(a.stop), self.create_arg(a.step))
        if isinstance(a, torch.Tensor) or isinstance(a, _OPERATOR_ARG_TYPES):
            return a
        if isinstance(a, _CONSTANT_CLASSES):
            return a  # subclasses of the atomic types (an IntEnum) and enum members are constants
        raise NotImplementedError(f"argument of type: {type(a)}")

    def to_bool(self, obj: "Proxy") -> bool:
        """Called by ``bool(proxy)``; a plain trace cannot know the value."""
        raise TraceError(
            "symbolically traced variables cannot be used as inputs to control flow"
            + _where(sys._getframe(1))
        )

    def iter(self, obj: "Proxy") -> Iterator:
        """Called by ``iter(proxy)`` where the number of items is not fixed by the code."""
        raise TraceError(
            "Proxy object cannot be iterated. This can be attempted when the Proxy is used in a loop or"
            " as a *args or **kwargs function argument. See the torch.fx docs on pytorch.org for a more"
            " detailed explanation of what types of control flow can be traced, and check out the Proxy"
            " docstring for help troubleshooting Proxy iteration errors" + _where(sys._getframe(1))
        )

    def keys(self, obj: "Proxy") -> Any:
        """Called for ``**proxy``; records a ``keys()`` call. Override to return real keys."""
        return Attribute(obj, "keys")()


class GraphAppendingTracer(TracerBase):
    """A tracer that appends what proxies record to an existing graph."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph = graph
        self.scope = Scope("", None)
        self.module_stack = collections.OrderedDict()
        self.node_name_to_scope = {}


# code object -> {instruction offset: item count} for its UNPACK_SEQUENCE instructions
_UNPACK_SITES: Dict[types.CodeType, Dict[int, int]] = {}


def _unpack_count(frame: types.FrameType) -> Optional[int]:
    """How many items the instruction now running in ``frame`` unpacks, if it unpacks."""
    code = frame.f_code
    sites = _UNPACK_SITES.get(code)
    if sites is None:
        sites = {
            instr.offset: instr.arg
            for instr in dis.get_instructions(code)
            if instr.opname == "UNPACK_SEQUENCE"
        }
        _UNPACK_SITES[code] = sites
    return sites.get(frame.f_lasti)


def _collect_tracers(value: Any, found: Dict[int, TracerBase]) -> None:
    if isinstance(value, Proxy):
        found.setdefault(id(value.tracer), value.tracer)
    elif isinstance(value, (tuple, list)):
        for elem in value:
            _collect_tracers(elem, found)
    elif isinstance(value, dict):
        for elem in value.values():
            _collect_tracers(elem, found)
    elif isinstance(value, slice):
        _collect_tracers((value.start, value.stop, value.step), found)


def _sole_tracer(operands: Any, orig_method: Any) -> TracerBase:
    """The one tracer that the proxies inside ``operands`` belong to."""
    by_id: Dict[int, TracerBase] = {}
    _collect_tracers(operands, by_id)
    if len(by_id) > 1:
        raise RuntimeError(
            f"Found multiple different tracers {list(by_id.values())} while trying to trace operations"
            f" {orig_method}"
        )
    return next(iter(by_id.values()))


# function -> whether torch reports it as a Tensor method or property (asking torch is slow).
_TENSOR_METHOD_CACHE: Dict[Any, bool] = {}


def _is_tensor_method(fn: Callable[..., Any]) -> bool:
    try:
        return _TENSOR_METHOD_CACHE[fn]
    except KeyError:
        answer = _TENSOR_METHOD_CACHE[fn] = bool(torch.overrides.is_tensor_method_or_property(fn))
        return answer
    except TypeError:  # unhashable callable
        return bool(torch.overrides.is_tensor_method_or_property(fn))


def _first_node(arg: Any) -> Optional[Node]:
    """The first Node inside ``arg`` (looking into tuples, lists, dicts and slices), or None."""
    found: List[Node] = []
    map_arg(arg, lambda node: found.append(node) or node)
    return found[0] if found else None


def _deepcopy_or_share(value: Any, memo: Dict[int, Any]) -> Any:
    """A deep copy of ``value``, or a shallow one where deep copying is refused (locks, modules...)."""
    try:
        return copy.deepcopy(value, memo)
    except Exception:  # noqa: BLE001  (anything that cannot be deep-copied is shared one level down)
        return copy.copy(value)


class Proxy:
    """A stand-in for a value during tracing; operations on it become graph nodes.

    ``Proxy(node)`` can also be used outside tracing to append to ``node.graph``::

        x = fxkit.Proxy(some_node)           # appends through a GraphAppendingTracer
        y = torch.relu(x) + 1                # adds a relu and an add node
    """

    def __init__(self, node: Node, tracer: Optional[TracerBase] = None):
        self.node = node
        self.tracer = GraphAppendingTracer(node.graph) if tracer is None else tracer

    def __getattr__(self, name: str) -> "Attribute":
        # Only reached for names the class lacks: treat them as tensor attributes/methods.
        return Attribute(self, name)

    def __repr__(self) -> str:
        return f"Proxy({self.node.name})"

    def __copy__(self) -> "Proxy":
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def __deepcopy__(self, memo: Dict[int, Any]) -> "Proxy":
        # As in torch.fx: node and tracer are copied too (the node with a copy of its graph);
        # ``copy.copy`` is the way to get a second Proxy for the same traced value.
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            clone.__dict__[key] = _deepcopy_or_share(value, memo)
        return clone

    # Defined here so that pickling never falls through to __getattr__.
    def __getstate__(self) -> Dict[str, Any]:
        return self.__dict__

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__ = state

    def __call__(self, *args: Any, **kwargs: Any) -> "Proxy":
        return self.tracer.create_proxy("call_method", "__call__", (self,) + args, kwargs)

    def __iter__(self) -> Iterator["Proxy"]:
        caller = sys._getframe(1)
        count = _unpack_count(caller)
        if count is not None:
            return iter([self[index] for index in range(count)])
        return self.tracer.iter(self)

    def __bool__(self) -> bool:
        return self.tracer.to_bool(self)

    def keys(self) -> Any:
        return self.tracer.keys(self)

    def __len__(self) -> int:
        raise RuntimeError(
            "'len' is not supported in symbolic tracing by default. If you want this call to be"
            " recorded, please call torch.fx.wrap('len') at module scope" + _where(sys._getframe(1))
        )

    def __int__(self) -> int:
        raise TypeError(
            "int() argument must be a string, a bytes-like object or a real number, not 'Proxy'"
            + _where(sys._getframe(1))
        )

    def __float__(self) -> float:
        raise TypeError(
            "float() argument must be a string or a real number, not 'Proxy'" + _where(sys._getframe(1))
        )

    @classmethod
    def __torch_function__(
        cls,
        orig_method: Callable[..., Any],
        types: Tuple[type, ...],
        args: Tuple[Any, ...] = (),
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> "Proxy":
        args, kwargs = args or (), kwargs or {}
        tracer = _sole_tracer((args, kwargs), orig_method)
        kind, target = "call_function", orig_method
        if isinstance(orig_method, torch._C.ScriptMethod):
            # A TorchScript method is called on its owning module.
            kind, target, args = "call_method", orig_method.name, (orig_method.owner, *args)
        elif _is_tensor_method(orig_method):
            kind, target = "call_method", orig_method.__name__
        return tracer.create_proxy(kind, target, args, kwargs)


def _fake_value(value: Any) -> Any:
    return value.node.meta["val"] if isinstance(value, Proxy) else value


def _meta_torch_function(
    cls: type, orig_method: Callable[..., Any], types: Tuple[type, ...], args: Tuple[Any, ...] = (),
    kwargs: Optional[Dict[str, Any]] = None,
) -> "MetaProxy":  # fmt: skip
    """Record the call as Proxy does, then run it on the inputs' fake values for ``meta["val"]``."""
    args, kwargs = args or (), kwargs or {}
    modes = [
        leaf.fake_mode
        for leaf in pytree.tree_leaves((args, kwargs))
        if isinstance(leaf, MetaProxy) and leaf.fake_mode is not None
    ]
    if not modes:
        raise TypeError(f"MetaProxy inputs of {orig_method} carry no fake_mode to compute values with")
    recorded = Proxy.__torch_function__.__func__(cls, orig_method, types, args, kwargs)  # type: ignore[attr-defined]
    result = MetaProxy(recorded.node, recorded.tracer, modes[0])
    with modes[0]:
        fake_args, fake_kwargs = pytree.tree_map(_fake_value, (args, kwargs))
        result.node.meta["val"] = orig_method(*fake_args, **fake_kwargs)
    return result


class MetaProxy(Proxy):
    """A Proxy that also computes each result's fake value (``node.meta["val"]``) by running the
    torch function on the inputs' fake values under ``fake_mode``."""

    __torch_function__ = classmethod(_meta_torch_function)  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MetaProxy({self.node.name})"

    def __init__(self, node: Node, tracer: Optional[TracerBase] = None, fake_mode: Any = None) -> None:
        Proxy.__init__(self, node, tracer)
        self.fake_mode = fake_mode


class Attribute(Proxy):
    """``proxy.name``: becomes a ``getattr`` node only when used as a value, or a
    ``call_method`` node when called (``proxy.name(...)``)."""

    def __init__(self, root: Proxy, attr: str):
        self.root = root
        self.attr = attr
        self.tracer = root.tracer
        self._node: Optional[Node] = None

    @property
    def node(self) -> Node:  # type: ignore[override]
        if self._node is None:
            self._node = self.tracer.create_proxy("call_function", getattr, (self.root, self.attr), {}).node
        return self._node

    def __call__(self, *args: Any, **kwargs: Any) -> Proxy:
        return self.tracer.create_proxy("call_method", self.attr, (self.root,) + args, kwargs)


class ParameterProxy(Proxy):
    """The proxy of a parameter when ``param_shapes_constant`` is set: its shape,
    size, dimension count and element count are the real ones, not new nodes."""

    def __init__(self, tracer: TracerBase, node: Node, name: str, param: torch.Tensor):
        super().__init__(node, tracer)
        self.name, self.param = name, param

    def __repr__(self) -> str:
        return f"ParameterProxy({self.name})"

    def size(self, dim: Optional[int] = None) -> Any:
        return self.param.size() if dim is None else self.param.size(dim)


def _read_from_param(attr: str, as_property: bool) -> Any:
    """A ParameterProxy member that answers from the real parameter instead of tracing."""
    if as_property:
        return property(lambda self: getattr(self.param, attr))

    def method(self: ParameterProxy) -> Any:
        return getattr(self.param, attr)()

    method.__name__, method.__qualname__ = attr, f"ParameterProxy.{attr}"
    return method


for _attr, _is_property in (
    ("shape", True),
    ("ndim", True),
    ("dim", False),
    ("numel", False),
    ("nelement", False),
):
    setattr(ParameterProxy, _attr, _read_from_param(_attr, _is_property))
del _attr, _is_property


# Operators recorded as call_function nodes of the `operator` function of the same name.
_BINARY_OPERATORS = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "floordiv": operator.floordiv,
    "truediv": operator.truediv,
    "div": operator.truediv,
    "mod": operator.mod,
    "pow": operator.pow,
    "lshift": operator.lshift,
    "rshift": operator.rshift,
    "and": operator.and_,
    "or": operator.or_,
    "xor": operator.xor,
    "getitem": operator.getitem,
    "matmul": operator.matmul,
}
_COMPARISONS = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "gt": operator.gt,
    "le": operator.le,
    "ge": operator.ge,
}
_UNARY_OPERATORS = {"neg": operator.neg, "pos": operator.pos, "invert": operator.invert, "abs": operator.abs}


def _forward_operator(op_name: str, target: Callable[..., Any]) -> Callable[..., Proxy]:
    def method(self: Proxy, *rest: Any) -> Proxy:
        return self.tracer.create_proxy("call_function", target, (self,) + rest, {})

    method.__name__ = method.__qualname__ = f"__{op_name}__"
    return method


def _reflected_operator(op_name: str, target: Callable[..., Any]) -> Callable[..., Proxy]:
    def method(self: Proxy, lhs: Any) -> Proxy:
        return self.tracer.create_proxy("call_function", target, (lhs, self), {})

    method.__name__ = method.__qualname__ = f"__r{op_name}__"
    return method


# Installed after the class body so that Proxy keeps object's __hash__ despite defining __eq__.
for _op_name, _target in {**_BINARY_OPERATORS, **_COMPARISONS, **_UNARY_OPERATORS}.items():
    setattr(Proxy, f"__{_op_name}__", _forward_operator(_op_name, _target))
for _op_name, _target in _BINARY_OPERATORS.items():
    setattr(Proxy, f"__r{_op_name}__", _reflected_operator(_op_name, _target))
del _op_name, _target
