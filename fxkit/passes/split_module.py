"""Split a GraphModule into submodules ``submod_<partition>`` chosen by a callback (torch.fx semantics).

Every ``call_*`` node is put in the partition ``split_callback(node)`` returns. Each partition
becomes a GraphModule whose inputs are the values it reads from outside (in order of first use)
and whose outputs are the values read outside it (in order of first outside use). Placeholders
and ``get_attr`` nodes stay in the parent, which calls the partitions in a dependency order; a
``get_attr`` of a submodule is instead repeated inside each partition that reads it (a module is
not a value to pass), as torch.fx does.
"""

from __future__ import annotations

import inspect
import operator
from typing import Any, Callable, Dict, List, Optional

import torch

from fxkit import _foreign, _paths
from fxkit.graph import Graph
from fxkit.graph_module import GraphModule
from fxkit.node import Node, map_arg

__all__ = ["Partition", "split_module", "split_module_simple"]


class Partition:
    """One partition while splitting: its nodes, cross-partition inputs/outputs and edges."""

    def __init__(self, name: str) -> None:
        self.name, self.submod_name = name, f"submod_{name}"
        self.node_names: List[str] = []
        # Insertion-ordered sets of value names (inputs/outputs) and partition names (the edges).
        ordered_sets: List[Dict[str, None]] = [{}, {}, {}, {}]
        self.inputs, self.outputs, self.dependencies, self.dependents = ordered_sets
        # The partition's own graph, the map from original nodes to its nodes, and the attributes it uses.
        self.graph = Graph()
        self.environment: Dict[Node, Node] = {}
        self.targets: Dict[str, Any] = {}
        # get_attr nodes of submodules it reads: copied into its graph rather than passed in.
        self.module_attributes: Dict[Node, None] = {}

    def __repr__(self) -> str:
        labelled = (
            ("name", self.name),
            ("nodes", self.node_names),
            ("inputs", list(self.inputs)),
            ("outputs", list(self.outputs)),
            ("partitions depended on", list(self.dependencies)),
            ("partition dependents", list(self.dependents)),
        )
        return ",\n ".join(f"{label}: {value}" for label, value in labelled)


def _partition_name(node: Node, returned: Any) -> str:
    """The partition name for a callback result; only ints and identifier-like strs make
    valid submodule names (``submod_<name>``)."""
    if isinstance(returned, bool) or not isinstance(returned, (int, str)):
        raise TypeError(
            f"split_callback returned {returned!r} ({type(returned).__name__}) for node "
            f"{node.format_node()}; it must return an int partition id (a str also works when "
            f"'submod_<str>' is a valid Python identifier)"
        )
    name = str(returned)
    if not f"submod_{name}".isidentifier():
        raise ValueError(
            f"split_callback returned {returned!r} for node {node.name}: 'submod_{name}' is not a "
            "valid Python identifier, so it cannot name a submodule; return an int partition id"
        )
    return name


def _fetch(root: torch.nn.Module, qualified_name: str) -> Any:
    try:
        return _paths.resolve(root, qualified_name)
    except _paths.MissingAttribute as missing:
        atom = missing.missing.rpartition(".")[2]
        raise AttributeError(
            f"split_module: root module has no attribute {qualified_name!r} (missing {atom!r})"
        ) from None


def _is_module(value: Any) -> bool:
    return isinstance(value, torch.nn.Module)


def _holds_module(root: torch.nn.Module, qualified_name: str) -> bool:
    try:
        return _is_module(_paths.resolve(root, qualified_name))
    except _paths.MissingAttribute:
        return False


