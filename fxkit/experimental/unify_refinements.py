"""Solve the equalities found by :class:`Refine` and write symbolic shapes back onto the graph.

After ``infer_symbolic_types(gm)`` every unknown dimension left in a node type is a sympy symbol
named ``~k``; dimensions the graph proves equal share one symbol, and Conv2d output sizes are
formulas of their input sizes.
"""

from typing import Any, Dict, List

from ..node import Node
from ..tensor_type import TensorType, Var
from .graph_gradual_typechecker import Refine
from .refinement_types import Equality
from .unification import reify, unify

__all__ = ["infer_symbolic_types", "infer_symbolic_types_single_pass", "unify_eq"]


def unify_eq(constraints: List[Equality]) -> Dict[Any, Any]:
    """Fold the equalities into one substitution; an equality that cannot hold is left out."""
    solution: Dict[Any, Any] = {}
    for eq in constraints:
        step = unify(eq.lhs, eq.rhs, solution)
        if step is not False:
            solution = step
    return solution


def _substitute(traced: Any, solution: Dict[Any, Any], convert: bool = False) -> None:
    for n in traced.graph.nodes:
        if isinstance(n.type, TensorType):
            dims = (reify(d, solution) if isinstance(d, Var) else d for d in n.type.__args__)
            n.type = TensorType(tuple(_symbol(d) if convert else d for d in dims))
        elif isinstance(n.type, Var):
            n.type = reify(n.type, solution)
            n.type = _symbol(n.type) if convert else n.type


def _symbol(d: Any) -> Any:
    if not isinstance(d, Var):
        return d
    import sympy

    return sympy.symbols(f"~{d.token}")


def infer_symbolic_types_single_pass(traced: Any) -> Refine:
    """Refine once, solve the equalities and substitute the solution into every node type."""
    r = Refine(traced)
    r.refine()
    _substitute(traced, unify_eq(r.constraints))
    return r


def infer_symbolic_types(traced: Any) -> None:
    """Replace the unknown dimensions of a type-checked graph by shared symbols (see module doc)."""
    infer_symbolic_types_single_pass(traced)
    # A second pass sees the equalities that only appear once the first solution is in place.
    r = infer_symbolic_types_single_pass(traced)
    _substitute(traced, {}, convert=True)
    r.symbolic_relations()
    for n in traced.graph.nodes:  # the output's type is its value's type (one object, as after checking)
        if n.op == "output" and isinstance(n.args[0], Node):
            n.type = n.args[0].type
