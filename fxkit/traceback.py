"""Node metadata that follows a transformation: the "current meta" a tracer copies onto new nodes.

While ``preserve_node_meta()`` is on, ``set_current_meta(node)`` makes ``node.meta`` the current
metadata, and every node a tracer creates in that window inherits its provenance entries
(``stack_trace``, ``nn_module_stack``, ``custom``, ...) plus a ``from_node`` record naming the node
it came from. ``Transformer`` turns this on by itself; an ``Interpreter`` subclass that traces can
turn it on with ``preserve_node_meta()``. The state is per process, as in torch.fx.
"""

from __future__ import annotations

import copy
import enum
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, TypeVar, Union

__all__ = [
    "NodeSource", "NodeSourceAction", "annotate", "annotate_fn", "format_stack", "get_current_meta",
    "get_current_replay_node", "get_graph_provenance_json", "has_preserved_node_meta",
    "preserve_node_meta", "reset_grad_fn_seq_nr", "set_current_meta", "set_current_replay_node",
    "set_grad_fn_seq_nr", "set_stack_trace",
]  # fmt: skip

_F = TypeVar("_F", bound=Callable[..., Any])

should_preserve_node_meta = False
current_meta: Dict[str, Any] = {}
current_replay_node: Any = None

# The entries of the current meta that a tracer copies onto each node it creates.
COPIED_META_KEYS = (
    "stack_trace", "nn_module_stack", "source_fn_stack", "original_aten", "recompute", "ac_graph_id",
    "has_backward_hook", "from_node", "custom", "torch_fn", "partitioner_tag", "_numeric_debug_handle",
)  # fmt: skip


class NodeSourceAction(enum.Enum):
    """How a node relates to the node it was made from."""

    CREATE = "create"
    REPLACE = "replace"


class NodeSource:
    """Where a node came from: the source node's name, target and graph, the pass that made the
    new node, and the source node's own ``from_node`` history."""

    def __init__(self, node: Any, pass_name: str = "",
                 action: Union[NodeSourceAction, List[NodeSourceAction], None] = None) -> None:  # fmt: skip
        self.pass_name = pass_name
        if action is None:
            self.action: List[NodeSourceAction] = []
        elif isinstance(action, list):
            self.action = list(action)
        else:
            self.action = [action]
        if node is None:
            self.name, self.target, self.graph_id = "", "", -1
            self.from_node: List[NodeSource] = []
        else:
            self.name, self.target, self.graph_id = node.name, str(node.target), id(node.graph)
            self.from_node = list(node.meta.get("from_node", []))

    def _action_text(self) -> str:
        return "+".join(action.value for action in self.action)

    def print_readable(self, indent: int = 0) -> str:
        """This record and its history, one indented line per step."""
        text = (
            " " * indent + f"(name={self.name}, pass_name={self.pass_name}, "
            f"action={self._action_text()}, graph_id={self.graph_id})\n"
        )
        return text + "".join(source.print_readable(indent + 4) for source in self.from_node)

    def to_dict(self) -> Dict[str, Any]:
        """The record as plain data (JSON-ready)."""
        return {
            "name": self.name, "target": self.target, "graph_id": self.graph_id,
            "pass_name": self.pass_name, "action": self._action_text(),
            "from_node": [source.to_dict() for source in self.from_node],
        }  # fmt: skip

    def __repr__(self) -> str:
        return self.print_readable()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NodeSource) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))


@contextmanager
def preserve_node_meta(enable: bool = True) -> Iterator[None]:
    """Within the block, nodes created by tracers inherit the current meta; the current meta
    is restored on exit."""
    global should_preserve_node_meta, current_meta
    saved_flag, saved_meta = should_preserve_node_meta, dict(current_meta)
    try:
        should_preserve_node_meta = enable
        yield
    finally:
        should_preserve_node_meta, current_meta = saved_flag, saved_meta


def has_preserved_node_meta() -> bool:
    """True inside ``preserve_node_meta()``."""
    return should_preserve_node_meta


def get_current_meta() -> Dict[str, Any]:
    """The metadata new nodes inherit right now (a live dict)."""
    return current_meta


@contextmanager
def set_current_meta(node: Any, pass_name: str = "") -> Iterator[None]:
    """Make ``node``'s meta the current meta for the block (only while preserving, and only when
    the node has any meta), adding a ``from_node`` record for ``pass_name``."""
    global current_meta
    if not (should_preserve_node_meta and node.meta):
        yield
        return
    saved = current_meta
    try:
        current_meta = dict(node.meta)
        current_meta["from_node"] = [NodeSource(node, pass_name, NodeSourceAction.CREATE)]
        yield
    finally:
        current_meta = saved


def set_stack_trace(stack: List[str]) -> None:
    """Record ``stack`` (formatted frames) as the current stack trace, while preserving."""
    if should_preserve_node_meta and stack:
        current_meta["stack_trace"] = "".join(stack)


def format_stack() -> List[str]:
    """The stack of the node being transformed when preserving, else the caller's own stack."""
    if should_preserve_node_meta:
        return [current_meta.get("stack_trace", "")]
    return traceback.format_list(traceback.extract_stack()[:-1])


