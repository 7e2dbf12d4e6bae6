"""``Graph``: an ordered, editable list of ``Node``s that represents one function."""

from __future__ import annotations

import builtins
import copy
import inspect
import keyword
import operator
import pickle
import re
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch

from . import _foreign, _node_hooks, _paths
from . import node as _node_module
from ._gc import collector_paused as _collector_paused
from .codegen import RESERVED_NAMES, CodeGen, PythonCode, _PyTreeCodeGen, _PyTreeInfo
from .node import GRAPH_OPCODES, Argument, Node, Target, _nodes_to_none, map_aggregate, map_arg

if TYPE_CHECKING:
    from .graph_module import GraphModule

__all__ = ["Graph", "CodeGen", "PythonCode", "map_arg", "map_aggregate", "_PyTreeCodeGen", "_PyTreeInfo"]


_NOT_IDENTIFIER = re.compile(r"[^0-9a-zA-Z_]+")
_NUMBERED = re.compile(r"(.*)_(\d+)$")


def _snake_case(text: str) -> str:
    """``myConv`` -> ``my_conv``: an underscore goes where a capital follows a lower-case letter."""
    out = []
    after_lower = False
    for char in text:
        if after_lower and char.isupper():
            out.append("_")
        out.append(char.lower())
        after_lower = char.islower()
    return "".join(out)


_SNAKE_CACHE: Dict[str, str] = {}


# Characters that can only mean code in a name (the rest, such as "." or " ", is cleaned to "_").
_CODE_CHARACTERS = re.compile(r"[\x00-\x1f\x7f;()\[\]{}'\"`#=\\]")


class _Namespace:
    """Hands out unique, legal Python identifiers, numbering repeats as ``base_1``, ``base_2``.

    Numbering follows torch.fx: a clash continues from the last number handed out (or taken as
    it was) for that base. Names are never given back, so a run of taken ``base_k`` names can be
    jumped over in one step: ``_skip`` maps a taken ``base_k`` to a number past its run (path
    compression as in a union-find), which keeps naming O(1) amortised however the counter moves.
    """

    def __init__(self) -> None:
        self._used: Dict[str, None] = {}
        self._last_number: Dict[str, int] = {}
        self._skip: Dict[str, int] = {}
        self._owner: Dict[int, str] = {}
        self._cleaned: Dict[str, str] = {}  # candidate -> its legal-identifier spelling

    def _is_legal(self, name: str, obj: Any) -> bool:
        if name in self._used or keyword.iskeyword(name) or name in RESERVED_NAMES:
            return False
        builtin = builtins.__dict__.get(name, _MISSING)
        return builtin is _MISSING or builtin is obj

    def create_name(self, candidate: str, obj: Any) -> str:
        """A fresh name close to ``candidate``; the same ``obj`` always gets the same name back."""
        if obj is not None and id(obj) in self._owner:
            return self._owner[id(obj)]
        name = self._cleaned.get(candidate)
        if name is None:
            name = (
                candidate
                if candidate.isascii() and candidate.isidentifier()
                else _NOT_IDENTIFIER.sub("_", candidate)
            )
            if not name:
                name = "_unnamed"
            elif name[0].isdigit():
                name = "_" + name
            self._cleaned[candidate] = name
        numbered = _NUMBERED.match(name) if name[-1].isdigit() else None
        if self._is_legal(name, obj):
            # A numbered name taken as it is moves its base's counter there, as torch.fx does.
            if numbered:
                self._last_number[numbered.group(1)] = int(numbered.group(2))
        else:
            base = numbered.group(1) if numbered else name
            number = self._next_free(base, self._last_number.get(base, 0) + 1, obj)
            self._last_number[base] = number
            name = f"{base}_{number}"
        self._used[name] = None
        if obj is not None:
            self._owner[id(obj)] = name
        return name

    def _next_free(self, base: str, number: int, obj: Any) -> int:
        """The first number from ``number`` on whose ``base_number`` is free and legal."""
        used = self._used
        skip = self._skip
        passed: List[str] = []
        while True:
            name = f"{base}_{number}"
            if name in used:
                passed.append(name)
                number = skip.get(name, number + 1)
            # ``base_N`` is never a keyword or reserved; only a builtin of that name could clash.
            elif name in _BUILTIN_NAMES and not self._is_legal(name, obj):
                # Legality here depends on ``obj``: jumps stop short of this name.
                for name in passed:
                    skip[name] = number
                passed.clear()
                number += 1
            else:
                break
        for name in passed:
            skip[name] = number
        return number

    def reserve(self, name: str) -> None:
        self._used[name] = None

    def release(self, name: str) -> None:
        """Give back a name just handed out (its node could not be built); forgets the jumps over it."""
        if self._used.pop(name, _MISSING) is not _MISSING:
            self._skip.clear()

    def __contains__(self, name: str) -> bool:
        return name in self._used


