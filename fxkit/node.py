"""``Node``: one operation of a ``Graph``, and the helpers that walk node arguments."""

from __future__ import annotations

import builtins
import operator
import sys
import threading
import types
from typing import TYPE_CHECKING, Any, Callable, Collection, Dict, List, Optional, Tuple, TypeVar, Union

import torch

from . import _node_hooks
from ._atoms import SCALAR_TYPES
from .immutable_collections import immutable_dict, immutable_list

if TYPE_CHECKING:
    from .graph import Graph
    from .operator_schemas import ArgsKwargsPair

__all__ = ["Node", "map_arg", "map_aggregate", "Argument", "Target", "has_side_effect"]

# fmt: off
BaseArgumentTypes = Union[
    str, int, float, bool, complex,
    torch.dtype, torch.Tensor, torch.device, torch.memory_format, torch.layout, torch._ops.OpOverload,
]
# fmt: on
base_types = BaseArgumentTypes.__args__  # type: ignore[attr-defined]

Target = Union[Callable[..., Any], str]
Argument = Optional[
    Union[
        Tuple[Any, ...],
        List[Any],
        Dict[str, Any],
        slice,
        range,
        "Node",
        BaseArgumentTypes,
    ]
]

# A type variable for helpers that hand back the same kind of argument they were given.
ArgumentT = TypeVar("ArgumentT", bound=Argument)

OPCODES = ("placeholder", "get_attr", "call_function", "call_method", "call_module", "output", "root")
# The ops a node in a graph can have ("root" marks the node list's own sentinel).
GRAPH_OPCODES = OPCODES[:-1]


def _side_effect_functions() -> Dict[Any, None]:
    """Functions whose calls must survive dead code elimination even when nobody uses their result."""
    found: Dict[Any, None] = {operator.setitem: None}
    for owner, names in (
        (torch, ("_assert", "_assert_async", "_assert_scalar")),
        (torch._C, ("_set_grad_enabled",)),
        (torch.amp.autocast_mode, ("_enter_autocast", "_exit_autocast")),
    ):
        for name in names:
            fn = getattr(owner, name, None)
            if fn is not None:
                found[fn] = None
    return found


_SIDE_EFFECT_FUNCTIONS: Dict[Any, None] = _side_effect_functions()

_TORCH_OP_TYPES = (torch._ops.OpOverload, torch._ops.OpOverloadPacket, torch._ops.HigherOrderOperator)

_RANDOM_FUNCTIONS: Dict[Any, None] = {
    fn: None
    for fn in (
        getattr(torch, name, None)
        for name in (
            "rand",
            "randn",
            "randint",
            "randperm",
            "rand_like",
            "randn_like",
            "randint_like",
            "normal",
            "poisson",
            "bernoulli",
            "multinomial",
        )
    )
    if fn is not None
}


_TORCH_FX_SIDE_EFFECTS: List[Any] = []  # torch.fx's registry once found (torch mutates it in place)


def _torch_fx_side_effects() -> Optional[Collection[Any]]:
    """Callables registered with ``torch.fx.node.has_side_effect`` (by torch itself or libraries)."""
    if not _TORCH_FX_SIDE_EFFECTS:
        if "torch.fx.node" not in sys.modules:
            return None
        from .interop import torch_fx_side_effectful_functions

        registry = torch_fx_side_effectful_functions()
        if registry is None:
            return None
        _TORCH_FX_SIDE_EFFECTS.append(registry)
    return _TORCH_FX_SIDE_EFFECTS[0]


