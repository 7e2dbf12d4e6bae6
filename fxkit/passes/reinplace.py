"""Turn out-of-place aten ops back into in-place ones where nothing can tell the difference, as
torch.fx's ``passes.reinplace`` does for functionalized graphs (``make_fx(functionalize(f))``).

``reinplace(gm, *sample_args)`` runs the graph on fake tensors to learn which nodes share storage,
then walks the nodes in order. ``out = op(self, ...)`` becomes ``op_(self, ...)`` when:

- ``op`` has an in-place overload with the same arguments;
- ``self`` does not share storage with a graph input or attribute (mutating those would be seen
  by the caller);
- ``out`` has the size and dtype of ``self`` (no broadcasting or type promotion), and no two
  elements of ``self`` share memory (an ``expand``-ed view);
- no later node reads the storage of ``self`` (views do not count, their readers do; the graph's
  output does), except a ``*_scatter`` that writes ``out`` (or a view of it) back into the base of
  ``self`` at the very place it now lives: that scatter becomes redundant and is removed.

Later readers of ``out`` read ``self`` instead. A ``*_scatter(base, src, ...)`` that stays is itself
made in-place under the same conditions on ``base``: it becomes ``copy_(view(base, ...), src)``
and its readers read ``base``. The module is edited in place and returned.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Set, Tuple

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.multiprocessing.reductions import StorageWeakRef

from fxkit import _foreign
from fxkit.graph_module import GraphModule
from fxkit.interpreter import Interpreter
from fxkit.node import Node

__all__ = ["reinplace"]

_aten = torch.ops.aten

# Each scatter op writes its source into the place that this view op of the base reads.
_SCATTER_TO_VIEW = {
    _aten.slice_scatter.default: _aten.slice.Tensor,
    _aten.select_scatter.default: _aten.select.int,
    _aten.diagonal_scatter.default: _aten.diagonal.default,
    _aten.as_strided_scatter.default: _aten.as_strided.default,
}


class _FakeValues(Interpreter):
    """Runs the graph on fake tensors, keeping each node's result in ``meta["fake_result"]``."""

    def __init__(self, module: GraphModule) -> None:
        super().__init__(module, garbage_collect_values=False)
        self.index = 0

    def run_node(self, n: Node) -> Any:
        result = super().run_node(n)
        n.meta["fake_result"] = result
        n.meta["node_idx"] = self.index
        self.index += 1
        return result


def _storage(value: Any) -> Optional[StorageWeakRef]:
    if isinstance(value, torch.Tensor):
        return StorageWeakRef(value.untyped_storage())
    return None


def _is_view(target: Any) -> bool:
    """An aten overload returning an alias of an input without writing to it."""
    if not isinstance(target, torch._ops.OpOverload):
        return False
    schema = target._schema
    writes = any(arg.alias_info is not None and arg.alias_info.is_write for arg in schema.arguments)
    return not writes and any(ret.alias_info is not None for ret in schema.returns)


def _inplace_variant(target: Any) -> Optional[torch._ops.OpOverload]:
    """``op_.overload`` for ``op.overload`` when its arguments are the same, else None."""
    if not isinstance(target, torch._ops.OpOverload) or _is_view(target):
        return None
    namespace, name = target._schema.name.split("::")
    if name.endswith("_") or namespace != "aten":
        return None
    packet = getattr(_aten, name + "_", None)
    variant = getattr(packet, target._overloadname, None) if packet is not None else None
    if variant is None:
        return None
    ours = [(arg.name, str(arg.type)) for arg in target._schema.arguments]
    theirs = [(arg.name, str(arg.type)) for arg in variant._schema.arguments]
    if ours != theirs or not ours or ours[0][0] != "self":
        return None
    return variant


def _same_layout(a: Any, b: Any) -> bool:
    return (
        isinstance(a, torch.Tensor)
        and isinstance(b, torch.Tensor)
        and a.shape == b.shape
        and a.dtype == b.dtype
    )


def _overlaps_itself(value: Any) -> bool:
    """Whether two elements of ``value`` are one memory location (writing it in place fails)."""
    return isinstance(value, torch.Tensor) and torch._debug_has_internal_overlap(value) == 1


