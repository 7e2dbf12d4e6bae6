"""Split a GraphModule into submodules that run on an accelerator ("acc") and ones that stay on the
CPU, as torch.fx's ``passes.splitter_base`` does.

``_SplitterBase(module, sample_input, operator_support, settings)()`` shape-propagates the sample
input, asks ``operator_support`` which nodes the accelerator takes, grows subgraphs greedily
(alternating acc and non-acc, each as large as the dependencies allow), folds acc subgraphs
smaller than ``min_acc_module_size`` into their neighbours, tags every node with its subgraph
(``_run_on_acc_<i>`` / ``<non_acc_submodule_name><i>``) and splits by those tags. Backends
subclass it and override ``_lower_model_to_backend`` and ``_find_culprit`` for previews.
"""

from __future__ import annotations

import collections
import copy
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import torch

from fxkit import _foreign
from fxkit.graph_module import GraphModule
from fxkit.node import Node
from fxkit.passes.graph_drawer import FxGraphDrawer  # noqa: F401  (torch.fx has the names here too)
from fxkit.passes.graph_manipulation import get_size_of_node  # noqa: F401
from fxkit.passes.operator_support import OperatorSupportBase
from fxkit.passes.shape_prop import ShapeProp
from fxkit.passes.split_utils import move_non_tensor_nodes_on_boundary, split_by_tags

# fmt: off
from fxkit.passes.tools_common import (
    CALLABLE_NODE_OPS,
    FxNetAccFusionsFinder,
    NodeList,
    NodeSet,
    Tensors,
    get_node_target,
    is_node_output_tensor,
)

# fmt: on

__all__ = [
    "FxNetAccNodesFinder", "FxNetSplitterInternalError", "NodeEvent", "NodeEventTracker", "Subgraph", "SplitResult",
    "_SplitterBase", "_SplitterSettingBase", "generate_inputs_for_submodules",
]  # fmt: skip

DEFAULT_MIN_ACC_MODULE_SIZE = 1
DEFAULT_SKIP_FUSION = False
DEFAULT_ALLOW_NON_TENSOR = False

# Where and how much the acc-node finder's decision log is written (see NodeEventTracker).
ENV_FX_NET_ACC_SPLITTER_TRACKER_MODE = "FX_NET_ACC_SPLITTER_TRACKER_MODE"
ENV_FX_NET_ACC_SPLITTER_TRACKER_DUMP_PATH = "FX_NET_ACC_SPLITTER_TRACKER_DUMP_PATH"
ENV_FX_NET_ACC_SPLITTER_TRACKER_TRACKED_NODES = "FX_NET_ACC_SPLITTER_TRACKER_TRACKED_NODES"
DUMP_PREFIX = TRACKER_DUMP_PATH = "_fx_net_tracker"
TRACKER_MODE = "0"
ALL_SUFFIX = "_all.txt"
NODES_SUFFIX = "_nodes.txt"


class NodeEvent:
    """One decision about a node: what happened (``desc``) and the node that caused it."""

    def __init__(self, source: Node, desc: str, dep: Optional[Node] = None) -> None:
        self.source, self.desc, self.dep = source, desc, dep

    def to_str(self) -> str:
        return f"{self.source.name}: {self.desc} {self.dep.name if self.dep is not None else '#'}"


