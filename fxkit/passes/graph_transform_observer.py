"""Watch what a pass does to a GraphModule (torch.fx's ``GraphTransformObserver``).

``with GraphTransformObserver(gm, "my_pass", log_url=folder): my_pass(gm)`` records the nodes the
pass creates and erases (through the module's node hooks), notes in each new node's
``meta["from_node"]`` which node it replaced, and writes the graph before and after the pass as
Graphviz DOT text: ``pass_<n>_<passname>_input_graph.dot`` (erased nodes yellow, the rest grey)
and ``..._output_graph.dot`` (created nodes yellow), only when the pass created or erased a node.
Without ``log_url`` (and without torch's inductor provenance tracking turned on) the observer is
inactive, as torch.fx's is: it registers nothing and records nothing, and ``apply_gm_pass`` /
``apply_graph_pass`` just run the pass. The DOT text comes from fxkit's own drawer (no pydot, no
Graphviz needed), so its labels and styles are fxkit's, not pydot's.
"""

from __future__ import annotations

import os
import re
import sys
from types import TracebackType
from typing import Callable, Dict, List, Optional, Set, Type, TypeVar

from fxkit import _foreign
from fxkit.graph import Graph
from fxkit.graph_module import GraphModule
from fxkit.node import Node
from fxkit.passes.graph_drawer import DotGraph, FxGraphDrawer
from fxkit.traceback import NodeSource, NodeSourceAction

__all__ = ["GraphTransformObserver"]

T = TypeVar("T")

_HIGHLIGHT, _PLAIN = "yellow", "grey"
# One drawn node: `  "name" [label="...", fillcolor=COLOR];` (edges have no label).
_NODE_LINE = re.compile(r'^(\s*"((?:[^"\\]|\\.)*)" \[label=.*, fillcolor=)([^\]]+)(\];)$', re.MULTILINE)


def _provenance_tracking_on() -> bool:
    # Read only if torch's inductor config is loaded already: fxkit never imports it.
    config = sys.modules.get("torch._inductor.config")
    return config is not None and getattr(getattr(config, "trace", None), "provenance_tracking_level", 0) == 1


def _recolored(dot: str, highlighted: Set[str]) -> DotGraph:
    """``dot`` with every node grey, except those named in ``highlighted`` (yellow)."""

    def paint(match: "re.Match[str]") -> str:
        color = _HIGHLIGHT if match.group(2) in highlighted else _PLAIN
        return f"{match.group(1)}{color}{match.group(4)}"

    return DotGraph(_NODE_LINE.sub(paint, dot))