def set_grad_fn_seq_nr(seq_nr: int) -> None:
    """Enter the autograd function numbered ``seq_nr`` (new nodes take it as ``seq_nr``)."""
    if should_preserve_node_meta:
        current_meta["grad_fn_seq_nr"] = current_meta.get("grad_fn_seq_nr", []) + [seq_nr]
        current_meta["in_grad_fn"] = current_meta.get("in_grad_fn", 0) + 1


def reset_grad_fn_seq_nr() -> None:
    """Leave the autograd function entered last by ``set_grad_fn_seq_nr``."""
    if not should_preserve_node_meta:
        return
    depth = current_meta.get("in_grad_fn", 0)
    if depth <= 1:
        current_meta.pop("in_grad_fn", None)
        current_meta.pop("grad_fn_seq_nr", None)
    else:
        current_meta["in_grad_fn"] = depth - 1
        current_meta["grad_fn_seq_nr"] = current_meta["grad_fn_seq_nr"][:-1]


@contextmanager
def annotate(annotation_dict: Dict[str, Any]) -> Iterator[None]:
    """Nodes traced inside the block get ``annotation_dict`` merged into ``meta["custom"]``
    (nested blocks merge on top; the outer annotations come back on exit)."""
    global current_meta
    saved = current_meta
    try:
        current_meta = dict(current_meta)
        current_meta["custom"] = {**current_meta.get("custom", {}), **copy.copy(annotation_dict)}
        yield
    finally:
        current_meta = saved


def annotate_fn(annotation_dict: Dict[str, Any]) -> Callable[[_F], _F]:
    """Decorator form of ``annotate``: every call of the function runs inside the annotation."""

    def decorate(fn: _F) -> _F:
        import functools

        @functools.wraps(fn)
        def annotated(*args: Any, **kwargs: Any) -> Any:
            with annotate(annotation_dict):
                return fn(*args, **kwargs)

        return annotated  # type: ignore[return-value]

    return decorate


@contextmanager
def set_current_replay_node(node: Any) -> Iterator[None]:
    """Name the node being replayed (read back with ``get_current_replay_node``)."""
    global current_replay_node
    saved = current_replay_node
    try:
        current_replay_node = node
        yield
    finally:
        current_replay_node = saved


def get_current_replay_node() -> Any:
    """The node set by ``set_current_replay_node``, or None."""
    return current_replay_node


def get_graph_provenance_json(graph: Any) -> Dict[str, Any]:
    """For every node but placeholders and the output: its ``from_node`` history as dicts."""
    return {
        node.name: [source.to_dict() for source in node.meta.get("from_node", [])]
        for node in graph.nodes
        if node.op not in ("placeholder", "output")
    }


def copy_current_meta_to(node: Any) -> None:
    """What a tracer does to each node it creates while preserving: inherit the current meta's
    provenance entries and take the autograd sequence number."""
    import torch

    meta = current_meta
    for key in COPIED_META_KEYS:
        if key in meta:
            node.meta[key] = copy.copy(meta[key])
    if meta.get("autograd_backward"):
        node.meta["autograd_backward"] = True
    if meta.get("in_grad_fn", 0) > 0:
        node.meta["seq_nr"] = meta["grad_fn_seq_nr"][-1]
    else:
        node.meta["seq_nr"] = torch.autograd._get_sequence_nr() - 1


# ---------------------------------------------------------------------------------------------
# Smaller switches torch's own tracers flip (kept so code calling them runs unchanged).

GRADIENT_ACC_SPECIAL_STACK = "Gradient addition node due to multiple use of tensor around:"
MEMORY_BUDGET_ANNOTATION_KEY = "_region_activation_memory_budget"

_preserving_seq_nr = False
_regional_subgraph_name: Union[str, None] = None


@contextmanager
def _preserve_node_seq_nr(preserve_seq_nr: bool = True) -> Iterator[None]:
    global _preserving_seq_nr
    saved = _preserving_seq_nr
    try:
        _preserving_seq_nr = preserve_seq_nr
        yield
    finally:
        _preserving_seq_nr = saved


def _is_preserving_node_seq_nr() -> bool:
    return _preserving_seq_nr


def _mark_autograd_backward() -> None:
    """Mark the nodes traced from now on as part of the backward pass."""
    current_meta["autograd_backward"] = True


def _reset_autograd_backward() -> None:
    current_meta.pop("autograd_backward", None)


@contextmanager
def _set_autograd_backward(enable: bool = True) -> Iterator[None]:
    """With ``enable``, nodes traced within the block are marked as backward-pass nodes."""
    if not enable:
        yield
        return
    _mark_autograd_backward()
    try:
        yield
    finally:
        _reset_autograd_backward()


@contextmanager
def _set_regional_inductor_subgraph_name(name: Union[str, None]) -> Iterator[None]:
    global _regional_subgraph_name
    saved = _regional_subgraph_name
    try:
        _regional_subgraph_name = name
        yield
    finally:
        _regional_subgraph_name = saved


def _get_regional_inductor_subgraph_name() -> Union[str, None]:
    return _regional_subgraph_name