def _dependency_order(partitions: Dict[str, Partition], keep_original_order: bool) -> List[str]:
    """Partition names so that each comes after the partitions it reads from.

    Default: a depth-first style order (a stack of ready partitions), as torch.fx produces.
    ``keep_original_order``: creation order, moving a partition later only when it must wait.
    """
    waiting = {name: len(partition.dependencies) for name, partition in partitions.items()}
    ordered: List[str] = []
    if keep_original_order:
        ready = [name for name in partitions if waiting[name] == 0]
        position = {name: index for index, name in enumerate(partitions)}
        while ready:
            ready.sort(key=position.__getitem__)
            current = ready.pop(0)
            ordered.append(current)
            for dependent in partitions[current].dependents:
                waiting[dependent] -= 1
                if waiting[dependent] == 0:
                    ready.append(dependent)
    else:
        ready = [name for name in partitions if waiting[name] == 0]
        while ready:
            current = ready.pop()
            ordered.append(current)
            for dependent in partitions[current].dependents:
                waiting[dependent] -= 1
                if waiting[dependent] == 0:
                    ready.append(dependent)
    if len(ordered) != len(partitions):
        stuck = [name for name in partitions if name not in ordered]
        raise RuntimeError(
            "cycle exists between partitions! Partitions "
            f"{stuck} read values from each other; give the nodes involved the same partition id"
        )
    return ordered


def split_module(
    m: GraphModule,
    root_m: torch.nn.Module,
    split_callback: Callable[[Node], Any],
    qualname_map: Optional[Dict[str, str]] = None,
    keep_original_order: Optional[bool] = False,
    keep_original_node_name: Optional[bool] = False,
    keep_original_input_name: bool = True,
    *,
    partition_affix: Optional[str] = None,
    tuple_return: bool = False,
) -> GraphModule:
    """Split ``m`` into partitions chosen by ``split_callback`` (which maps each ``call_*`` node to
    an int partition id) and return a parent GraphModule that calls ``submod_<id>`` in turn.

    ``root_m`` is the module the call_module targets are fetched from. ``qualname_map``, if given,
    is filled with ``{"submod_<id>.<new name>": "<original qualified name>"}``.
    ``keep_original_order`` keeps the partitions in order of their first node where possible.
    ``keep_original_node_name`` keeps node names inside the partitions. ``partition_affix`` names
    the submodules ``submod_<affix>_<id>``. ``tuple_return`` makes
    every partition return a tuple, even of one value.
    """
    m = _foreign.convert(m)  # only read: a torch.fx module is split through its fxkit twin
    partitions: Dict[str, Partition] = {}
    node_partition: Dict[Node, str] = {}
    parent_graph = Graph()
    parent_env: Dict[Node, Node] = {}
    parent_attributes: List[Node] = []
    parent_root = torch.nn.Module()

    def copy_attribute_node(node: Node) -> Node:
        copied = parent_graph.get_attr(node.target, type_expr=node.type)
        copied.meta = node.meta.copy()
        parent_env[node] = copied
        return copied

    def parent_value(node: Node) -> Node:
        # With keep_original_order, get_attr nodes are copied right before their first reader.
        found = parent_env.get(node)
        return found if found is not None else copy_attribute_node(node)

    # Pass 1: assign partitions; copy placeholders and get_attr nodes into the parent.
    for node in m.graph.nodes:
        if node.op == "placeholder":
            default = node.args[0] if node.args else inspect.Signature.empty
            copied = parent_graph.placeholder(node.target, type_expr=node.type, default_value=default)
            copied.meta = node.meta.copy()
            parent_env[node] = copied
        elif node.op == "get_attr":
            parent_attributes.append(node)
            if not keep_original_order:
                copy_attribute_node(node)
        elif node.op != "output":
            name = _partition_name(node, split_callback(node))
            partition = partitions.get(name)
            if partition is None:
                partition = partitions[name] = Partition(name)
                if partition_affix:
                    partition.submod_name = f"submod_{partition_affix}_{name}"
            partition.node_names.append(node.name)
            node_partition[node] = name

    module_attributes = {node for node in parent_attributes if _holds_module(m, node.target)}

    # Pass 2: record which values cross partition boundaries, in order of first use.
    for node in m.graph.nodes:
        user_partition = node_partition.get(node)
        for used in _inputs_in_order(node):
            if used in module_attributes and user_partition is not None:
                partitions[user_partition].module_attributes.setdefault(used)
                continue
            defined_in = node_partition.get(used)
            if defined_in == user_partition:
                continue
            if defined_in is not None:
                partitions[defined_in].outputs.setdefault(used.name)
            if user_partition is not None:
                partitions[user_partition].inputs.setdefault(used.name)
            if defined_in is not None and user_partition is not None:
                partitions[user_partition].dependencies.setdefault(defined_in)
                partitions[defined_in].dependents.setdefault(user_partition)

    order = _dependency_order(partitions, bool(keep_original_order))

    # Pass 3: build each partition's graph: placeholders for its inputs, then its nodes.
    nodes_by_name = {node.name: node for node in m.graph.nodes}
    for name in order:
        partition = partitions[name]
        for index, input_name in enumerate(partition.inputs):
            original = nodes_by_name[input_name]
            placeholder = partition.graph.placeholder(
                input_name if keep_original_input_name else f"arg_{index}", type_expr=original.type
            )
            placeholder.meta = original.meta.copy()
            partition.environment[original] = placeholder
        for original in partition.module_attributes:
            copied = partition.graph.create_node(
                "get_attr", original.target, name=original.name, type_expr=original.type
            )
            copied.meta = original.meta.copy()
            partition.environment[original] = copied
    for node in m.graph.nodes:
        name = node_partition.get(node)
        if name is None:
            continue
        partition = partitions[name]
        args = map_arg(node.args, partition.environment.__getitem__)
        kwargs = map_arg(node.kwargs, partition.environment.__getitem__)
        target = node.target
        if node.op == "call_module":
            local_name = target.replace(".", "_")
            partition.targets[local_name] = _fetch(root_m, target)
            if qualname_map is not None:
                qualname_map[f"{partition.submod_name}.{local_name}"] = target
            target = local_name
        copied = partition.graph.create_node(
            node.op,
            target,
            args,
            kwargs,
            name=node.name if keep_original_node_name else None,
            type_expr=node.type,
        )
        copied.meta = node.meta.copy()
        partition.environment[node] = copied

    # Pass 4: finish each partition and call it from the parent, in dependency order.
    for name in order:
        partition = partitions[name]
        results = [partition.environment[nodes_by_name[output_name]] for output_name in partition.outputs]
        if len(results) == 1 and not tuple_return:
            partition.graph.output(results[0])
        else:
            partition.graph.output(tuple(results))
        holder = torch.nn.Module()
        for local_name, value in partition.targets.items():
            setattr(holder, local_name, value)
        for original in partition.module_attributes:
            _copy_attribute(m, holder, original.target)
        submodule = GraphModule(holder, partition.graph)
        inputs = tuple(parent_value(nodes_by_name[input_name]) for input_name in partition.inputs)
        call = parent_graph.call_module(partition.submod_name, inputs)
        setattr(parent_root, partition.submod_name, submodule)
        if len(results) == 1 and not tuple_return:
            parent_env[nodes_by_name[next(iter(partition.outputs))]] = call
        else:
            for index, output_name in enumerate(partition.outputs):
                parent_env[nodes_by_name[output_name]] = parent_graph.call_function(
                    operator.getitem, (call, index)
                )

    for node in m.graph.nodes:
        if node.op == "output":
            parent_graph.output(map_arg(node.args[0], parent_value))

    for attribute_node in parent_attributes:
        if attribute_node in parent_env:
            _copy_attribute(m, parent_root, attribute_node.target)
    return GraphModule(parent_root, parent_graph)


