"""Dead code elimination as a pass: drop nodes whose values nobody uses (impure nodes stay)."""

from __future__ import annotations

from fxkit import _foreign
from fxkit.graph_module import GraphModule
from fxkit.passes.infra.pass_base import PassBase, PassResult

__all__ = ["dead_code_elimination", "DCEPass"]


def dead_code_elimination(gm: GraphModule, remove_unused_submodules: bool = False) -> bool:
    """Remove unused pure nodes from ``gm.graph`` in place (see ``Graph.eliminate_dead_code``),
    recompile, and return True if anything was removed. With ``remove_unused_submodules``, also
    delete submodules no remaining node calls."""
    _foreign.reject(gm, "dead_code_elimination")  # edits gm in place
    changed = gm.graph.eliminate_dead_code()
    if remove_unused_submodules:
        gm.delete_all_unused_submodules()
    if changed:
        gm.recompile()
    return changed


class DCEPass(PassBase):
    """A pass: ``DCEPass()(gm)`` edits ``gm`` in place and returns a PassResult."""

    def __init__(self, remove_unused_submodules: bool = False) -> None:
        self.remove_unused_submodules = remove_unused_submodules

    def call(self, graph_module: GraphModule) -> PassResult:
        _foreign.reject(graph_module, "DCEPass")  # edits graph_module in place
        return PassResult(graph_module, dead_code_elimination(graph_module, self.remove_unused_submodules))