class GraphTransformObserver:
    """A context manager around one pass over ``gm`` (see the module docstring)."""

    __pass_count = 0

    def __init__(
        self, gm: GraphModule, passname: str, subsystem: Optional[str] = None, log_url: Optional[str] = None
    ) -> None:
        self.gm = gm
        self.passname = passname
        self.subsystem = subsystem
        self.log_url = log_url
        self.active = log_url is not None or _provenance_tracking_on()
        if not self.active:
            return  # touches nothing: any module will do, a torch.fx one too
        _foreign.reject(gm, "GraphTransformObserver")  # an active one hooks into the module's graph
        self.erased_nodes: Set[str] = set()
        self.created_nodes: Set[str] = set()
        self.name_to_node: Dict[str, Node] = {}
        self.copied_gms: List[GraphModule] = []
        self._node_creation_hook = self.get_node_creation_hook()
        self._node_erase_hook = self.get_node_erase_hook()
        self._node_replace_hook = self.get_node_replace_hook()
        self._deepcopy_hook = self.get_deepcopy_hook()
        if log_url is None:
            return
        GraphTransformObserver.__pass_count += 1
        self.input_dot_graph = FxGraphDrawer(gm, passname).get_main_dot_graph()

    @classmethod
    def get_current_pass_count(cls) -> int:
        """How many observers with a ``log_url`` have been made in this process."""
        return cls.__pass_count

    def _check_disable_pass(self) -> bool:
        """True when torch's compiler bisector (if it is in use) switches this subsystem off."""
        if self.subsystem is None:
            return False
        bisector = sys.modules.get("torch._inductor.compiler_bisector")
        if bisector is None:
            return False
        return bisector.CompilerBisector.disable_subsystem("inductor", self.subsystem, lambda: self.passname)

    def apply_gm_pass(self, pass_fn: Callable[[GraphModule], T]) -> Optional[T]:
        """Run ``pass_fn(gm)`` under observation; None (without running it) when disabled."""
        with self:
            if not self._check_disable_pass():
                return pass_fn(self.gm)
        return None

    def apply_graph_pass(self, pass_fn: Callable[[Graph], T]) -> Optional[T]:
        """Run ``pass_fn(gm.graph)`` under observation; None (without running it) when disabled."""
        with self:
            if not self._check_disable_pass():
                return pass_fn(self.gm.graph)
        return None

    # -- the hooks -------------------------------------------------------------------------------
    # The getters hand out bound methods (equal to each other, so unregistering finds them).
    def get_node_creation_hook(self) -> Callable[[Node], None]:
        return self._node_created

    def get_node_erase_hook(self) -> Callable[[Node], None]:
        return self._node_erased

    def get_node_replace_hook(self) -> Callable[[Node, str, Node], None]:
        return self._node_replaced

    def get_deepcopy_hook(self) -> Callable[[GraphModule], None]:
        return self._module_copied

    def _node_created(self, node: Node) -> None:
        node.meta["from_node"] = [NodeSource(None, self.passname, NodeSourceAction.CREATE)]
        self.name_to_node[node.name] = node
        self.created_nodes.add(node.name)

    def _node_erased(self, node: Node) -> None:
        self.name_to_node.pop(node.name, None)
        self.erased_nodes.add(node.name)

    def _node_replaced(self, old: Node, new: str, user: Node) -> None:
        replacement = self.name_to_node.get(new)
        if replacement is None:
            return
        # The node it replaces takes the place of the bare creation mark.
        kept = [
            source
            for source in replacement.meta.get("from_node", [])
            if source.name != "" or source.action != [NodeSourceAction.CREATE]
        ]
        if all(source.name != old.name for source in kept):
            created = [NodeSourceAction.CREATE] if new in self.created_nodes else []
            kept.append(NodeSource(old, self.passname, [NodeSourceAction.REPLACE, *created]))
        replacement.meta["from_node"] = kept

    def _module_copied(self, copied: GraphModule) -> None:
        self.copied_gms.append(copied)

    # -- the context -----------------------------------------------------------------------------
    def __enter__(self) -> "GraphTransformObserver":
        if not self.active:
            return self
        self.erased_nodes.clear()
        self.created_nodes.clear()
        self.name_to_node = {node.name: node for node in self.gm.graph.nodes}
        self.copied_gms = []
        self.gm._register_create_node_hook(self._node_creation_hook)
        self.gm._register_erase_node_hook(self._node_erase_hook)
        self.gm._register_replace_node_hook(self._node_replace_hook)
        self.gm._register_deepcopy_hook(self._deepcopy_hook)
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        if not self.active:
            return
        hooks = (
            ("_create_node_hooks", "_unregister_create_node_hook", self._node_creation_hook),
            ("_erase_node_hooks", "_unregister_erase_node_hook", self._node_erase_hook),
            ("_replace_hooks", "_unregister_replace_node_hook", self._node_replace_hook),
            ("_deepcopy_hooks", "_unregister_deepcopy_hook", self._deepcopy_hook),
        )
        for module in [self.gm, *self.copied_gms]:  # deep copies made inside kept the hooks
            for attribute, unregister, hook in hooks:
                if hook in module.__dict__.get(attribute, ()):
                    getattr(module, unregister)(hook)
        if self.log_url is None or not (self.created_nodes or self.erased_nodes):
            return
        prefix = os.path.join(self.log_url, f"pass_{self.get_current_pass_count()}_{self.passname}")
        drawn = FxGraphDrawer(self.gm, self.passname).get_main_dot_graph()
        _recolored(self.input_dot_graph, self.erased_nodes).write(f"{prefix}_input_graph.dot")
        _recolored(drawn, self.created_nodes).write(f"{prefix}_output_graph.dot")