_MISSING = object()
_BUILTIN_NAMES = builtins.__dict__


class _NodeList:
    """The nodes of a graph in program order (or reversed); iterating tolerates erasing the current node."""

    def __init__(self, graph: "Graph", reverse: bool = False) -> None:
        self._graph = graph
        self._reverse = reverse

    def __len__(self) -> int:
        return self._graph._len

    def __iter__(self) -> Iterator[Node]:
        root = self._graph._root
        if self._reverse:
            node = root._prev
            while node is not root:
                if not node._erased:
                    yield node
                node = node._prev
        else:
            node = root._next
            while node is not root:
                if not node._erased:
                    yield node
                node = node._next

    def __reversed__(self) -> "_NodeList":
        return _NodeList(self._graph, not self._reverse)

    def __repr__(self) -> str:
        return repr(list(self))


class _InsertPoint:
    """Context manager that restores the previous insertion point on exit."""

    def __init__(self, graph: "Graph", new_insert: Callable[[Node], None]) -> None:
        self._graph = graph
        self._previous = graph._insert
        graph._insert = new_insert

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        self._graph._insert = self._previous


def _same_node(node: Node) -> Node:
    return node


class _RestoreTransformer:
    """What ``on_generate_code`` returns: leaving its ``with`` block restores the previous transformer."""

    def __init__(self, codegen: Any, previous: Any) -> None:
        self._codegen, self._previous = codegen, previous

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: Any) -> None:
        self._codegen._body_transformer = self._previous


