"""Constant folding: compute once what depends only on parameters, buffers and constants.

``split_const_subgraphs(module)`` finds every node whose inputs are all constant (``get_attr``
nodes and nodes computed from them only), moves those into a separate ``const_subgraph_module``
and returns a ``FoldedGraphModule`` whose graph reads the results from the attribute
``_FX_CONST_FOLDED_ATTRS`` instead. The constant subgraph runs once, on the first call (or on
``run_folding()``). Impure nodes (random ops, side effects) and nodes for which
``skip_folding_node_fn`` returns True are never folded.
"""

from __future__ import annotations

import copy
import operator
import re
from typing import Any, Callable, Dict, List, Optional, Union

import torch

from fxkit import _foreign
from fxkit.graph import Graph
from fxkit.graph_module import GraphModule
from fxkit.node import Node
from fxkit.passes.split_module import _copy_attribute
from fxkit.tracer import symbolic_trace

__all__ = ["FoldedGraphModule", "get_unique_attr_name_in_module", "split_const_subgraphs"]

_FOLDED_ATTRS_NAME = "_FX_CONST_FOLDED_ATTRS"


class FoldedGraphModule(GraphModule):
    """A GraphModule whose constant part lives in ``const_subgraph_module`` and is computed once
    into the attribute named ``fx_const_folded_attrs_name`` (a Parameter, or a ParameterList
    when several values are folded)."""

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
        """Run the constant subgraph and store its results as parameters (once)."""
        if self.const_subgraph_module is None or self.fx_const_folded_attrs_name is None:
            return
        if self.has_folding_been_run:
            raise RuntimeError("run_folding: the constant subgraph has already been folded into this module")
        self.has_folding_been_run = True
        folded = self.const_subgraph_module()
        device = self.device_for_folded_attrs

        def as_parameter(value: Any) -> torch.nn.Parameter:
            if isinstance(value, torch.Tensor):
                return torch.nn.Parameter(
                    value.detach().clone().to(device), requires_grad=value.requires_grad
                )
            return torch.nn.Parameter(torch.tensor([value], device=device), requires_grad=False)

        if isinstance(folded, tuple):
            stored: Any = torch.nn.ParameterList([as_parameter(value) for value in folded])
        else:
            stored = as_parameter(folded)
        if hasattr(self, self.fx_const_folded_attrs_name):
            delattr(self, self.fx_const_folded_attrs_name)  # the stand-in (a Parameter slot)
        setattr(self, self.fx_const_folded_attrs_name, stored)


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
    """get_attr nodes, and pure call nodes whose inputs are all constant (in graph order)."""
    constant: Dict[Node, None] = {}
    for node in graph.nodes:
        if node.op == "get_attr":
            constant[node] = None
        elif node.op in ("call_function", "call_method", "call_module"):
            inputs = node.all_input_nodes
            if not inputs or any(used not in constant for used in inputs):
                continue
            if node.is_impure():
                continue
            if skip_folding_node_fn is not None and skip_folding_node_fn(node):
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
    graph = traced.graph
    constant = _constant_nodes(graph, skip_folding_node_fn)
    # Values to fold: computed (not plain get_attr) constants that something non-constant reads.
    folded = [
        node
        for node in constant
        if node.op != "get_attr" and any(user not in constant for user in node.users)
    ]
    if not folded:
        return FoldedGraphModule(traced, copy.deepcopy(graph))

    # The constant subgraph: every constant node the folded values need, in graph order.
    needed: Dict[Node, None] = {}
    pending = list(folded)
    while pending:
        node = pending.pop()
        if node not in needed:
            needed[node] = None
            pending.extend(node.all_input_nodes)
    const_graph = Graph()
    const_env: Dict[Node, Node] = {}
    for node in graph.nodes:
        if node in needed:
            const_env[node] = const_graph.node_copy(node, const_env.__getitem__)
    results = [const_env[node] for node in folded]
    const_graph.output(results[0] if len(results) == 1 else tuple(results))

    # The main graph: folded values come from the folded attribute; other constants vanish
    # unless non-constant nodes read them directly (plain get_attr nodes).
    attr_name = get_unique_attr_name_in_module(traced, _FOLDED_ATTRS_NAME)
    main_graph = Graph()
    main_graph.set_codegen(graph._codegen)
    main_env: Dict[Node, Node] = {}
    folded_attr: Optional[Node] = None
    folded_index = {node: index for index, node in enumerate(folded)}
    # Attributes the non-constant part reads directly come first, then the folded values (torch.fx's order).
    hoisted = [
        node
        for node in graph.nodes
        if node.op == "get_attr" and (node not in constant or any(u not in constant for u in node.users))
    ]
    for node in graph.nodes:
        if node.op != "placeholder" and folded_attr is None:
            for attribute_node in hoisted:
                main_env[attribute_node] = main_graph.node_copy(attribute_node, main_env.__getitem__)
            folded_attr = main_graph.get_attr(attr_name)
            # The node standing for a folded value takes over that value's meta (tensor_meta, ...).
            if len(folded) > 1:
                for value_node in folded:
                    main_env[value_node] = main_graph.call_function(
                        operator.getitem, (folded_attr, folded_index[value_node])
                    )
                    main_env[value_node].meta = copy.copy(value_node.meta)
            else:
                main_env[folded[0]] = folded_attr
                folded_attr.meta = copy.copy(folded[0].meta)
        if node in folded_index or node in main_env:
            continue
        if node in constant and not (node.op == "get_attr" and any(u not in constant for u in node.users)):
            continue
        main_env[node] = main_graph.node_copy(node, main_env.__getitem__)

    holder = torch.nn.Module()
    holder.training = traced.training
    targets: List[str] = [
        node.target
        for source in (main_graph, const_graph)
        for node in source.nodes
        if node.op in ("get_attr", "call_module") and node.target != attr_name
    ]
    for target in dict.fromkeys(targets):
        _copy_attribute(traced, holder, target)
    # Stand-in until run_folding() stores the real values.
    setattr(holder, attr_name, torch.nn.Parameter(torch.empty(0), requires_grad=False))
    return FoldedGraphModule(holder, main_graph, const_graph, attr_name, device_for_folded_attrs)