class NodeEventTracker:
    """The log of why each node went to the accelerator or not. ``tracker_mode`` 0 keeps it in
    memory only; 1 also writes every node's events to ``<dump_prefix>_all.txt`` on ``dump()``; 2
    and 3 also write the events of the nodes named (comma-separated) in the environment variable
    ``FX_NET_ACC_SPLITTER_TRACKER_TRACKED_NODES`` to ``<dump_prefix>_nodes.txt``, with 2
    following the causes recursively."""

    def __init__(self, tracker_mode: int, dump_prefix: str) -> None:
        self.tracker_mode = tracker_mode
        self.dump_prefix = dump_prefix
        self.events: List[NodeEvent] = []
        # node name -> positions of its events in ``events`` (torch.fx keeps indices here)
        self.node_events: Dict[str, List[int]] = {}
        self.writer = print

    def add(self, node: Node, desc: str, dep: Optional[Node] = None) -> None:
        event = NodeEvent(node, desc, dep)
        self.node_events.setdefault(node.name, []).append(len(self.events))
        self.events.append(event)

    def print_node(
        self,
        node_name: str,
        recursive: bool = False,
        tab: str = "",
        writer: Optional[Callable[[str], object]] = None,
    ) -> None:
        """Write the events of ``node_name`` (and, recursively, of the nodes that caused them)."""
        writer = writer or self.writer
        for event in self._events_of(node_name):
            writer(tab + event.to_str())
            if recursive and event.dep is not None:
                self.print_node(event.dep.name, recursive, tab + "| ", writer)

    def to_dict(self) -> Dict[str, List[str]]:
        return {name: [event.to_str() for event in self._events_of(name)] for name in self.node_events}

    def _events_of(self, node_name: str) -> List[NodeEvent]:
        return [self.events[index] for index in self.node_events.get(node_name, [])]

    def print_all(self, writer: Optional[Callable[[str], object]] = None) -> None:
        writer = writer or self.writer
        for name in self.node_events:
            writer(f"Node: {name}:")
            self.print_node(name, tab="  ", writer=writer)

    def dump(self) -> None:
        if self.tracker_mode <= 0:
            return
        with open(self.dump_prefix + ALL_SUFFIX, "w") as handle:
            self.print_all(lambda line: handle.write(line + "\n"))
        if self.tracker_mode <= 1:
            return
        tracked = [
            name
            for name in os.environ.get(ENV_FX_NET_ACC_SPLITTER_TRACKER_TRACKED_NODES, "").split(",")
            if name
        ]
        with open(self.dump_prefix + NODES_SUFFIX, "w") as handle:
            if self.tracker_mode == 2 or tracked:
                joined = ",".join(tracked)
                handle.write(f"===== Tracking node {joined} =====\n")
                for name in tracked:
                    self.print_node(name, self.tracker_mode == 2, "", lambda line: handle.write(line + "\n"))
                handle.write(f"===== End of tracking node {joined} =====\n")


class _SplitterSettingBase:
    """Knobs of the splitter: the smallest acc subgraph worth keeping, whether to skip fusion
    groups, whether acc subgraphs may exchange non-tensor values, the most acc subgraphs wanted
    (kept for subclasses; the base splitter does not act on it), and whether non-tensor values
    leaving an acc subgraph are computed on the other side instead."""

    def __init__(
        self, min_acc_module_size: int = DEFAULT_MIN_ACC_MODULE_SIZE, skip_fusion: bool = DEFAULT_SKIP_FUSION,
        allow_non_tensor: bool = DEFAULT_ALLOW_NON_TENSOR, max_acc_splits: int = -1,
        move_non_tensor_nodes_on_boundary: bool = False,
    ) -> None:  # fmt: skip
        self.min_acc_module_size = min_acc_module_size
        self.skip_fusion = skip_fusion
        self.allow_non_tensor = allow_non_tensor
        self.max_acc_splits = max_acc_splits
        self.move_non_tensor_nodes_on_boundary = move_non_tensor_nodes_on_boundary


class FxNetSplitterInternalError(Exception):
    """The splitter reached a state its algorithm rules out (a bug, or an inconsistent graph)."""


@dataclass
class Subgraph:
    """A run of nodes that goes to one side of the split."""

    is_acc: bool
    nodes: NodeList
    device_ordinal: Optional[int] = None


class SplitResult(NamedTuple):
    """The split module, the inputs each submodule saw on the sample input, and the name prefix
    of the non-acc submodules."""

    split_module: GraphModule
    submodule_inputs: Dict[str, Any]
    non_acc_submodule_prefix: str


def generate_inputs_for_submodules(
    model: torch.nn.Module, inputs: Sequence[Any], target_submodules: Iterable[str], deepcopy: bool = False
) -> Dict[str, Any]:
    """Run ``model(*inputs)`` and return the positional arguments each named submodule received
    (deep-copied when asked, for submodules that change their inputs in place)."""
    model = _foreign.convert(model)  # only run: the twin shares the submodules hooked
    wanted = set(target_submodules)
    captured: Dict[str, Any] = {}
    handles = []

    def recorder(name: str) -> Any:
        def record(_module: torch.nn.Module, args: Any) -> None:
            captured[name] = copy.deepcopy(args) if deepcopy else args

        return record

    for name, module in model.named_modules():
        if name in wanted:
            handles.append(module.register_forward_pre_hook(recorder(name)))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return captured


