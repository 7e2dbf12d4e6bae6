"""Constant folding: compute once what depends only on parameters, buffers and constants.

``split_const_subgraphs(module)`` marks every node whose inputs are all constant (``get_attr``
nodes, nodes that read nothing, and nodes computed from constants only) unless it is impure or
``skip_folding_node_fn`` refuses it. It splits the graph in two with ``split_module``: the constant
part becomes ``const_subgraph_module`` (its inputs read as ``get_attr`` again), the rest is
inlined back into the returned ``FoldedGraphModule``, which reads the constant part's results from
the attribute ``_FX_CONST_FOLDED_ATTRS``. The constant part runs once, on the first call (or on
``run_folding()``). Names, order and code follow torch.fx's const_fold.
"""

from __future__ import annotations

import copy
import numbers
import operator
import re
from typing import Any, Callable, Dict, Optional, Union

import torch

from fxkit import _foreign
from fxkit.graph import Graph
from fxkit.graph_module import GraphModule
from fxkit.node import Node, map_arg
from fxkit.passes.split_module import _copy_attribute, split_module
from fxkit.tracer import symbolic_trace

__all__ = ["FoldedGraphModule", "get_unique_attr_name_in_module", "split_const_subgraphs"]

_FOLDED_ATTRS_NAME = "_FX_CONST_FOLDED_ATTRS"
_CONSTANT, _REST = 0, 1  # partition ids given to split_module


class _FoldedTwiceError(AssertionError, RuntimeError):
    """run_folding() called again: torch.fx raises AssertionError, earlier fxkit RuntimeError."""


class FoldedGraphModule(GraphModule):
    """A GraphModule whose constant part lives in ``const_subgraph_module`` and is computed once
    into the attribute named ``fx_const_folded_attrs_name``: a Parameter when the constant part
    has one result, a ParameterList otherwise."""

    def __init__(
        self,
        root: torch.nn.Module,
        graph: Graph,
        const_subgraph: Optional[Graph] = None,
        fx_const_folded_attrs_name: Optional[str] = None,
        device_for_folded_attrs: str = "cuda",
    ) -> None:
        _foreign.reject(const_subgraph, "FoldedGraphModule")  # the module owns const_subgraph
        super().__init__(root, graph)
        self.const_subgraph_module = None if const_subgraph is None else GraphModule(root, const_subgraph)
        self.has_folding_been_run = False
        self.fx_const_folded_attrs_name = fx_const_folded_attrs_name
        self.device_for_folded_attrs = device_for_folded_attrs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.has_folding_been_run:
            self.run_folding()
        return super().__call__(*args, **kwargs)

    def run_folding(self) -> None:
        """Run the constant subgraph once and store its results as parameters.

        Tensors are stored detached and copied, keeping their device and ``requires_grad``;
        Python numbers become one-element float tensors on ``device_for_folded_attrs`` that do
        not require grad. Without a constant subgraph this does nothing."""
        if self.const_subgraph_module is None or self.fx_const_folded_attrs_name is None:
            return
        if self.has_folding_been_run:
            raise _FoldedTwiceError(
                "Folding has already been run on this FoldedGraphModule: its folded attribute "
                f"{self.fx_const_folded_attrs_name!r} holds the results; run_folding() folds only once"
            )
        self.has_folding_been_run = True
        returned = _returned(self.const_subgraph_module.graph)
        folded = self.const_subgraph_module()
        if isinstance(returned, (tuple, list)):
            sources = [getattr(node, "name", repr(node)) for node in returned]
            stored: Any = torch.nn.ParameterList(
                [self._as_parameter(value, source) for value, source in zip(folded, sources)]
            )
        else:
            stored = self._as_parameter(folded, getattr(returned, "name", repr(returned)))
        setattr(self, self.fx_const_folded_attrs_name, stored)

    def _as_parameter(self, value: Any, source: str) -> torch.nn.Parameter:
        if isinstance(value, torch.Tensor):
            return torch.nn.Parameter(value.detach().clone(), requires_grad=value.requires_grad)
        if isinstance(value, numbers.Number) and not isinstance(value, complex):
            number = torch.tensor([float(value)], device=self.device_for_folded_attrs)
            return torch.nn.Parameter(number, requires_grad=False)
        raise TypeError(
            f"run_folding: the folded value of node {source!r} is a {type(value).__name__}; only "
            "tensors and real numbers can be stored as parameters. Keep that node unfolded with "
            "split_const_subgraphs(..., skip_folding_node_fn=lambda node: node.name == "
            f"{source!r})"
        )


def get_unique_attr_name_in_module(mod_traced: torch.nn.Module, name: str) -> str:
    """``name`` made into an attribute name ``mod_traced`` does not have yet: characters other
    than ASCII letters, digits and ``_`` become ``_``, a leading digit gets a ``_`` in front, and
    while the name is taken its numeric suffix is counted up (``w`` -> ``w_1`` -> ``w_2``)."""
    if not name:
        raise ValueError("get_unique_attr_name_in_module: the attribute name is empty")
    name = re.sub(r"[^0-9a-zA-Z_]", "_", name)
    if name[0].isdigit():
        name = f"_{name}"
    while hasattr(mod_traced, name):
        numbered = re.fullmatch(r"(.*)_(\d+)", name)
        name = f"{name}_1" if numbered is None else f"{numbered.group(1)}_{int(numbered.group(2)) + 1}"
    return name


