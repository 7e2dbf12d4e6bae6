"""Small helpers shared by the splitting passes (torch.fx's ``passes.utils.common``): holding a
dict of modules, lifting a subgraph into its own module, and comparing two graphs."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from torch.nn import Module

from fxkit import _foreign
from fxkit.graph import Graph
from fxkit.graph_module import GraphModule
from fxkit.passes.utils.matcher_utils import SubgraphMatcher

__all__ = ["HolderModule", "lift_subgraph_as_module", "compare_graphs"]


class HolderModule(Module):
    """A module whose children are the entries of ``d`` (``None`` entries are registered too)."""

    def __init__(self, d: Dict[str, Optional[Module]]) -> None:
        super().__init__()
        for name, module in d.items():
            self.add_module(name, module)


def lift_subgraph_as_module(
    gm: GraphModule, subgraph: Graph, comp_name: str = "", class_name: str = "GraphModule"
) -> Tuple[GraphModule, Dict[str, str]]:
    """A GraphModule running ``subgraph``, holding the submodules and attributes of ``gm`` it
    refers to (shared, not copied) at the same paths; also ``{path in gm: comp_name + "." + path}``
    for each of them."""
    gm = _foreign.convert(gm)  # only read for attributes, which its twin shares
    _foreign.reject(subgraph, "lift_subgraph_as_module")  # the new module owns subgraph
    root = Module()
    mapping: Dict[str, str] = {}
    for node in subgraph.nodes:
        if node.op not in ("call_module", "get_attr"):
            continue
        target = str(node.target)
        *parents, leaf = target.split(".")
        source: Module = gm
        holder = root
        for atom in parents:
            source = getattr(source, atom)
            if not hasattr(holder, atom):
                holder.add_module(atom, Module())
            holder = getattr(holder, atom)
        setattr(holder, leaf, getattr(source, leaf))
        mapping[target] = f"{comp_name}.{target}"
    return GraphModule(root, subgraph, class_name), mapping


def _fxkit_graph(graph: Graph) -> Graph:
    """``graph``, or the fxkit twin of a torch.fx graph, converted with its owning module so that
    its get_attr nodes can still be resolved."""
    owner = getattr(graph, "owning_module", None) if _foreign.torch_fx_kind(graph) == "Graph" else None
    return _foreign.convert(owner).graph if owner is not None else _foreign.convert(graph)


def compare_graphs(left: Graph, right: Graph) -> bool:
    """Whether ``right`` matches ``left`` as a whole (placeholders and output included)."""
    left, right = _fxkit_graph(left), _fxkit_graph(right)  # only read
    matcher = SubgraphMatcher(left, match_output=True, match_placeholder=True)
    return len(matcher.match(right)) > 0