class Graph:
    """A function as a doubly linked list of nodes: placeholders, operations, one output.

    Insertion and erasure are O(1); ``nodes`` iterates in program order. Build graphs with the
    ``placeholder`` / ``get_attr`` / ``call_*`` / ``output`` builders and turn them into Python with
    ``python_code`` (or wrap them in a ``GraphModule``).
    """

    #: Counts the edits that change what running the graph does: a node added, erased or moved, or
    #: given another op, target or arguments. Per-node work cached between runs (the Interpreter's
    #: compiled plan) is rebuilt when it moves. A class default, so unpickled graphs have it too.
    _edits = 0

    def __init__(
        self,
        owning_module: Optional["GraphModule"] = None,
        tracer_cls: Optional[type] = None,
        tracer_extras: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._root = Node(self, "", "root", "", (), {})
        self._root._order = 0
        self._len = 0
        self._namespace = _Namespace()
        self._insert: Callable[[Node], None] = self._root.prepend
        self._owning_module = owning_module
        self._tracer_cls = tracer_cls
        self._tracer_extras = tracer_extras
        self._codegen: CodeGen = CodeGen()
        self._by_op: Dict[str, Dict[Node, None]] = {}
        self._by_op_target: Dict[Tuple[str, Any], Dict[Node, None]] = {}
        self._co_fields: Dict[str, Any] = {}
        self.meta: Dict[str, Any] = {}

    # -- ownership -----------------------------------------------------------------------------
    @property
    def owning_module(self) -> Optional["GraphModule"]:
        """The GraphModule this graph belongs to, if any."""
        return self._owning_module

    @owning_module.setter
    def owning_module(self, module: Optional["GraphModule"]) -> None:
        self._owning_module = module

    @property
    def nodes(self) -> _NodeList:
        """All nodes, in program order. Supports ``len``, ``reversed`` and iteration."""
        return _NodeList(self)

    def output_node(self) -> Node:
        """The graph's output node (the last node)."""
        last = self._root._prev
        if last is self._root or last.op != "output":
            raise RuntimeError("this graph has no output node; add one with graph.output(value)")
        return last

    # -- lookup table for find_nodes -------------------------------------------------------------
    def _index(self, node: Node) -> None:
        self._edits += 1
        op = node._op
        if node._erased or op == "root":
            return
        by_op = self._by_op.get(op)
        if by_op is None:
            by_op = self._by_op[op] = {}
        by_op[node] = None
        try:
            by_target = self._by_op_target.get((op, node._target))
            if by_target is None:
                by_target = self._by_op_target[(op, node._target)] = {}
        except TypeError:  # an unhashable target: find_nodes filters the op's bucket instead
            return
        by_target[node] = None

    def _unindex(self, node: Node) -> None:
        self._edits += 1
        op = node._op
        by_op = self._by_op.get(op)
        if by_op is not None:
            by_op.pop(node, None)
        try:
            by_target = self._by_op_target.get((op, node._target))
        except TypeError:
            return
        if by_target is not None:
            by_target.pop(node, None)

    def find_nodes(self, *, op: str, target: Optional[Target] = None, sort: bool = True) -> List[Node]:
        """Nodes with this ``op`` (and ``target`` when given), found without scanning the graph."""
        if target is None:
            found = list(self._by_op.get(op, ()))
        else:
            try:
                found = list(self._by_op_target.get((op, target), ()))
            except TypeError:
                found = [node for node in self._by_op.get(op, ()) if node._target == target]
        if sort and len(found) > 1:
            found.sort(key=_order_of)
        return found

    def _relinked(self, node: Node) -> None:
        """Give ``node`` an integer order label between its neighbours after it moved in the list."""
        self._edits += 1
        low = node._prev._order
        after = node._next
        if after is self._root:
            node._order = low + _LABEL_STEP
        elif after._order - low > 1:
            node._order = (low + after._order) // 2
        else:
            self._relabel_around(node)

    def _relabel_around(self, node: Node) -> None:
        """Spread labels evenly over the smallest aligned label block around ``node`` that is sparse enough.

        Block ``[lo, lo + 2**level)`` may hold at most ``(2 / 1.5) ** level`` nodes; taking the first
        level that qualifies keeps relabelling amortised O(log n) per insertion, so inserting many
        nodes at one spot (e.g. repeatedly before the output) stays linear overall.
        """
        root = self._root
        anchor = node._prev._order
        level = 1
        while True:
            lo = (anchor >> level) << level
            hi = lo + (1 << level)
            first = last = node
            count = 1
            while first._prev is not root and first._prev._order >= lo:
                first = first._prev
                count += 1
            while last._next is not root and last._next._order < hi:
                last = last._next
                count += 1
            if count * 3**level <= 4**level:
                gap = (1 << level) // (count + 1)
                label = lo
                current = first
                while True:
                    label += gap
                    current._order = label
                    if current is last:
                        return
                    current = current._next
            level += 1

    # -- building ------------------------------------------------------------------------------
    def create_node(
        self,
        op: str,
        target: Target,
        args: Optional[Tuple[Argument, ...]] = None,
        kwargs: Optional[Dict[str, Argument]] = None,
        name: Optional[str] = None,
        type_expr: Optional[Any] = None,
    ) -> Node:
        """Create a node and insert it at the current insertion point.

        A ``name`` that is not an identifier is cleaned as torch.fx cleans it (``"layer.0"`` ->
        ``layer_0``), except one holding what only code holds (line breaks, quotes, brackets,
        ``;``, ``#``, ``=``): that is refused, as a rename to it is."""
        if name is not None and _CODE_CHARACTERS.search(name):
            raise ValueError(
                f"cannot create a node named {name!r}: a node name becomes a variable of the generated"
                " code, and this one holds characters of code (a line break, quote, bracket, ';', '#'"
                " or '='); pass a Python identifier"
            )
        candidate = name if name is not None else self._target_to_str(target)
        unique = self._namespace.create_name(candidate, None)
        try:
            node = Node(self, unique, op, target, () if args is None else args, kwargs, type_expr)
        except Exception:
            self._namespace.release(unique)
            raise
        if _node_hooks.registered and self._owning_module is not None:
            self._run_create_hooks(node, unique)
        self._insert(node)
        self._len += 1
        self._index(node)
        return node

    def _run_create_hooks(self, node: Node, unique: str) -> None:
        # Before insertion, as torch.fx runs them; a hook that raises leaves no trace of the node.
        try:
            _node_hooks.run(self._owning_module, "create", node)
        except BaseException:
            for used in node._inputs:
                used.users.pop(node, None)
            self._namespace.release(unique)
            raise

    def placeholder(
        self, name: str, type_expr: Optional[Any] = None, default_value: Any = inspect.Signature.empty
    ) -> Node:
        """An input of the function; ``default_value`` becomes the parameter's default."""
        args = () if default_value is inspect.Signature.empty else (default_value,)
        return self.create_node("placeholder", name, args=args, type_expr=type_expr)

    def get_attr(self, qualified_name: str, type_expr: Optional[Any] = None) -> Node:
        """Fetch ``qualified_name`` (e.g. ``layer.weight``) from the owning module."""
        self._warn_if_missing(qualified_name, "get_attr")
        return self.create_node("get_attr", qualified_name, type_expr=type_expr)

    def call_module(
        self,
        module_name: str,
        args: Optional[Tuple[Argument, ...]] = None,
        kwargs: Optional[Dict[str, Argument]] = None,
        type_expr: Optional[Any] = None,
    ) -> Node:
        """Call the submodule at ``module_name`` of the owning module (which must have it, if set)."""
        self._require_submodule(module_name)
        return self.create_node("call_module", module_name, args, kwargs, type_expr=type_expr)

    def call_method(
        self,
        method_name: str,
        args: Optional[Tuple[Argument, ...]] = None,
        kwargs: Optional[Dict[str, Argument]] = None,
        type_expr: Optional[Any] = None,
    ) -> Node:
        """Call ``args[0].method_name(*args[1:], **kwargs)``."""
        return self.create_node("call_method", method_name, args, kwargs, type_expr=type_expr)

    def call_function(
        self,
        the_function: Callable[..., Any],
        args: Optional[Tuple[Argument, ...]] = None,
        kwargs: Optional[Dict[str, Argument]] = None,
        type_expr: Optional[Any] = None,
        name: Optional[str] = None,
    ) -> Node:
        """Call a free function such as ``torch.relu`` or ``operator.add``."""
        return self.create_node("call_function", the_function, args, kwargs, name=name, type_expr=type_expr)

    def output(self, result: Argument, type_expr: Optional[Any] = None) -> Node:
        """The function's return value."""
        return self.create_node("output", "output", (result,), type_expr=type_expr)

    def _require_submodule(self, module_name: str) -> None:
        # As torch.fx: the owning module's get_submodule decides, and its AttributeError text is kept.
        root = self._owning_module
        if root is None:
            return
        try:
            root.get_submodule(module_name)
        except AttributeError as error:
            raise AttributeError(
                f"{error} (call_module target {module_name!r}: add the submodule to the owning module"
                " first, e.g. with add_submodule)"
            ) from None

    def _warn_if_missing(self, qualified_name: str, op: str) -> None:
        root = self._owning_module
        if root is None:
            return
        try:
            _paths.resolve(root, qualified_name)
        except _paths.MissingAttribute:
            # The get_attr warning starts with torch.fx's sentence: code filters warnings on it.
            lead = (
                "Attempted to insert a get_attr Node with no underlying reference in the owning GraphModule! "
                if op == "get_attr"
                else ""
            )
            warnings.warn(
                f"{lead}{op} target {qualified_name!r} does not exist on the owning module "
                f"{type(root).__name__}; add it (e.g. with add_submodule/register_buffer) before running.",
                stacklevel=3,
            )

    def _target_to_str(self, target: Target) -> str:
        if callable(target) and not isinstance(target, str):
            text = target.__name__ if hasattr(target, "__name__") else type(target).__name__
        else:
            text = str(target)
            # only string targets (methods) lose their dunders, as in torch.fx: `x.__add__(y)` -> add
            if text.startswith("__") and text.endswith("__") and len(text) > 4:
                text = text[2:-2]
        snake = _SNAKE_CACHE.get(text)
        if snake is None:
            snake = _SNAKE_CACHE[text] = _snake_case(text)
        return snake

    # -- insertion points ------------------------------------------------------------------------
    def inserting_before(self, n: Optional[Node] = None) -> _InsertPoint:
        """New nodes go right before ``n`` (the start of the graph when ``n`` is None)."""
        if n is None:
            return _InsertPoint(self, self._root.append)
        self._check_owned(n, "inserting_before")
        return _InsertPoint(self, n.prepend)

    def inserting_after(self, n: Optional[Node] = None) -> _InsertPoint:
        """New nodes go right after ``n`` (the end of the graph when ``n`` is None)."""
        if n is None:
            return _InsertPoint(self, self._root.prepend)
        self._check_owned(n, "inserting_after")
        return _InsertPoint(self, n.append)

    def _check_owned(self, node: Node, action: str) -> None:
        if node.graph is not self:
            raise ValueError(f"{action}: node {node.name!r} belongs to another graph")
        if node._erased:
            raise ValueError(f"{action}: node {node.name!r} was erased from this graph")

    # -- removing --------------------------------------------------------------------------------
    def erase_node(self, to_erase: Node) -> None:
        """Remove a node that nobody uses any more."""
        if to_erase.graph is not self:
            raise RuntimeError(f"cannot erase node {to_erase.name!r}: it belongs to another graph")
        if to_erase._erased:
            raise RuntimeError(f"cannot erase node {to_erase.name!r}: it was already erased")
        if to_erase.users:
            raise RuntimeError(
                f"Tried to erase Node {to_erase.name} but it still had {len(to_erase.users)} users in the "
                f"graph: {dict(to_erase.users)}! Rewire them first, e.g. with "
                f"{to_erase.name}.replace_all_uses_with(other_node)."
            )
        if _node_hooks.registered:
            _node_hooks.run(self._owning_module, "erase", to_erase)
        self._unindex(to_erase)
        to_erase._unlink()
        to_erase._erased = True
        self._len -= 1
        for used in to_erase._inputs:
            used.users.pop(to_erase, None)
        to_erase._inputs = ()
        to_erase._args = _nodes_to_none(to_erase._args)
        if to_erase._kwargs:
            to_erase._kwargs = _nodes_to_none(to_erase._kwargs)

    def eliminate_dead_code(self, is_impure_node: Optional[Callable[[Node], bool]] = None) -> bool:
        """Erase every node whose value is unused and that has no side effect; True if any went."""
        changed = False
        for node in reversed(self.nodes):
            if node.users:
                continue
            impure = is_impure_node(node) if is_impure_node is not None else node.is_impure()
            if not impure:
                self.erase_node(node)
                changed = True
        return changed

    # -- copying ---------------------------------------------------------------------------------
    def node_copy(self, node: Node, arg_transform: Callable[[Node], Argument] = _same_node) -> Node:
        """Copy ``node`` (possibly from another graph) here, mapping its inputs with ``arg_transform``.

        Without ``arg_transform`` the copy reads the same nodes as the original, also those of another
        graph (as in torch.fx); ``lint`` then reports them until they are replaced."""
        if type(node) is not Node:
            _foreign.reject(node, "Graph.node_copy")
        args = map_arg(node.args, arg_transform)
        kwargs = map_arg(node.kwargs, arg_transform)
        if arg_transform is _same_node:
            _node_module._COPY_WITHOUT_REMAP.active = True
            try:
                copied = self.create_node(node.op, node.target, args, kwargs, node.name, node.type)
            finally:
                _node_module._COPY_WITHOUT_REMAP.active = False
        else:
            copied = self.create_node(node.op, node.target, args, kwargs, node.name, node.type)
        copied.meta = copy.copy(node.meta)
        return copied

    def graph_copy(
        self, g: "Graph", val_map: Dict[Node, Node], return_output_node: bool = False
    ) -> Optional[Argument]:
        """Copy every node of ``g`` into this graph; return what ``g`` outputs (mapped), if anything."""
        if not isinstance(g, Graph):
            _foreign.reject(g, "Graph.graph_copy")
        for node in g.nodes:
            if node in val_map:
                continue
            if node.op == "output":
                result = map_arg(node.args[0], lambda n: val_map[n])
                return (result, node) if return_output_node else result
            val_map[node] = self.node_copy(node, lambda n: val_map[n])
        return None

    def __deepcopy__(self, memo: Optional[Dict[int, Any]] = None) -> "Graph":
        with _collector_paused():
            return self._deepcopy(memo if memo is not None else {})

    def _deepcopy(self, memo: Dict[int, Any]) -> "Graph":
        copied = Graph(tracer_cls=self._tracer_cls, tracer_extras=self._tracer_extras)
        val_map: Dict[Node, Node] = {}
        outcome = copied.graph_copy(self, val_map, return_output_node=True)
        copied._codegen = copy.deepcopy(self._codegen)
        copied.meta = copy.deepcopy(self.meta, memo)
        if outcome is not None:
            result, old_output = outcome
            new_output = copied.output(result, type_expr=getattr(old_output, "type", None))
            new_output.meta = copy.copy(old_output.meta)
        return copied

    def __getstate__(self) -> Dict[str, Any]:
        """Pickle the node list flat (index references), so deep graphs never hit the recursion limit."""
        with _collector_paused():
            return self._flat_state()

    def _flat_state(self) -> Dict[str, Any]:
        position: Dict[Node, int] = {}
        records = []
        for index, node in enumerate(self.nodes):
            position[node] = index
            records.append(
                (
                    node.op,
                    node.name,
                    _OpRef(node.target) if isinstance(node.target, _OP_TYPES) else node.target,
                    _encode(node.args, position),
                    _encode(node.kwargs, position),
                    node.type,
                )
            )
        state = {key: value for key, value in self.__dict__.items() if key not in _UNPICKLED_FIELDS}
        state["_records"] = records
        state["_node_meta"] = _picklable_meta([node.meta for node in self.nodes])
        state["_owning_module"] = None
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        with _collector_paused():
            self._restore_flat_state(state)

    def _restore_flat_state(self, state: Dict[str, Any]) -> None:
        records = state.pop("_records")
        metas = state.pop("_node_meta")  # restored by the same unpickler as the rest, never a nested one
        fresh = Graph()
        self.__dict__.update(fresh.__dict__)
        self._root.graph = self
        self._insert = self._root.prepend
        self.__dict__.update(state)
        built: List[Node] = []
        namespace = self._namespace
        append_at_end = self._root.prepend
        for (op, name, target, args, kwargs, type_expr), meta in zip(records, metas):
            # Names were unique when pickled, so they are reserved as they are instead of re-derived.
            namespace.reserve(name)
            node = Node(self, name, op, target, _decode(args, built), _decode(kwargs, built), type_expr)
            node.meta = meta
            append_at_end(node)
            self._len += 1
            self._index(node)
            built.append(node)

    # -- checking --------------------------------------------------------------------------------
    def lint(self) -> None:
        """Check the graph is well formed; raise RuntimeError naming the first offending node."""
        seen: Dict[Node, None] = {}
        names: Dict[str, Node] = {}
        reads: Dict[Node, int] = {}  # node -> how many nodes read it
        outputs = 0
        count = 0
        for node in self.nodes:
            count += 1
            if node.graph is not self:
                raise RuntimeError(
                    f"Node {node.name!r} is in the list of this graph but points at another graph"
                )
            if node.op not in GRAPH_OPCODES:
                raise RuntimeError(f"Node {node.name!r} has unknown opcode {node.op!r}")
            if node.name in names:
                raise RuntimeError(f"Node name {node.name!r} is used by more than one node")
            names[node.name] = node
            if not node.name.isidentifier() or keyword.iskeyword(node.name):
                raise RuntimeError(f"Node name {node.name!r} is not a valid Python identifier")
            for used in node._inputs:
                if used.graph is not self:
                    raise RuntimeError(
                        f"Argument '{used.name}' of Node '{node.name}' does not belong to this Graph, but was"
                        " used as an argument! Copied from another graph? Pass node_copy() an arg_transform"
                        " that maps the source graph's nodes to this graph's."
                    )
                if used not in seen:
                    raise RuntimeError(
                        f"Argument '{used.name}' of Node '{node.name}' was used before it has been defined! "
                        f"Please check that Nodes in the graph are topologically ordered\n{self}"
                    )
                if node not in used.users:
                    raise RuntimeError(f"Node {used.name!r} does not list its user {node.name!r} in users")
                reads[used] = reads.get(used, 0) + 1
            for user in node.users:
                if user._erased or user.graph is not self:
                    raise RuntimeError(
                        f"Node {node.name!r} lists {user.name!r}, which is not in this graph, as a user"
                    )
            if node.op == "output":
                outputs += 1
                if outputs > 1:
                    raise RuntimeError(f"Node {node.name!r}: the graph has more than one output node")
            elif outputs:
                raise RuntimeError(f"Node {node.name!r} comes after the output node")
            seen[node] = None
        # Every read is listed in `users` (checked above); a node with more users than readers lists
        # one that does not read it. Counting keeps lint linear (`_inputs` is a tuple).
        for node in self.nodes:
            if len(node.users) != reads.get(node, 0):
                stray = next(user for user in node.users if node not in user._inputs)
                raise RuntimeError(
                    f"Node {node.name!r} lists {stray.name!r} as a user but it does not read it"
                )
        if count != self._len:
            raise RuntimeError(f"graph length bookkeeping is off: {count} nodes listed, {self._len} counted")
        root = self._owning_module
        if root is not None:
            for node in self.nodes:
                if node.op in ("get_attr", "call_module"):
                    try:
                        owner = _paths.resolve(root, node.target)
                    except _paths.MissingAttribute as error:
                        raise RuntimeError(
                            f"Node {node.name!r} ({node.op}) refers to {node.target!r}, but {error.missing!r} "
                            "does not exist on the owning module"
                        ) from None
                    if node.op == "call_module" and not isinstance(owner, torch.nn.Module):
                        raise RuntimeError(
                            f"Node {node.name!r} calls {node.target!r} as a module but it is a {type(owner).__name__}"
                        )

    # -- code generation -------------------------------------------------------------------------
    def set_codegen(self, codegen: CodeGen) -> None:
        """Use ``codegen`` to turn this graph into Python (e.g. a pytree-flattening calling convention)."""
        self._codegen = codegen

    # fmt: off
    def python_code(
        self, root_module: str, *, verbose: bool = False, include_stride: bool = False,
        include_device: bool = False, colored: bool = False, expanded_def: bool = False,
        record_func: bool = False, additional_meta: Optional[List[str]] = None,
    ) -> PythonCode:
        # fmt: on
        """The Python source of ``forward`` for this graph and the globals it needs.

        ``verbose`` adds stack-trace comments and shape annotations from ``node.meta`` ('val' or
        'tensor_meta'; ``include_stride``/``include_device`` extend them, ``additional_meta`` names
        meta entries to show in the comments). ``colored`` adds terminal colors, ``expanded_def``
        puts one parameter a line, and ``record_func`` wraps each node in a profiler range.
        """
        with _collector_paused():
            return self._codegen._gen_python_code(
                self.nodes, root_module, verbose=verbose, include_stride=include_stride,
                include_device=include_device, colored=colored, expanded_def=expanded_def,
                record_func=record_func, additional_meta=additional_meta,
            )  # fmt: skip

    def process_inputs(self, *args: Any) -> Any:
        return self._codegen.process_inputs(*args)

    def process_outputs(self, out: Any) -> Any:
        return self._codegen.process_outputs(out)

    def on_generate_code(self, make_transformer: Callable[[Any], Any]) -> "_RestoreTransformer":
        """Post-process the generated body with ``make_transformer(previous)`` from now on.

        The transformer gets newline-terminated pieces of the body, with a ``# COUNTER: i`` line
        before the code of node ``i`` (removed afterwards), and returns the pieces to use. Used in a
        ``with`` block, the previous transformer comes back at its end (as in torch.fx)."""
        previous = self._codegen._body_transformer
        self._codegen._body_transformer = make_transformer(previous)
        return _RestoreTransformer(self._codegen, previous)

    # -- printing --------------------------------------------------------------------------------
    def __str__(self) -> str:
        return_type = [""]
        lines = []
        for node in self.nodes:
            text = node.format_node(None, return_type)
            if text:
                lines.append("\n    " + text)
        # torch.fx computes the return annotation here but does not print it; neither do we.
        return "graph():" + "".join(lines)

    def print_tabular(self) -> None:
        """Print the nodes as a table of opcode, name, target, args and kwargs."""
        print(self._tabular())

    def _tabular(self) -> str:
        # Laid out like tabulate's "simple" format: columns at least two wider than their header,
        # multi-line cells spread over several lines, no trailing spaces.
        headers = ("opcode", "name", "target", "args", "kwargs")
        rows = [
            [
                str(cell).strip().split("\n")
                for cell in (node.op, node.name, node.target, node.args, node.kwargs)
            ]
            for node in self.nodes
        ]
        widths = [
            max([len(header) + 2] + [len(line) for row in rows for line in row[column]])
            for column, header in enumerate(headers)
        ]

        def layout(cells: List[str]) -> str:
            return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

        lines = [layout(list(headers)), layout(["-" * width for width in widths])]
        for row in rows:
            for depth in range(max(len(cell) for cell in row)):
                lines.append(layout([cell[depth] if depth < len(cell) else "" for cell in row]))
        return "\n".join(lines)


# Label distance left after a node appended at the end, so later inserts there rarely relabel.
_LABEL_STEP = 1 << 32

_UNPICKLED_FIELDS = frozenset(
    {"_root", "_len", "_namespace", "_insert", "_by_op", "_by_op_target", "_owning_module"}
)


class _NodeRef:
    """Stand-in for a node inside pickled arguments: its position in the node list."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> Tuple[Any, Tuple[int]]:
        return (_NodeRef, (self.index,))


def _picklable_meta(metas: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Node metadata to pickle with the graph; entries that cannot be pickled (local classes, fake
    tensors, ...) are dropped with a warning instead of failing the whole module's pickling."""
    try:
        pickle.dumps(metas, protocol=pickle.HIGHEST_PROTOCOL)
        return metas
    except Exception:
        pass
    kept: List[Dict[str, Any]] = []
    dropped: Dict[str, None] = {}
    for meta in metas:
        clean = {}
        for key, value in meta.items():
            try:
                pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                dropped[key] = None
                continue
            clean[key] = value
        kept.append(clean)
    warnings.warn(f"node meta entries {list(dropped)} could not be pickled and were left out", stacklevel=4)
    return kept


class _OpRef:
    """Pickles a torch operator (``torch.ops.ns.name[.overload]``, also ones defined with
    torch.library) by name; unpickling looks it up again, so it must be registered by then."""

    __slots__ = ("op",)

    def __init__(self, op: Any) -> None:
        self.op = op

    def __reduce__(self) -> Tuple[Any, Tuple[str, str, Optional[str]]]:
        op = self.op
        if isinstance(op, torch._ops.OpOverload):
            packet = op.overloadpacket
            return (_load_op, (op.namespace, packet.__name__, op._overloadname))
        namespace, _, name = op._qualified_op_name.partition("::")
        return (_load_op, (namespace, name, None))


def _load_op(namespace: str, name: str, overload: Optional[str]) -> Any:
    packet = getattr(getattr(torch.ops, namespace), name)
    return packet if overload is None else getattr(packet, overload)


_OP_TYPES = (torch._ops.OpOverload, torch._ops.OpOverloadPacket)


def _encode(arg: Any, position: Dict[Node, int]) -> Any:
    """Arguments with nodes replaced by their positions and read-only containers made plain."""
    kind = type(arg)
    if kind is Node:
        return _NodeRef(position[arg])
    if isinstance(arg, _OP_TYPES):
        return _OpRef(arg)
    if kind is tuple:
        return tuple([_encode(item, position) for item in arg])
    if isinstance(arg, list):
        return [_encode(item, position) for item in arg]
    if isinstance(arg, dict):
        return {key: _encode(value, position) for key, value in arg.items()}
    if kind is slice:
        return slice(_encode(arg.start, position), _encode(arg.stop, position), _encode(arg.step, position))
    if isinstance(arg, tuple) and hasattr(arg, "_fields"):
        return kind(*[_encode(item, position) for item in arg])
    return arg


def _decode(arg: Any, built: List[Node]) -> Any:
    kind = type(arg)
    if kind is _NodeRef:
        return built[arg.index]
    if kind is tuple:
        return tuple([_decode(item, built) for item in arg])
    if kind is list:
        return [_decode(item, built) for item in arg]
    if kind is dict:
        return {key: _decode(value, built) for key, value in arg.items()}
    if kind is slice:
        return slice(_decode(arg.start, built), _decode(arg.stop, built), _decode(arg.step, built))
    if isinstance(arg, tuple) and hasattr(arg, "_fields"):
        return kind(*[_decode(item, built) for item in arg])
    return arg


# Sort key for program order (a C-level getter: find_nodes sorts thousands of nodes at a time).
_order_of: Callable[[Node], int] = operator.attrgetter("_order")