def _constant_nodes(graph: Graph, skip_folding_node_fn: Optional[Callable[[Node], bool]]) -> Dict[Node, None]:
    """The nodes whose value is the same on every call, in graph order: each reads constants only
    (or nothing), is not refused by ``skip_folding_node_fn`` (asked first, as torch.fx does) and
    is pure."""
    constant: Dict[Node, None] = {}
    for node in graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if any(used not in constant for used in node.all_input_nodes):
            continue
        if skip_folding_node_fn is not None and skip_folding_node_fn(node):
            continue
        if node.is_impure():
            continue
        constant[node] = None
    return constant


def split_const_subgraphs(
    module: Union[torch.nn.Module, GraphModule],
    skip_folding_node_fn: Optional[Callable[[Node], bool]] = None,
    device_for_folded_attrs: str = "cpu",
) -> FoldedGraphModule:
    """Split ``module`` (traced first if it is not a GraphModule) into a constant subgraph and
    the rest, returning a FoldedGraphModule that folds the constants on its first call."""
    module = _foreign.convert(module)  # only read: the result is a new module
    traced = module if isinstance(module, GraphModule) else symbolic_trace(module)
    constant = _constant_nodes(traced.graph, skip_folding_node_fn)
    if all(node.op == "get_attr" for node in constant):
        return FoldedGraphModule(traced, copy.deepcopy(traced.graph))

    split = split_module(traced, traced, lambda node: _CONSTANT if node in constant else _REST)
    calls = {node.target: node for node in split.graph.nodes if node.op == "call_module"}
    const_call, rest_call = calls[f"submod_{_CONSTANT}"], calls.get(f"submod_{_REST}")
    const_part: GraphModule = getattr(split, const_call.target)
    rest_part: Optional[GraphModule] = None if rest_call is None else getattr(split, rest_call.target)

    attr_name = get_unique_attr_name_in_module(traced, _FOLDED_ATTRS_NAME)
    # Stand-in until run_folding() stores the real values (only kept if the graph reads it).
    returned = _returned(const_part.graph)
    stand_in = torch.nn.ParameterList() if isinstance(returned, tuple) else torch.nn.Parameter(torch.empty(0))
    setattr(split, attr_name, stand_in)
    const_graph = _reading_attributes(traced, const_part, const_call.args)
    main_graph = split.graph
    if rest_call is not None:
        _inline(main_graph, rest_call, rest_part)
    with main_graph.inserting_before(const_call):
        folded_attr = main_graph.get_attr(attr_name)
    # The node standing for a folded value takes over that value's meta (tensor_meta, ...).
    if isinstance(returned, tuple):
        for user in const_call.users:
            user.meta = copy.copy(returned[user.args[1]].meta)
    else:
        folded_attr.meta = copy.copy(returned.meta)
    const_call.replace_all_uses_with(folded_attr)
    main_graph.erase_node(const_call)
    main_graph.eliminate_dead_code()
    main_graph.set_codegen(traced.graph._codegen)

    holder = torch.nn.Module()
    holder.training = traced.training
    for part in (const_part, rest_part):
        for local_name, child in [] if part is None else part.named_children():
            setattr(holder, local_name, child)  # the partition's flattened call_module targets
    for graph in (main_graph, const_graph):
        for node in graph.nodes:
            if node.op == "get_attr" and node.target != attr_name:
                _copy_attribute(traced, holder, node.target)
    setattr(holder, attr_name, stand_in)
    return FoldedGraphModule(holder, main_graph, const_graph, attr_name, device_for_folded_attrs)


def _returned(graph: Graph) -> Any:
    """What ``graph`` returns (the constant partition: one node, or a tuple of them)."""
    return next(node for node in reversed(graph.nodes) if node.op == "output").args[0]


def _reading_attributes(traced: GraphModule, part: GraphModule, attribute_nodes: Any) -> Graph:
    """The graph of ``part`` (the constant partition) with each placeholder replaced by a
    ``get_attr`` of the attribute of ``traced`` the parent passed in its place."""
    graph = part.graph
    placeholders = [node for node in graph.nodes if node.op == "placeholder"]
    for placeholder, parent_node in zip(placeholders, attribute_nodes):
        if not isinstance(parent_node, Node) or parent_node.op != "get_attr":
            raise RuntimeError(
                f"split_const_subgraphs: the constant part reads {parent_node} through placeholder "
                f"{placeholder.name!r}; only attributes can feed it (please report this graph)"
            )
        _copy_attribute(traced, part, parent_node.target)
        with graph.inserting_before(placeholder):
            attribute = graph.get_attr(parent_node.target)
        attribute.meta = copy.copy(placeholder.meta)
        placeholder.replace_all_uses_with(attribute)
    for placeholder in placeholders:
        graph.erase_node(placeholder)
    return graph


def _inline(graph: Graph, call: Node, part: GraphModule) -> None:
    """Replace the ``call_module`` node ``call`` in ``graph`` by the nodes of ``part``'s graph."""
    env: Dict[Node, Any] = {}
    inputs = iter(call.args)
    returned: Any = None
    with graph.inserting_before(call):
        for node in part.graph.nodes:
            if node.op == "placeholder":
                env[node] = next(inputs)
            elif node.op == "output":
                returned = map_arg(node.args[0], env.__getitem__)
            else:
                env[node] = graph.node_copy(node, env.__getitem__)
    if isinstance(returned, (tuple, list)) and any(
        user.op == "call_function" and user.target is operator.getitem for user in call.users
    ):
        for user in list(call.users):  # the parent unpacked the outputs: each getitem reads one
            user.replace_all_uses_with(returned[user.args[1]])
            graph.erase_node(user)
    else:
        call.replace_all_uses_with(returned)
    graph.erase_node(call)