def _inputs_in_order(node: Node) -> List[Node]:
    """The nodes ``node`` reads, args before kwargs, each once, in order of appearance."""
    found: Dict[Node, None] = {}
    map_arg(node.args, lambda used: found.setdefault(used))
    map_arg(node.kwargs, lambda used: found.setdefault(used))
    return list(found)


def _copy_attribute(source: torch.nn.Module, destination: torch.nn.Module, qualified_name: str) -> None:
    """Make ``destination.<qualified_name>`` the object at ``source.<qualified_name>``, creating
    empty intermediate modules and keeping buffers registered as buffers."""
    parent, leaf = _paths.split_parent(qualified_name)
    try:
        source_owner: Any = _paths.resolve(source, parent) if parent else source
        value = getattr(source_owner, leaf)
    except _paths.MissingAttribute as missing:
        raise missing.error from None
    destination_owner, _ = _paths.make_parents(destination, qualified_name, torch.nn.Module, _is_module)
    if isinstance(source_owner, torch.nn.Module) and leaf in source_owner._buffers:
        destination_owner.register_buffer(
            leaf, value, persistent=leaf not in source_owner._non_persistent_buffers_set
        )
    else:
        setattr(destination_owner, leaf, value)


def split_module_simple(
    m: GraphModule, node_to_partition: Dict[Node, int], *, partition_affix: Optional[str] = None
) -> GraphModule:
    """A lighter ``split_module`` for graphs whose partitions only read earlier partitions.

    ``node_to_partition`` gives every node other than placeholders and the output its partition
    id. The partitions become ``submod_<id>`` (``submod_<affix>_<id>``) in order of their first
    node; each takes the values it reads from outside (in order of first use) and returns those
    read after it, one value as is and several as a tuple the parent unpacks with ``getitem``.
    Node names are kept. As in torch.fx there is no ``get_attr`` support and no reordering: a
    partition that reads a later one is an error (``split_module`` handles both). Unlike torch.fx,
    placeholders keep their defaults and ``call_module`` targets are carried into the partitions.
    """
    _foreign.reject(m, "split_module_simple")  # node_to_partition names this module's own nodes
    members: Dict[int, List[Node]] = {}
    partition_of: Dict[Node, int] = {}
    for node in m.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op == "get_attr":
            raise ValueError(
                f"split_module_simple: node {node.name!r} is a get_attr; this splitter takes graphs "
                "without attribute reads (as torch.compile produces them). Use split_module instead."
            )
        if node not in node_to_partition:
            raise KeyError(f"split_module_simple: node {node.name!r} has no partition in node_to_partition")
        partition_of[node] = node_to_partition[node]
        members.setdefault(partition_of[node], []).append(node)

    inputs: Dict[int, Dict[Node, None]] = {pid: {} for pid in members}
    outputs: Dict[int, Dict[Node, None]] = {pid: {} for pid in members}
    for node in m.graph.nodes:
        reader = partition_of.get(node)
        for used in _inputs_in_order(node):
            owner = partition_of.get(used)
            if owner is not None and owner != reader:
                outputs[owner].setdefault(used)
            if reader is not None and owner != reader:
                inputs[reader].setdefault(used)

    parent_graph = Graph()
    parent_root = torch.nn.Module()
    env: Dict[Node, Node] = {}
    for node in m.graph.nodes:
        if node.op == "placeholder":
            env[node] = parent_graph.node_copy(node)
    for pid, nodes in members.items():
        name = f"submod_{partition_affix}_{pid}" if partition_affix else f"submod_{pid}"
        submodule = _simple_partition(m, nodes, list(inputs[pid]), list(outputs[pid]))
        setattr(parent_root, name, submodule)
        missing = [used for used in inputs[pid] if used not in env]
        if missing:
            raise ValueError(
                f"split_module_simple: {name} reads {missing[0].name!r}, which partition "
                f"{partition_of[missing[0]]} computes after it. Give both the same partition id, "
                "order the ids so that each partition only reads earlier ones, or use split_module."
            )
        call = parent_graph.call_module(name, tuple(env[used] for used in inputs[pid]))
        results = list(outputs[pid])
        if len(results) == 1:
            env[results[0]] = call
        else:
            for index, result in enumerate(results):
                env[result] = parent_graph.call_function(operator.getitem, (call, index))
    for node in m.graph.nodes:
        if node.op == "output":
            parent_graph.output(map_arg(node.args[0], env.__getitem__), type_expr=node.type)
    return GraphModule(parent_root, parent_graph)


def _simple_partition(
    m: GraphModule, nodes: List[Node], reads: List[Node], results: List[Node]
) -> GraphModule:
    graph = Graph()
    env: Dict[Node, Node] = {}
    for used in reads:
        env[used] = graph.placeholder(used.name, type_expr=used.type)
        env[used].meta = used.meta.copy()
    holder = torch.nn.Module()
    for node in nodes:
        env[node] = graph.node_copy(node, env.__getitem__)
        if node.op == "call_module":
            _copy_attribute(m, holder, node.target)
    graph.output(env[results[0]] if len(results) == 1 else tuple(env[node] for node in results))
    return GraphModule(holder, graph)