def has_side_effect(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``fn`` as side-effecting so dead code elimination keeps its calls. Usable as a decorator."""
    _SIDE_EFFECT_FUNCTIONS[fn] = None
    return fn


# ---------------------------------------------------------------------------------------------
# Names of callables, as printed in graphs and used by code generation
# ---------------------------------------------------------------------------------------------

_MODULE_RENAMES = {"_operator": "operator", "torch._ops": "torch.ops", "torch._tensor": "torch"}


def _qualified_name(fn: Any) -> str:
    """The dotted path a reader would use to reach ``fn`` (``torch.add``, ``operator.mul``, ...)."""
    if isinstance(fn, torch._ops.OpOverload):
        return "torch.ops." + str(fn.namespace) + "." + fn._overloadpacket.__name__ + "." + fn._overloadname
    if isinstance(fn, torch._ops.OpOverloadPacket):
        return "torch.ops." + fn._qualified_op_name.replace("::", ".")
    name = fn.__name__
    if name == "<lambda>":
        try:
            name = fn.__qualname__
        except AttributeError:
            raise RuntimeError(f"cannot give a qualified name to the anonymous function {fn!r}") from None
    if getattr(builtins, name, None) is fn:
        return name
    if isinstance(fn, (types.MethodDescriptorType, types.WrapperDescriptorType)) and fn is getattr(
        torch.Tensor, name, None
    ):
        return "torch.Tensor." + name
    module = getattr(fn, "__module__", None) or ""
    for prefix, replacement in _MODULE_RENAMES.items():
        if module == prefix or module.startswith(prefix + "."):
            module = replacement + module[len(prefix) :]
            break
    return f"{module}.{name}" if module else name


def _type_repr(annotation: Any) -> str:
    """How a type annotation is shown in graph printouts (``int``, ``torch.Tensor``, ``typing.List[int]``)."""
    is_plain_class = isinstance(annotation, type) and not isinstance(annotation, types.GenericAlias)
    if not is_plain_class:
        return "..." if annotation is ... else repr(annotation)
    prefix = "" if annotation.__module__ == "builtins" else annotation.__module__ + "."
    return prefix + annotation.__qualname__


def _format_target(op: str, target: Target) -> str:
    """Target as shown in graph printouts: builtins are spelled ``builtins.getattr``."""
    if isinstance(target, str) or not callable(target):
        return str(target)
    name = _qualified_name(target)
    if "." not in name and getattr(builtins, name, None) is target:
        return "builtins." + name
    return name


def _format_arg(arg: Any) -> str:
    """Render an argument for ``format_node``: nodes as ``%name``, containers recursively."""
    kind = type(arg)
    if kind is Node:
        return "%" + arg.name
    custom = getattr(arg, "_custom_fx_repr_fn", None)
    if custom is not None:  # an argument type may choose how it prints, as in torch.fx
        return custom()
    if isinstance(arg, tuple):  # named tuples print as plain tuples, as in torch.fx
        inner = ", ".join(_format_arg(item) for item in arg)
        return f"({inner},)" if len(arg) == 1 else f"({inner})"
    if isinstance(arg, list):
        return "[" + ", ".join(_format_arg(item) for item in arg) + "]"
    if isinstance(arg, dict):
        return "{" + ", ".join(f"{key}: {_format_arg(value)}" for key, value in arg.items()) + "}"
    if isinstance(arg, Node):
        return "%" + arg.name
    return str(arg)


# ---------------------------------------------------------------------------------------------
# Walking arguments
# ---------------------------------------------------------------------------------------------

_LEAF_TYPES = SCALAR_TYPES
_NO_KWARGS = immutable_dict()


def map_aggregate(a: Argument, fn: Callable[[Argument], Argument]) -> Argument:
    """Apply ``fn`` to every leaf of a nested tuple/list/dict/slice structure, rebuilding the structure.

    Lists and dicts come back as ``immutable_list`` / ``immutable_dict``; named tuples keep their type.
    """
    kind = type(a)
    if kind is tuple:
        return tuple([map_aggregate(item, fn) for item in a])
    if kind is list or kind is immutable_list:
        return immutable_list([map_aggregate(item, fn) for item in a])
    if kind is dict or kind is immutable_dict:
        return immutable_dict([(key, map_aggregate(value, fn)) for key, value in a.items()])
    if kind is slice:
        return slice(map_aggregate(a.start, fn), map_aggregate(a.stop, fn), map_aggregate(a.step, fn))
    if kind is Node or kind in _LEAF_TYPES:
        return fn(a)
    if isinstance(a, tuple):
        mapped = [map_aggregate(item, fn) for item in a]
        # named tuples keep their type; other tuple subclasses (torch.Size) become plain tuples, as in torch.fx
        return kind(*mapped) if hasattr(a, "_fields") else tuple(mapped)
    if isinstance(a, list):
        return immutable_list([map_aggregate(item, fn) for item in a])
    if isinstance(a, dict):
        return immutable_dict([(key, map_aggregate(value, fn)) for key, value in a.items()])
    return fn(a)


def map_arg(a: Argument, fn: Callable[["Node"], Argument]) -> Argument:
    """Apply ``fn`` to every ``Node`` inside ``a``, leaving other values as they are."""
    if not callable(fn):
        raise TypeError("map_arg(a, fn): fn must be callable, got " + repr(fn))
    return map_aggregate(a, lambda value: fn(value) if isinstance(value, Node) else value)


def _freeze(arg: Any, found: Dict["Node", None]) -> Any:
    """``arg`` with lists/dicts made read-only, adding every Node inside it to ``found``.

    Tuples whose items need no change are returned as they are: argument tuples of nodes and
    constants, by far the common case, cost one pass and no allocation.
    """
    kind = type(arg)
    if kind is Node:
        found[arg] = None
        return arg
    if kind in _LEAF_TYPES:
        return arg
    if kind is tuple:
        rebuilt = None
        for index, item in enumerate(arg):
            item_kind = type(item)
            if item_kind is Node:
                found[item] = None
            elif item_kind not in _LEAF_TYPES:
                frozen = _freeze(item, found)
                if frozen is not item:
                    if rebuilt is None:
                        rebuilt = list(arg)
                    rebuilt[index] = frozen
        return arg if rebuilt is None else tuple(rebuilt)
    if kind is list or kind is immutable_list:
        return immutable_list([_freeze(item, found) for item in arg])
    if kind is dict or kind is immutable_dict:
        # Values that are nodes or scalars need no freezing: copy the dict in one go, or share it
        # when it is read-only already (copies of a node made by passes reuse its kwargs).
        for value in arg.values():
            value_kind = type(value)
            if value_kind is Node:
                found[value] = None
            elif value_kind not in _LEAF_TYPES:
                return immutable_dict([(key, _freeze(value, found)) for key, value in arg.items()])
        return arg if kind is immutable_dict else immutable_dict(arg)
    if kind is slice:
        return slice(_freeze(arg.start, found), _freeze(arg.stop, found), _freeze(arg.step, found))
    if isinstance(arg, tuple):
        items = [_freeze(item, found) for item in arg]
        return kind(*items) if hasattr(arg, "_fields") else tuple(items)
    if isinstance(arg, list):
        return immutable_list([_freeze(item, found) for item in arg])
    if isinstance(arg, dict):
        return immutable_dict([(key, _freeze(value, found)) for key, value in arg.items()])
    if isinstance(arg, Node):
        found[arg] = None
    return arg


def _nodes_to_none(arg: Any) -> Any:
    """``arg`` with every Node replaced by None (what an erased node keeps as its arguments)."""
    if type(arg) is tuple:
        if len(arg) < len(_ALL_NONE) and _only_nodes(arg):
            return _ALL_NONE[len(arg)]  # shared: erasing many nodes then leaves no new tuples behind
        if _is_flat(arg):
            return tuple([None if type(item) is Node else item for item in arg])
    return map_arg(arg, _to_none)


_ALL_NONE = [(None,) * length for length in range(5)]


def _only_nodes(arg: Tuple[Any, ...]) -> bool:
    for item in arg:
        if type(item) is not Node:
            return False
    return True


def _to_none(_node: "Node") -> None:
    return None


def _swapped(arg: Argument, old: "Node", new: "Node") -> Argument:
    """``arg`` reading ``new`` wherever it read ``old``."""
    return map_arg(arg, lambda node: new if node is old else node)


def _frozen_arguments(args: Any, kwargs: Any) -> Tuple[Tuple[Any, ...], Dict[str, Any], Tuple["Node", ...]]:
    """A node's arguments made read-only, and the distinct nodes they read, in order (a tuple).

    Flat positional arguments (nodes and scalars, by far the common case) skip ``_freeze``'s
    generality. When they are all nodes, each once, and the keyword arguments add no other node,
    the args tuple itself is returned as the inputs: no second container per node (memory, and
    garbage-collector time when many nodes are made at once).
    """
    found: Dict[Node, None] = {}
    if type(args) is not tuple:
        args = tuple(args)
    only_nodes = True
    for item in args:
        kind = type(item)
        if kind is Node:
            found[item] = None
        elif kind in _LEAF_TYPES:
            only_nodes = False
        else:
            args = _freeze(args, found)
            only_nodes = False
            break
    read_by_args = len(found)
    kwargs = _freeze(kwargs, found) if kwargs else _NO_KWARGS
    if only_nodes and read_by_args == len(args) == len(found):
        return args, kwargs, args
    return args, kwargs, tuple(found)


def _is_flat(arg: Tuple[Any, ...]) -> bool:
    """True if every item of the tuple ``arg`` is a Node or a plain scalar (no containers to walk)."""
    for item in arg:
        kind = type(item)
        if kind is not Node and kind not in _LEAF_TYPES:
            return False
    return True


# Set (per thread) while ``Graph.node_copy`` copies a node with no ``arg_transform``: as in torch.fx
# the copy may then read nodes of the source graph, and ``lint`` reports them.
_COPY_WITHOUT_REMAP = threading.local()


def _check_inputs(node: "Node", inputs: Collection["Node"]) -> bool:
    """Raise if ``node`` would read a node of another graph or an erased one; True when reads of
    another graph's nodes were let through (a copy without remap)."""
    graph = node.graph
    foreign = False
    for used in inputs:
        if used.graph is graph and not used._erased:
            continue
        if used.graph is not graph:
            if getattr(_COPY_WITHOUT_REMAP, "active", False):
                foreign = True
                continue
            raise ValueError(
                f"node {node.name!r} cannot take node {used.name!r} as an argument: {used.name!r} "
                "belongs to another graph. Copy it into this graph first (Graph.node_copy / graph_copy)."
            )
        if used._erased:
            raise ValueError(
                f"node {node.name!r} cannot take node {used.name!r} as an argument: it was erased "
                "from the graph."
            )
    return foreign


_STRING_TARGET_OPS = frozenset({"call_method", "call_module", "get_attr", "placeholder"})


def _check_code_name(op: str, target: Any) -> None:
    """call_method and placeholder targets are written into the generated code as they are."""
    name = target.lstrip("*") if op == "placeholder" and isinstance(target, str) else target
    if not isinstance(name, str) or not name.isidentifier():
        what = "method name" if op == "call_method" else "parameter name (optionally *args or **kwargs)"
        raise ValueError(f"a {op} target must be a Python {what}, got {target!r}")


# ---------------------------------------------------------------------------------------------
# Node
# ---------------------------------------------------------------------------------------------


class Node:
    """One instruction of a ``Graph``: an opcode, a target, arguments and the nodes that use it.

    ``op`` is one of ``placeholder`` (a function input), ``get_attr`` (fetch a parameter, buffer or
    attribute of the owning module), ``call_function``, ``call_method``, ``call_module`` and ``output``
    (the return value). Nodes form a doubly linked list in program order; ``users`` lists the nodes
    that read this node's value, in the order they started doing so.
    """

    _args: Tuple[Argument, ...]
    _kwargs: Dict[str, Argument]

    def __init__(
        self,
        graph: "Graph",
        name: str,
        op: str,
        target: Target,
        args: Tuple[Argument, ...],
        kwargs: Dict[str, Argument],
        return_type: Optional[Any] = None,
    ) -> None:
        if op == "call_function":
            if not callable(target):
                raise ValueError(
                    f"node {name!r}: a call_function node needs a callable target, got {target!r}"
                )
        elif op in _STRING_TARGET_OPS:
            if not isinstance(target, str):
                raise ValueError(f"node {name!r}: a {op} node needs a string target, got {target!r}")
            if op == "call_method" or op == "placeholder":
                _check_code_name(op, target)
        elif op not in OPCODES:
            raise ValueError(f"node {name!r}: unknown opcode {op!r}; expected one of {OPCODES[:-1]}")
        self.graph = graph
        self._name = name
        self._op = op
        self._target = target
        self.users: Dict[Node, None] = {}
        self.type: Optional[Any] = return_type
        self._prev = self
        self._next = self
        self._erased = False
        self.meta: Dict[str, Any] = {}
        if op == "root":
            self._args = ()
            self._kwargs = _NO_KWARGS
            self._inputs: Tuple[Node, ...] = ()
            return
        # _set_args_kwargs for a node nobody uses yet: no previous inputs to unregister. (Attributes
        # are first set in the same order for every node, so instances share one attribute layout.)
        self._args, self._kwargs, inputs = _frozen_arguments(args, kwargs)
        # The distinct nodes this node reads, in argument order, always a tuple: the args tuple
        # itself when that is exactly them (the Interpreter's fast path checks `_inputs is args`).
        # Membership tests on it are linear; graph-wide checks build sets instead.
        self._inputs = inputs
        if inputs:
            if _check_inputs(self, inputs):
                # The other graph's nodes do not list this one: their own graph stays exact.
                inputs = [used for used in inputs if used.graph is graph]
            for used in inputs:
                used.users[self] = None

    # -- opcode and target keep the graph's lookup table in sync ------------------------------
    @property
    def op(self) -> str:
        return self._op

    @op.setter
    def op(self, new_op: str) -> None:
        if new_op == "call_method" or new_op == "placeholder":
            _check_code_name(new_op, self._target)
        self.graph._unindex(self)
        self._op = new_op
        self.graph._index(self)

    @property
    def target(self) -> Target:
        return self._target

    @target.setter
    def target(self, new_target: Target) -> None:
        if self._op == "call_method" or self._op == "placeholder":
            _check_code_name(self._op, new_target)
        self.graph._unindex(self)
        self._target = new_target
        self.graph._index(self)

    # -- list neighbours ---------------------------------------------------------------------
    @property
    def next(self) -> "Node":
        """The node after this one (the graph's sentinel root after the last node)."""
        return self._next

    @property
    def prev(self) -> "Node":
        """The node before this one (the graph's sentinel root before the first node)."""
        return self._prev

    def prepend(self, x: "Node") -> None:
        """Move or insert ``x`` right before this node, in the same graph."""
        if x is self:  # as in torch.fx, moving a node next to itself leaves it where it is
            return
        if x.graph is not self.graph:
            raise ValueError(
                f"cannot move node {x.name!r} next to {self.name!r}: they belong to different graphs"
            )
        x._unlink()
        before = self._prev
        before._next = x
        x._prev = before
        x._next = self
        self._prev = x
        self.graph._relinked(x)

    def append(self, x: "Node") -> None:
        """Move or insert ``x`` right after this node, in the same graph."""
        if x is self:
            return
        self._next.prepend(x)

    def _unlink(self) -> None:
        before, after = self._prev, self._next
        before._next = after
        after._prev = before

    # -- arguments ---------------------------------------------------------------------------
    @property
    def args(self) -> Tuple[Argument, ...]:
        """Positional arguments; assigning a new tuple updates ``users`` of old and new inputs."""
        return self._args

    @args.setter
    def args(self, new_args: Tuple[Argument, ...]) -> None:
        self._set_args_kwargs(new_args, self._kwargs)

    @property
    def kwargs(self) -> Dict[str, Argument]:
        """Keyword arguments; assigning a new dict updates ``users`` of old and new inputs."""
        return self._kwargs

    @kwargs.setter
    def kwargs(self, new_kwargs: Dict[str, Argument]) -> None:
        self._set_args_kwargs(self._args, new_kwargs)

    @property
    def all_input_nodes(self) -> List["Node"]:
        """Every distinct node read by this node, in the order they appear in args then kwargs."""
        return list(self._inputs)

    @property
    def _input_nodes(self) -> Dict["Node", None]:
        """torch.fx's spelling of the inputs (a dict used as an ordered set), for code that reads it.

        fxkit keeps them in ``_inputs``, a tuple: the args tuple itself when that lists them
        exactly (see ``_frozen_arguments``)."""
        return dict.fromkeys(self._inputs)

    def _set_args_kwargs(self, new_args: Any, new_kwargs: Any) -> None:
        frozen_args, frozen_kwargs, inputs = _frozen_arguments(new_args, new_kwargs)
        foreign = _check_inputs(self, inputs)
        self.graph._edits += 1
        self._args = frozen_args
        self._kwargs = frozen_kwargs
        # Like torch.fx, every assignment re-registers this node as the newest user of each input,
        # so `users` order (and what replace_all_uses_with returns) matches it edit for edit.
        for old in self._inputs:
            old.users.pop(self, None)
        for used in inputs:
            if not foreign or used.graph is self.graph:
                used.users.setdefault(self, None)
        self._inputs = inputs

    def update_arg(self, idx: int, arg: Argument) -> None:
        """Replace positional argument ``idx`` with ``arg``."""
        updated = list(self._args)
        updated[idx] = arg
        self.args = tuple(updated)

    def insert_arg(self, idx: int, arg: Argument) -> None:
        """Insert ``arg`` as positional argument ``idx``, shifting the later ones right."""
        if not 0 <= idx <= len(self._args):
            raise IndexError(f"node {self.name!r}: insert_arg index {idx} is outside 0..{len(self._args)}")
        self.args = self._args[:idx] + (arg,) + self._args[idx:]

    def update_kwarg(self, key: str, arg: Argument) -> None:
        """Set keyword argument ``key`` to ``arg``."""
        self.kwargs = {**self._kwargs, key: arg}

    # -- rewiring users ----------------------------------------------------------------------
    def replace_all_uses_with(
        self,
        replace_with: "Node",
        delete_user_cb: Optional[Callable[["Node"], bool]] = None,
        *,
        propagate_meta: bool = False,
    ) -> List["Node"]:
        """Make every user of this node read ``replace_with`` instead; return the users changed.

        ``delete_user_cb(user)`` may return False to leave that user alone. With ``propagate_meta``
        the metadata of this node is copied onto ``replace_with`` (which must have none yet).
        """
        if propagate_meta:
            if replace_with.meta:
                raise ValueError(
                    f"replace_all_uses_with(propagate_meta=True): node {replace_with.name!r} already has "
                    "meta; propagating would overwrite it. Clear it or pass propagate_meta=False."
                )
            replace_with.meta.update(self.meta)
        changed = (
            list(self.users) if delete_user_cb is None else [u for u in list(self.users) if delete_user_cb(u)]
        )
        if _node_hooks.registered:  # all hooks first: one that raises leaves every user as it was
            _node_hooks.run_replace(self.graph._owning_module, self, replace_with.name, changed)
        for user in changed:
            user._swap_input(self, replace_with)
        return changed

    def replace_input_with(self, old_input: "Node", new_input: "Node") -> None:
        """Read ``new_input`` wherever this node read ``old_input``."""
        if _node_hooks.registered:
            _node_hooks.run_replace(self.graph._owning_module, old_input, new_input.name, [self])
        self._swap_input(old_input, new_input)

    def _swap_input(self, old: "Node", new: "Node") -> None:
        args, kwargs = self._args, self._kwargs
        if _is_flat(args):  # the common case, without map_arg's per-item calls
            swapped_args = tuple([new if item is old else item for item in args])
        else:
            swapped_args = _swapped(args, old, new)
        self._set_args_kwargs(swapped_args, _swapped(kwargs, old, new) if kwargs else kwargs)

    # -- misc --------------------------------------------------------------------------------
    @property
    def stack_trace(self) -> Optional[str]:
        """The user's source location this node was traced from, when recorded."""
        return self.meta.get("stack_trace", None)

    @stack_trace.setter
    def stack_trace(self, trace: Optional[str]) -> None:
        self.meta["stack_trace"] = trace

    def is_impure(self, impure_random: bool = True) -> bool:
        """Whether removing this node could change the program even when its value is unused."""
        op = self._op
        if op in ("placeholder", "output"):
            return True
        target = self._target
        if op == "call_function":
            try:
                if target in _SIDE_EFFECT_FUNCTIONS or target in _RANDOM_FUNCTIONS:
                    # Random functions move the global RNG: kept whatever ``impure_random`` says.
                    return True
                registered = _torch_fx_side_effects()
                if registered is not None and target in registered:
                    return True
            except TypeError:  # an unhashable callable
                return False
            if isinstance(target, _TORCH_OP_TYPES):
                # torch's own answer: mutable schemas, seeded random ops, ops registered as effectful
                # (collectives, profiler ranges, asserts, prints) and torch.fx.node.has_side_effect.
                return torch._library.utils.is_impure(
                    target, args=self._args, kwargs=dict(self._kwargs), impure_random=impure_random
                )
            return False
        if op == "call_module":
            root = self.graph.owning_module
            if root is None:
                return False
            try:
                module = root.get_submodule(target)
            except AttributeError:
                return False
            return bool(getattr(module, "_is_impure", False))
        return False

    def normalized_arguments(
        self,
        root: torch.nn.Module,
        arg_types: Optional[Tuple[Any, ...]] = None,
        kwarg_types: Optional[Dict[str, Any]] = None,
        normalize_to_only_use_kwargs: bool = False,
    ) -> Optional["ArgsKwargsPair"]:
        """This node's arguments bound to its target's signature, with defaults made explicit.

        Works for ``call_function`` on torch builtins, ``torch.ops`` overloads and Python functions,
        and for ``call_module`` on ``torch.nn`` modules (looked up in ``root``); None otherwise.
        ``arg_types``/``kwarg_types`` pick an overload when several torch schemas fit.
        """
        from .operator_schemas import normalize_function, normalize_module

        if self._op == "call_function":
            return normalize_function(
                self._target, self._args, self._kwargs, arg_types, kwarg_types, normalize_to_only_use_kwargs
            )
        if self._op == "call_module":
            return normalize_module(
                root, self._target, self._args, self._kwargs, normalize_to_only_use_kwargs
            )
        return None

    def format_node(
        self, placeholder_names: Optional[List[str]] = None, maybe_return_typename: Optional[List[str]] = None,
        *, include_tensor_metadata: bool = False,
    ) -> Optional[str]:  # fmt: skip
        """One line describing this node, as printed by ``str(graph)``; with
        ``include_tensor_metadata`` a computed node whose ``meta["val"]`` is a tensor shows its
        dtype, shape, strides and device in place of its type."""
        if self._op == "output":
            if self.type is not None and maybe_return_typename is not None:
                maybe_return_typename[0] = f" -> {_type_repr(self.type)}"
            return f"return {self._args[0] if self._args else None}"
        type_part = f"{_type_repr(self.type)} " if self.type is not None else ""
        value = self.meta.get("val") if include_tensor_metadata and self._op != "placeholder" else None
        if isinstance(value, torch.Tensor):
            from .codegen import _tensor_summary

            type_part = f'Tensor "{_tensor_summary(value.dtype, value.shape, value.stride(), value.device)}"'

        head = f"%{self.name} : {type_part}[num_users={len(self.users)}] = "
        if self._op == "placeholder":
            default = f"(default={self._args[0]})" if self._args else ""
            return f"{head}placeholder[target={self._target}]{default}"
        if self._op == "get_attr":
            return f"{head}get_attr[target={self._target}]"
        target = _format_target(self._op, self._target)
        return f"{head}{self._op}[target={target}](args = {_format_arg(self._args)}, kwargs = {_format_arg(self._kwargs)})"

    @property
    def name(self) -> str:
        """The node's variable name in the generated code; assigning renames it, as torch.fx does
        (a taken name, a keyword or a builtin gets a number: ``relu`` -> ``relu_1``)."""
        return self._name

    @name.setter
    def name(self, candidate: str) -> None:
        self._rename(candidate)

    def _rename(self, candidate: str) -> None:
        if candidate != self._name and (not isinstance(candidate, str) or not candidate.isidentifier()):
            raise ValueError(
                f"cannot rename node {self._name!r} to {candidate!r}: a node name must be a Python identifier"
            )
        if _node_hooks.registered and self.users:  # users read the node under its new name
            _node_hooks.run_replace(self.graph._owning_module, self, candidate, list(self.users))
        if candidate == self._name:
            return
        # The old name stays taken, as in torch.fx: later nodes are numbered past it.
        self._name = self.graph._namespace.create_name(candidate, None)

    def __repr__(self) -> str:
        return self.name