class _Aliases:
    """Where each node's value lives as the graph is rewritten: its fake result, except that a
    reinplaced node lives in its ``self`` and a view lives wherever its base lives now."""

    def __init__(self, mode: FakeTensorMode) -> None:
        self.mode = mode
        self.moved: Dict[Node, Any] = {}
        self._views: Dict[Node, Any] = {}
        self._view_root: Dict[Node, Node] = {}  # the non-view node a chain of views starts from
        self._storages: Dict[Node, Optional[StorageWeakRef]] = {}

    def value(self, node: Node) -> Any:
        if node in self.moved:
            return self.moved[node]
        if (
            node.op == "call_function"
            and _is_view(node.target)
            and node.args
            and isinstance(node.args[0], Node)
        ):
            if node not in self._views:
                base = self.value(node.args[0])
                self._view_root[node] = self._view_root.get(node.args[0], node.args[0])
                try:
                    with self.mode:
                        self._views[node] = node.target(base, *node.args[1:], **node.kwargs)
                except Exception:  # a view the fake base cannot take: fall back to the traced value
                    self._views[node] = node.meta.get("fake_result")
            return self._views[node]
        return node.meta.get("fake_result")

    def storage(self, node: Any) -> Optional[StorageWeakRef]:
        if not isinstance(node, Node):
            return None
        if node not in self._storages:
            self._storages[node] = _storage(self.value(node))
        return self._storages[node]

    def move(self, node: Node, to: Node) -> None:
        self.moved[node] = self.value(to)
        self._storages.pop(node, None)
        # Views computed from the old place of ``node`` are stale.
        for view in [view for view, root in self._view_root.items() if root is node]:
            self._views.pop(view, None)
            self._storages.pop(view, None)
            del self._view_root[view]

    def views_exactly(self, where: Any, base: Node, view_op: Any, args: Tuple[Any, ...]) -> bool:
        """Whether the tensor ``where`` lives exactly at ``view_op(base, *args)``."""
        base_value = self.value(base)
        if not isinstance(where, torch.Tensor) or not isinstance(base_value, torch.Tensor):
            return False
        try:
            with self.mode:
                expected = view_op(base_value, *args)
        except Exception:
            return False
        return (
            _storage(where) == _storage(expected)
            and where.storage_offset() == expected.storage_offset()
            and where.shape == expected.shape
            and where.stride() == expected.stride()
        )


def reinplace(gm: GraphModule, *sample_args: Any) -> GraphModule:
    """Make ops in-place where it is safe (see the module docstring); returns ``gm``, edited."""
    _foreign.reject(gm, "reinplace")  # edits gm in place
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    fake_args = [mode.from_tensor(arg) if isinstance(arg, torch.Tensor) else arg for arg in sample_args]
    with mode:
        _FakeValues(gm).run(*fake_args)

    aliases = _Aliases(mode)
    nodes = list(gm.graph.nodes)
    protected = {aliases.storage(n) for n in nodes if n.op in ("placeholder", "get_attr")} - {None}

    for position, node in enumerate(nodes):
        if node.graph is not gm.graph or node.op != "call_function":
            continue  # erased as a redundant scatter, or not an op
        if node.target in _SCATTER_TO_VIEW:
            _scatter_in_place(node, nodes[position + 1 :], aliases, protected)
            continue
        variant = _inplace_variant(node.target)
        if variant is None or not node.args or not isinstance(node.args[0], Node):
            continue
        self_node: Node = node.args[0]
        storage = aliases.storage(self_node)
        if storage is None or storage in protected:
            continue
        if not _same_layout(node.meta.get("fake_result"), self_node.meta.get("fake_result")):
            continue
        if _overlaps_itself(aliases.value(self_node)):
            continue
        later = nodes[position + 1 :]
        redundant = _redundant_scatters(node, self_node, later, aliases)
        if _read_later(storage, later, aliases, {scatter for scatter, _ in redundant}):
            continue
        node.target = variant
        _redirect_later_uses(node, self_node)
        aliases.move(node, self_node)
        for scatter, base in redundant:
            _redirect_later_uses(scatter, base)
            aliases.move(scatter, base)
            gm.graph.erase_node(scatter)
    gm.recompile()
    return gm