class FxNetAccNodesFinder:
    """Finds the nodes the accelerator can run: ``operator_support`` says yes, and (unless
    ``allow_non_tensor``) the node neither reads a non-tensor value computed on the CPU nor hands a
    non-tensor value to a CPU node."""

    def __init__(
        self, module: GraphModule, operator_support: OperatorSupportBase, allow_non_tensor: bool
    ) -> None:
        _foreign.reject(module, "FxNetAccNodesFinder")  # it answers with nodes of module
        self.module, self.operator_support, self.allow_non_tensor = module, operator_support, allow_non_tensor
        self.acc_nodes: NodeSet = set()
        mode = int(os.environ.get(ENV_FX_NET_ACC_SPLITTER_TRACKER_MODE, TRACKER_MODE))
        self.tracker = NodeEventTracker(
            mode, os.environ.get(ENV_FX_NET_ACC_SPLITTER_TRACKER_DUMP_PATH, DUMP_PREFIX)
        )

    def reduce_acc_nodes_non_tensor_input_helper(self, cpu_worklist: NodeList) -> None:
        """Move to the CPU every acc node that reads a non-tensor value of a worklist node, and
        follow the non-tensor values those nodes produce in turn."""
        position = 0
        while position < len(cpu_worklist):  # first in, first out; the list grows as we go
            node = cpu_worklist[position]
            position += 1
            moved = [user for user in node.users if user in self.acc_nodes]
            for user in moved:
                self.acc_nodes.discard(user)
                self.tracker.add(user, "acc_del|user_of_new_cpu_node", node)
                if is_node_output_tensor(user):
                    continue
                self.tracker.add(user, "new_cpu_node|callable_non_tensor_input")
                cpu_worklist.append(user)
        cpu_worklist.clear()

    def reduce_acc_nodes_non_tensor_input(self) -> None:
        """No acc node reads a non-tensor value produced on the CPU."""
        worklist = [
            node
            for node in self.module.graph.nodes
            if node.op in CALLABLE_NODE_OPS and node not in self.acc_nodes and not is_node_output_tensor(node)
        ]
        for node in worklist:
            self.tracker.add(node, "new_cpu_node|callable_non_tensor_input")
        self.reduce_acc_nodes_non_tensor_input_helper(worklist)

    def reduce_acc_nodes_non_tensor_output(self) -> None:
        """No acc node hands a non-tensor value to a non-acc node (repeated until it holds)."""
        while True:
            leaving = [
                node
                for node in self.module.graph.nodes
                if node in self.acc_nodes
                and not is_node_output_tensor(node)
                and any(user not in self.acc_nodes for user in node.users)
            ]
            if not leaving:
                return
            for node in leaving:
                cpu_user = next(user for user in node.users if user not in self.acc_nodes)
                self.tracker.add(node, "acc_del|non_tensor_output_with_cpu_user", cpu_user)
            self.acc_nodes.difference_update(leaving)
            self.reduce_acc_nodes_non_tensor_input_helper(list(leaving))

    def __call__(self) -> NodeSet:
        submodules = dict(self.module.named_modules())
        self.acc_nodes = set()
        for node in self.module.graph.nodes:
            callable_node = node.op in CALLABLE_NODE_OPS
            on_acc = callable_node and self.operator_support.is_node_supported(submodules, node)
            if on_acc:
                self.acc_nodes.add(node)
            reason = "not_callable" if not callable_node else "operator_support"
            self.tracker.add(
                node, "init_acc|callable_and_operator_supported" if on_acc else f"init_cpu|{reason}"
            )
        if not self.allow_non_tensor:
            self.reduce_acc_nodes_non_tensor_input()
            self.reduce_acc_nodes_non_tensor_output()
        self.tracker.dump()
        return self.acc_nodes


