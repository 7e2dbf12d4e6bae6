"""Split a GraphModule by the ``tag`` each node carries (``split_by_tags``), torch.fx semantics.

Every ``call_*`` node must have a ``node.tag`` naming one of ``tags``. Each tag becomes a
submodule (a ``Component``) holding its nodes; the parent module calls the components in the
order of ``tags``. A ``get_attr`` node is copied into every component that reads it (its own tag
is ignored); placeholders stay in the parent.
"""

from __future__ import annotations

import copy
import functools
import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Type, Union

import torch

from fxkit import _foreign, _paths
from fxkit.graph import Graph
from fxkit.graph_module import GraphModule
from fxkit.node import Node, map_arg
from fxkit.passes.tools_common import is_node_output_tensor
from fxkit.passes.utils.common import HolderModule, lift_subgraph_as_module  # noqa: F401  (torch.fx has them here too)

if TYPE_CHECKING:
    from fxkit.passes.splitter_base import Subgraph

# fmt: off
__all__ = ["getattr_recursive", "setattr_recursive", "Component", "split_by_tags", "move_non_tensor_nodes_on_boundary"]
# fmt: on

_MISSING = object()


def getattr_recursive(obj: object, name: str) -> Any:
    """``obj.<name>`` for a dotted ``name``, or None when some part of the path is missing."""
    return _paths.lookup(obj, name)


def setattr_recursive(obj: object, attr: str, value: object) -> None:
    """Set ``obj.<attr> = value`` for a dotted ``attr`` whose parents already exist."""
    parent, leaf = _paths.split_parent(attr)
    try:
        owner = _paths.resolve(obj, parent) if parent else obj
    except _paths.MissingAttribute as missing:
        raise missing.error from None  # getattr's own message, as torch.fx gives it
    setattr(owner, leaf, value)


@dataclass
class Component:
    """One tag's piece of the split: its graph, position, and the values crossing its border."""

    graph: Graph
    order: int
    name: str
    # Placeholders of ``graph``, one per entry of ``orig_inputs`` (original nodes read from outside).
    input_placeholders: List[Node] = field(default_factory=list)
    orig_inputs: List[Node] = field(default_factory=list)
    # Original nodes of this component whose values are read outside it.
    orig_outputs: List[Node] = field(default_factory=list)
    # Original get_attr node -> its copy in ``graph``.
    getattr_maps: Dict[Node, Node] = field(default_factory=dict)
    constructor_args: List[str] = field(default_factory=list)
    gm: Optional[GraphModule] = None

    def __post_init__(self) -> None:
        _foreign.reject(self.graph, "Component")  # the component builds its module on this graph


def _tag_of(node: Node) -> str:
    tag = getattr(node, "tag", _MISSING)
    if tag is _MISSING:
        raise AttributeError(
            f"split_by_tags: node {node.name!r} ({node.op} {node.target!r}) has no 'tag' attribute; "
            "set node.tag on every call_* node before splitting"
        )
    return tag  # type: ignore[return-value]


def _twin_with_tags(theirs: Any) -> GraphModule:
    """The fxkit twin of a torch.fx GraphModule, its nodes given the ``tag`` attribute the torch.fx
    nodes of the same name have (a plain attribute, which the conversion itself does not carry)."""
    tags = {node.name: node.tag for node in theirs.graph.nodes if hasattr(node, "tag")}
    twin = _foreign.convert(theirs)
    for node in twin.graph.nodes:
        if node.name in tags:
            node.tag = tags[node.name]
    return twin