def _redundant_scatters(
    node: Node, self_node: Node, later: List[Node], aliases: _Aliases
) -> List[Tuple[Node, Node]]:
    """(scatter, its base) pairs that become no-ops once ``node`` writes into ``self_node``: a
    scatter of ``node`` to where ``self_node`` lives, then any scatter of such a scatter's result
    to where that scatter's base lives (nested views), in graph order."""
    found: List[Tuple[Node, Node]] = []
    written, place = node, self_node  # ``written`` ends up living where ``place`` lives
    while True:
        scatter = next(
            (
                user
                for user in _users_through_views(written)
                if _writes_back(user, written, place, later, aliases)
            ),
            None,
        )
        if scatter is None:
            return found
        base = scatter.args[0]
        found.append((scatter, base))  # type: ignore[arg-type]
        written, place = scatter, base  # type: ignore[assignment]


def _users_through_views(node: Node) -> List[Node]:
    """The readers of ``node`` and of the views taken of it (directly or through other views)."""
    found: List[Node] = []
    pending = [node]
    while pending:
        current = pending.pop()
        for user in current.users:
            found.append(user)
            if user.op == "call_function" and _is_view(user.target) and user.args and user.args[0] is current:
                pending.append(user)
    return found


def _writes_back(user: Node, written: Node, place: Node, later: List[Node], aliases: _Aliases) -> bool:
    """Whether the scatter ``user`` writes ``written`` (or a chain of views of it) to where that
    value will live once ``written`` lives where ``place`` does."""
    view_op = _SCATTER_TO_VIEW.get(user.target)
    if view_op is None or user.kwargs or user not in later or len(user.args) < 2:
        return False
    base, source = user.args[0], user.args[1]
    if not isinstance(base, Node) or not isinstance(source, Node):
        return False
    chain: List[Node] = []
    while source is not written:
        if source.op != "call_function" or not _is_view(source.target) or source.kwargs:
            return False
        if not source.args or not isinstance(source.args[0], Node):
            return False
        chain.append(source)
        source = source.args[0]
    where = aliases.value(place)
    try:
        with aliases.mode:
            for view in reversed(chain):
                where = view.target(where, *view.args[1:])
    except Exception:
        return False
    return aliases.views_exactly(where, base, view_op, tuple(user.args[2:]))


def _scatter_in_place(scatter: Node, later: List[Node], aliases: _Aliases, protected: Set[Any]) -> None:
    """Make a remaining ``*_scatter(base, src, ...)`` write into ``base``: ``copy_`` of ``src``
    into the same view of ``base``, when ``base`` may change (see the module docstring)."""
    if scatter.kwargs or len(scatter.args) < 2 or not isinstance(scatter.args[0], Node):
        return
    base: Node = scatter.args[0]
    storage = aliases.storage(base)
    if storage is None or storage in protected or _overlaps_itself(aliases.value(base)):
        return
    if _read_later(storage, later, aliases, set()):
        return
    graph = scatter.graph
    with graph.inserting_before(scatter):
        view = graph.call_function(_SCATTER_TO_VIEW[scatter.target], (base, *scatter.args[2:]))
        graph.call_function(_aten.copy_.default, (view, scatter.args[1]))
    _redirect_later_uses(scatter, base)
    aliases.move(scatter, base)
    graph.erase_node(scatter)


def _read_later(storage: StorageWeakRef, later: List[Node], aliases: _Aliases, ignored: Set[Node]) -> bool:
    """Whether a node in ``later`` (not a view, not ignored) reads a value living in ``storage``."""
    for user in later:
        if user in ignored or (user.op == "call_function" and _is_view(user.target)):
            continue
        if any(aliases.storage(used) == storage for used in user.all_input_nodes):
            return True
    return False


def _redirect_later_uses(old: Node, new: Node) -> None:
    """Every reader of ``old`` (all come later in a valid graph) reads ``new`` instead."""
    for user in list(old.users):
        user.replace_input_with(old, new)