class _SplitterBase:
    """Splits ``module`` into acc and non-acc submodules (see the module docstring). Call the
    instance to split; ``generate_split_results()`` also records each submodule's inputs."""

    # Bytes per second a host-accelerator link moves: bounds the throughput a preview reports.
    PCIe_BW = 100 * 2**30

    def __init__(
        self, module: GraphModule, sample_input: Sequence[Any], operator_support: OperatorSupportBase,
        settings: _SplitterSettingBase, non_acc_submodule_name: str = "_run_on_cpu_", return_tuple: bool = False,
        nodes_finder: Optional[FxNetAccNodesFinder] = None,
    ) -> None:  # fmt: skip
        _foreign.reject(module, "_SplitterBase")  # it tags and shape-propagates module in place
        assert isinstance(module, GraphModule), (
            f"_SplitterBase needs a GraphModule, got {type(module).__name__}"
        )
        ShapeProp(module).propagate(*sample_input)
        self.module, self.settings, self.sample_input = module, settings, sample_input
        self.operator_support, self.non_acc_submodule_name = operator_support, non_acc_submodule_name
        self._return_tuple = return_tuple
        finder = nodes_finder or FxNetAccNodesFinder(module, operator_support, settings.allow_non_tensor)
        self.acc_nodes = finder()
        self.fusions: Dict[Node, NodeSet] = (
            {} if settings.skip_fusion else FxNetAccFusionsFinder(module, self.acc_nodes)()
        )
        self.deps = self.find_deps()
        self.update_deps_for_fusions()
        self.tags: List[str] = []
        self._node_submodule_map: Dict[str, str] = {}

    # ------------------------------------------------------------------------------ dependencies

    def get_node_submodule_map(self) -> Dict[str, str]:
        """Node name -> the submodule (tag) it went to, after tagging."""
        return self._node_submodule_map

    def find_deps(self) -> Dict[Node, NodeSet]:
        """Node -> the callable nodes it reads (placeholders and attributes do not count)."""
        deps: Dict[Node, NodeSet] = collections.defaultdict(set)
        pairs = (
            (user, node)
            for node in self.module.graph.nodes
            if node.op in CALLABLE_NODE_OPS
            for user in node.users
            if user.op != "output"
        )
        for user, node in pairs:
            deps[user].add(node)
        return deps

    def update_deps_for_fusions(self) -> None:
        """A fusion group is placed as a whole: each member waits for everything the group reads
        from outside, and each outside reader of a member waits for the whole group."""
        done: NodeSet = set()
        for node, group in self.fusions.items():
            if node in done:
                continue
            done.update(group)
            outside = set().union(*(self.deps[member] for member in group)) - group
            for member in group:
                self.deps[member].update(outside)
                for user in member.users:
                    if user not in group:
                        self.deps[user].update(group)

    def find_reverse_deps(self, tag_id: Optional[int] = None) -> Dict[Node, NodeSet]:
        """Node -> the callable nodes reading it; with ``tag_id``, only readers whose tag number
        (the ``<i>`` ending their tag) is below ``tag_id``."""

        def counts(user: Node) -> bool:
            return user.op in CALLABLE_NODE_OPS and (tag_id is None or _tag_number(user) < tag_id)

        deps: Dict[Node, NodeSet] = collections.defaultdict(set)
        for node in self.module.graph.nodes:
            readers = [user for user in node.users if counts(user)] if node.op in CALLABLE_NODE_OPS else []
            if readers:
                deps[node].update(readers)
        return deps

    def update_reverse_deps_for_fusions(self, deps: Dict[Node, NodeSet]) -> None:
        """The reverse of ``update_deps_for_fusions``: a group is read by whatever reads any member."""
        done: NodeSet = set()
        for node, group in self.fusions.items():
            if node in done:
                continue
            done.update(group)
            readers = set().union(*(deps[member] for member in group)) - group
            for member in group:
                deps[member].update(readers)
                for used in member.all_input_nodes:
                    if used not in group:
                        deps[used].update(group)

    def find_parent_nodes_of_subgraph(self, tag: str) -> NodeSet:
        """The callable nodes outside subgraph ``tag`` that its nodes read."""
        parents: NodeSet = set()
        for node in self.module.graph.nodes:
            if node.op in CALLABLE_NODE_OPS and getattr(node, "tag", None) == tag:
                parents.update(
                    used
                    for used in node.all_input_nodes
                    if used.op in CALLABLE_NODE_OPS and getattr(used, "tag", None) != tag
                )
        return parents

    def extend_acc_subgraph(self, tag: str) -> None:
        """Pull into acc subgraph ``tag`` the acc nodes feeding it whose readers all lie in it
        (moving up through their own inputs the same way)."""
        deps = self.find_reverse_deps(tag_id=int(tag.split("_")[-1]))
        self.update_reverse_deps_for_fusions(deps)
        parents = self.find_parent_nodes_of_subgraph(tag)
        visited: NodeSet = set()
        while parents:
            node = parents.pop()
            visited.add(node)
            if node in self.acc_nodes and all(getattr(user, "tag", None) == tag for user in deps[node]):
                node.tag = tag  # type: ignore[attr-defined]
                parents.update(
                    used
                    for used in node.all_input_nodes
                    if used.op in CALLABLE_NODE_OPS and used not in visited
                )

    # ------------------------------------------------------------------------------ subgraphs

    def starter_nodes(self) -> Tuple[NodeSet, NodeSet]:
        """(non-acc, acc) callable nodes that read no other callable node."""
        cpu_starters: NodeSet = set()
        acc_starters: NodeSet = set()
        for node in self.module.graph.nodes:
            if node.op not in CALLABLE_NODE_OPS:
                continue
            if not any(used.op in CALLABLE_NODE_OPS for used in node.all_input_nodes):
                (acc_starters if node in self.acc_nodes else cpu_starters).add(node)
        return cpu_starters, acc_starters

    def put_nodes_into_subgraphs(self) -> List[Subgraph]:
        """Grow subgraphs alternately on each side: keep taking the earliest ready node of the
        current side (all its dependencies placed), switch sides when none is ready."""
        position = {node: index for index, node in enumerate(self.module.graph.nodes)}
        cpu_ready, acc_ready = self.starter_nodes()
        placed: NodeSet = set()
        # Start on the acc side unless a non-acc node can run right away.
        on_acc = not any(not self.deps[node] for node in cpu_ready)
        current: NodeList = []
        subgraphs: List[Subgraph] = []
        while cpu_ready or acc_ready:
            pool = acc_ready if on_acc else cpu_ready
            ready = [node for node in pool if self.deps[node] <= placed]
            if not ready:
                if not current:
                    raise FxNetSplitterInternalError(
                        "Subgraph can't be empty: no node is ready on either side; the dependencies form a cycle"
                    )
                subgraphs.append(Subgraph(is_acc=on_acc, nodes=current))
                on_acc, current = not on_acc, []
                continue
            node = min(ready, key=position.__getitem__)
            pool.remove(node)
            placed.add(node)
            current.append(node)
            if node in self.fusions:
                (acc_ready if node in self.acc_nodes else cpu_ready).update(self.fusions[node] - placed)
            for user in node.users:
                if user.op in CALLABLE_NODE_OPS and user not in placed:
                    (acc_ready if user in self.acc_nodes else cpu_ready).add(user)
        if current:
            subgraphs.append(Subgraph(is_acc=on_acc, nodes=current))
        if not subgraphs:
            raise FxNetSplitterInternalError("Couldn't create subgraphs: the graph has no call_* nodes")
        return subgraphs

    def remove_small_acc_subgraphs(self, subgraphs: List[Subgraph]) -> List[Subgraph]:
        """Fold acc subgraphs with fewer than ``min_acc_module_size`` nodes into the non-acc
        subgraphs around them (neighbouring non-acc subgraphs merge)."""
        kept: List[Subgraph] = []
        threshold = self.settings.min_acc_module_size
        for subgraph in subgraphs:
            if subgraph.is_acc:
                if len(subgraph.nodes) >= threshold:
                    kept.append(subgraph)
                    continue
                print(
                    "Eliminating acc subgraph because it's smaller than the threshold: "
                    f"{len(subgraph.nodes)} < {threshold}"
                )
            if kept and not kept[-1].is_acc:
                kept[-1].nodes.extend(subgraph.nodes)
            else:
                kept.append(
                    Subgraph(is_acc=False, nodes=subgraph.nodes, device_ordinal=subgraph.device_ordinal)
                )
        return kept

    def tag(self, subgraphs: List[Subgraph]) -> None:
        """Name each subgraph and set ``node.tag`` on its nodes."""
        self.tags = []
        for index, subgraph in enumerate(subgraphs):
            tag = f"_run_on_acc_{index}" if subgraph.is_acc else f"{self.non_acc_submodule_name}{index}"
            self.tags.append(tag)
            for node in subgraph.nodes:
                if hasattr(node, "tag"):
                    raise FxNetSplitterInternalError(
                        f"Node {node.name} was already tagged {node.tag!r}; it cannot also go to {tag}"
                    )
                node.tag = tag  # type: ignore[attr-defined]
                self._node_submodule_map[node.name] = tag

    def split(self, remove_tag: bool = False) -> GraphModule:
        """Split the tagged module by ``self.tags``; ``remove_tag`` deletes the tags afterwards."""
        split_module = split_by_tags(self.module, self.tags, return_tuple=self._return_tuple)
        if remove_tag:
            for node in self.module.graph.nodes:
                if hasattr(node, "tag"):
                    del node.tag
        return split_module  # type: ignore[return-value]

    def _subgraphs(self) -> List[Subgraph]:
        subgraphs = self.remove_small_acc_subgraphs(self.put_nodes_into_subgraphs())
        if self.settings.move_non_tensor_nodes_on_boundary:
            move_non_tensor_nodes_on_boundary(subgraphs)
        return subgraphs

    def __call__(self) -> GraphModule:
        subgraphs = self._subgraphs()
        acc_count = sum(1 for subgraph in subgraphs if subgraph.is_acc)
        print(f"Got {acc_count} acc subgraphs and {len(subgraphs) - acc_count} non-acc subgraphs")
        self.tag(subgraphs)
        return self.split()

    def generate_split_results(self) -> SplitResult:
        """Split, then run the sample input to record every submodule's inputs."""
        split_module = self()
        names = [name for name, _ in split_module.named_children()]
        submodule_inputs = generate_inputs_for_submodules(split_module, self.sample_input, names)
        return SplitResult(split_module, submodule_inputs, self.non_acc_submodule_name)

    # ------------------------------------------------------------------------------ previews

    def _lower_model_to_backend(self, mod: GraphModule, inputs: Tensors) -> torch.nn.Module:
        """Lower an acc submodule for the backend (here: unchanged); backends override it."""
        return mod

    def _find_culprit(self, mod: GraphModule, inputs: Tensors) -> str:
        """Name what made lowering ``mod`` fail; backends override it."""
        return "Unable to find a culprit because _find_culprit() function is not implemented."

    def _draw_graph_based_on_node_support(self, mod: GraphModule, supported_nodes: NodeList) -> None:
        """Write ``node_support.dot`` with supported nodes filled green and the others red."""
        lines = ["digraph G {"]
        for node in mod.graph.nodes:
            color = "green" if node in supported_nodes else "red"
            lines.append(f'  "{node.name}" [style=filled, fillcolor={color}];')
            lines.extend(f'  "{used.name}" -> "{node.name}";' for used in node.all_input_nodes)
        lines.append("}")
        with open("node_support.dot", "w") as handle:
            handle.write("\n".join(lines) + "\n")

    def node_support_preview(self, dump_graph: bool = False) -> str:
        """Print and return the node kinds (target and input dtypes) the accelerator supports and
        those it does not."""
        submodules = dict(self.module.named_modules())
        supported: Dict[str, Dict[Tuple[Any, ...], None]] = {}
        unsupported: Dict[str, Dict[Tuple[Any, ...], None]] = {}
        supported_nodes: NodeList = []
        for node in self.module.graph.nodes:
            if node.op not in CALLABLE_NODE_OPS:
                continue
            target = get_node_target(submodules, node)
            arg_dtypes = tuple(_dtype_of(arg) for arg in node.args if _dtype_of(arg) is not None)
            kwarg_dtypes = {
                key: _dtype_of(value) for key, value in node.kwargs.items() if _dtype_of(value) is not None
            }
            key = (arg_dtypes, tuple(kwarg_dtypes.items()))
            if self.operator_support.is_node_supported(submodules, node):
                supported.setdefault(target, {})[key] = None
                supported_nodes.append(node)
            else:
                unsupported.setdefault(target, {})[key] = None
        if dump_graph:
            self._draw_graph_based_on_node_support(self.module, supported_nodes)
        report = ["\nSupported node types in the model:\n"]
        report += _dtype_lines(supported)
        report.append("\nUnsupported node types in the model:\n")
        report += _dtype_lines(unsupported)
        text = "".join(report)
        print(text)
        return text

    def split_preview(self, dump_graph: bool = False) -> str:
        """Print and return how the module would split, and whether each acc submodule lowers and
        runs, with the throughput bound the host link puts on it. The module is not changed."""
        if dump_graph:
            self._draw_graph_based_on_node_support(
                self.module, [node for node in self.module.graph.nodes if node in self.acc_nodes]
            )
        report: List[str] = []
        subgraphs = self.put_nodes_into_subgraphs()
        counts = _subgraph_counts(subgraphs)
        report.append(f"Before removing small acc subgraphs, total {counts}.\n")
        subgraphs = self.remove_small_acc_subgraphs(subgraphs)
        report.append(f"After removing small acc subgraphs, total {_subgraph_counts(subgraphs)}.\n")
        for index, subgraph in enumerate(subgraphs):
            name = f"_run_on_acc_{index}" if subgraph.is_acc else f"{self.non_acc_submodule_name}{index}"
            report.append(f"{name}: {len(subgraph.nodes)} node(s)\n")
        self.tag(subgraphs)
        try:
            split_module = self.split(remove_tag=True)
        finally:
            self._node_submodule_map = {}
        names = [name for name, _ in split_module.named_children()]
        inputs_of = generate_inputs_for_submodules(split_module, self.sample_input, names)
        bottleneck, max_qps = None, float("inf")
        for name, submodule in split_module.named_children():
            if not name.startswith("_run_on_acc_"):
                continue
            report.append(f"\nProcessing acc submodule {name}\n")
            inputs = inputs_of[name]
            report.append("Checking inputs...\n")
            input_bytes = _tensor_bytes(inputs)
            report.append("Checking outputs...\n")
            outputs = submodule(*inputs)
            output_bytes = _tensor_bytes(outputs)
            qps = self.PCIe_BW / max(input_bytes, output_bytes, 1)
            if qps < max_qps:
                bottleneck, max_qps = name, qps
            report.append(
                f"Total input size in bytes is {input_bytes}, total output size in bytes is {output_bytes}, "
                f"theoretical max qps (bounds by PCIe bandwidth) for this submodule is {qps}.\n"
            )
            try:
                lowered = self._lower_model_to_backend(submodule, inputs)
                lowered(*inputs)
                report.append("Lowering and running succeed!\n")
            except Exception:  # a backend's failure is part of the preview, not a crash
                report.append("Run into an error during lowering!\n")
                report.append(self._find_culprit(submodule, inputs))
        if bottleneck is not None:
            report.append(
                f"\nTheoretical max qps (bounds by PCIe bandwidth) for this model is {max_qps}, "
                f"bottleneck is submodule {bottleneck}."
            )
        text = "".join(report)
        print(text)
        return text


def _tag_number(node: Node) -> int:
    tag = getattr(node, "tag", None)
    return int(tag.split("_")[-1]) if isinstance(tag, str) else -1


def _dtype_of(value: Any) -> Any:
    """The dtype ShapeProp recorded for a node's tensor value (None for anything else)."""
    meta = value.meta.get("tensor_meta") if isinstance(value, Node) else None
    return getattr(meta, "dtype", None)


def _dtype_lines(table: Dict[str, Dict[Tuple[Any, ...], None]]) -> List[str]:
    return [
        f"{target}: ({args}, {dict(kwargs)})\n" for target, keys in table.items() for args, kwargs in keys
    ]


def _subgraph_counts(subgraphs: List[Subgraph]) -> str:
    acc = sum(1 for subgraph in subgraphs if subgraph.is_acc)
    return f"{len(subgraphs)} subgraphs are created: {acc} acc subgraphs and {len(subgraphs) - acc} cpu subgraphs"


def _tensor_bytes(value: Any) -> int:
    """Bytes held by the tensors inside ``value`` (nested lists, tuples and dicts)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(item) for item in value)
    if isinstance(value, dict):
        return sum(_tensor_bytes(item) for item in value.values())
    return 0