def split_by_tags(
    gm: GraphModule,
    tags: List[str],
    return_fqn_mapping: bool = False,
    return_tuple: bool = False,
    GraphModuleCls: Type[GraphModule] = GraphModule,
) -> Union[GraphModule, Tuple[GraphModule, Dict[str, str]]]:
    """Move the nodes of each tag in ``tags`` into a submodule named after the tag.

    A node may only read values of its own tag or of tags listed before it. The returned parent
    calls the submodules in the order of ``tags``. With ``return_fqn_mapping`` the result is
    ``(module, {original qualified name: new qualified name})`` for every attribute and submodule
    the components use. With ``return_tuple`` every component returns a tuple.
    """
    if _foreign.torch_fx_kind(gm) == "GraphModule":
        gm = _twin_with_tags(gm)  # only read: split through the fxkit twin
    _foreign.reject(gm, "split_by_tags")
    components = [Component(Graph(), order, tag) for order, tag in enumerate(tags)]
    by_tag = {component.name: component for component in components}
    owner: Dict[Node, Component] = {}
    copies: Dict[Node, Node] = {}
    parent = Graph()
    parent_values: Dict[Node, Node] = {}
    output_node: Optional[Node] = None

    def read_in(component: Component, value: Node) -> Node:
        """The node standing for ``value`` inside ``component``."""
        if value.op == "get_attr":
            copied = component.getattr_maps.get(value)
            if copied is None:
                copied = component.graph.create_node(
                    "get_attr", value.target, name=value.name, type_expr=value.type
                )
                copied.meta = value.meta.copy()
                component.getattr_maps[value] = copied
            return copied
        source = owner.get(value)
        if source is component:
            return copies[value]
        if value not in component.orig_inputs:
            placeholder = component.graph.placeholder(value.name, type_expr=value.type)
            placeholder.meta = value.meta.copy()
            component.orig_inputs.append(value)
            component.input_placeholders.append(placeholder)
            if source is not None and value not in source.orig_outputs:
                source.orig_outputs.append(value)
        return component.input_placeholders[component.orig_inputs.index(value)]

    for node in gm.graph.nodes:
        if node.op == "output":
            output_node = node
            continue
        if node.op == "placeholder":
            parent_values[node] = parent.node_copy(node)
            continue
        if node.op == "get_attr":
            continue
        tag = _tag_of(node)
        if tag not in by_tag:
            raise KeyError(f"split_by_tags: node {node.name!r} has tag {tag!r}, which is not in tags {tags}")
        component = by_tag[tag]
        upstream = [owner[used].order for used in node.all_input_nodes if used in owner]
        highest = max(upstream, default=0)
        if component.order < highest:
            raise AssertionError(
                f"Component {component.name} order must be >= max of its upstream components, "
                f"order={component.order} and max={highest} (node {node.name!r} reads a value of a "
                "later tag; list its tag after those tags or retag the node)"
            )
        owner[node] = component
        copied = component.graph.node_copy(node, functools.partial(read_in, component))
        copied.tag = tag  # type: ignore[attr-defined]
        copies[node] = copied

    if output_node is None:
        raise ValueError("split_by_tags: the graph has no output node")
    for value in output_node.all_input_nodes:
        source = owner.get(value)
        if source is not None and value not in source.orig_outputs:
            source.orig_outputs.append(value)

    root = torch.nn.Module()
    qualified_names: Dict[str, str] = {}
    for component in components:
        results = tuple(copies[value] for value in component.orig_outputs)
        component.graph.output(results[0] if len(results) == 1 and not return_tuple else results)
        component.gm = GraphModuleCls(gm, component.graph)
        for node in component.graph.nodes:
            if node.op in ("get_attr", "call_module"):
                qualified_names[node.target] = f"{component.name}.{node.target}"
        setattr(root, component.name, component.gm)
        call = parent.call_module(
            component.name, tuple(parent_values[value] for value in component.orig_inputs)
        )
        if len(results) == 1 and not return_tuple:
            parent_values[component.orig_outputs[0]] = call
        else:
            for index, value in enumerate(component.orig_outputs):
                parent_values[value] = parent.call_function(operator.getitem, (call, index))

    def parent_value(value: Node) -> Node:
        if value.op == "get_attr" and value not in parent_values:
            _copy_attribute(gm, root, value.target)
            parent_values[value] = parent.get_attr(value.target, type_expr=value.type)
        return parent_values[value]

    parent.output(map_arg(output_node.args[0], parent_value))  # torch.fx drops the return annotation
    # The parent takes and returns what the module did: a pytree signature (torch.export) stays.
    parent.set_codegen(copy.deepcopy(gm.graph._codegen))
    result = GraphModuleCls(root, parent)
    if return_fqn_mapping:
        return result, qualified_names
    return result


def _copy_attribute(source: torch.nn.Module, destination: torch.nn.Module, qualified_name: str) -> None:
    owner, leaf = _paths.make_parents(destination, qualified_name, torch.nn.Module, _is_there)
    setattr(owner, leaf, getattr_recursive(source, qualified_name))


def _is_there(value: Any) -> bool:
    return value is not _paths.MISSING


def move_non_tensor_nodes_on_boundary(subgraphs: List["Subgraph"]) -> None:
    """Where an acc subgraph hands non-tensor values (sizes, flags) to the subgraph after it,
    compute them there instead: each such node moves to the end of the next subgraph, followed
    by the non-tensor nodes of the acc subgraph that only fed moved nodes. Edits ``subgraphs``
    in place and prints each move."""
    for index in range(len(subgraphs) - 1):
        source, target = subgraphs[index], subgraphs[index + 1]
        if not source.is_acc:
            continue
        members = dict.fromkeys(source.nodes)
        queue = [
            node
            for node in source.nodes
            if not is_node_output_tensor(node) and any(user not in members for user in node.users)
        ]
        moved: Dict[Node, None] = {}
        while queue:
            node = queue.pop(0)
            if node in moved:
                continue
            moved[node] = None
            del members[node]
            print(
                f"In order move the non-tensor node {node.name} on boundary, moved node {node.name} "
                f"from acc_{index} to gpu_{index + 1}"
            )
            for used in node.all_input_nodes:
                if used in members and not is_node_output_tensor(used):
                    if all(user not in members for user in used.users):
                        queue.append(used)
        if moved:
            source.nodes[:] = list(members)
            target.nodes.extend(moved)
