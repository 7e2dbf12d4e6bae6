"""A gradual shape checker for graphs: every node gets a ``TensorType`` (or ``Dyn``) in ``node.type``.

``GraphTypeChecker(env, gm).type_check()`` walks the graph once, starting from the placeholder
annotations, and raises ``TypeError`` where shapes cannot fit. ``Refine(gm).refine()`` then names
every unknown dimension and collects the equalities the operations imply, for
:func:`fxkit.experimental.unify_refinements.infer_symbolic_types`.

Covered operations (the same as torch.fx's): add (with broadcasting), reshape, transpose,
flatten, ``getattr(x, "shape")``, get_attr, and the modules Conv2d, BatchNorm2d, ReLU, MaxPool2d,
Linear and AdaptiveAvgPool2d.
"""

import functools
import operator
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

import torch

from ..node import Node
from ..tensor_type import Dyn, TensorType, Var, is_consistent, is_more_precise  # noqa: F401
from .refinement_types import Equality

__all__ = [
    "GraphTypeChecker",
    "Refine",
    "broadcast_types",
    "register_algebraic_expressions_inference_rule",
    "register_inference_rule",
    "register_refinement_rule",
]

_ADD_TARGETS = (torch.add, operator.add)
_F = TypeVar("_F", bound=Callable[..., Any])


def _dims(t: Any) -> Optional[List[Any]]:
    return list(t.__args__) if isinstance(t, TensorType) else None


def _known(d: Any) -> bool:
    return isinstance(d, int)


def broadcast_types(t1: Any, t2: Any) -> Tuple[Any, Any]:
    """Pad the shorter tensor type with leading 1s and stretch size-1 dimensions to the other's size."""
    if t1 == Dyn or t2 == Dyn or isinstance(t1, Var) or isinstance(t2, Var):
        return t1, t2
    if not (isinstance(t1, TensorType) and isinstance(t2, TensorType)):
        raise TypeError(f"Cannot broadcast types {t1} and {t2}")
    a, b = _dims(t1), _dims(t2)
    rank = max(len(a), len(b))
    a, b = [1] * (rank - len(a)) + a, [1] * (rank - len(b)) + b
    for i in range(rank):
        if a[i] == 1 and b[i] != 1:
            a[i] = b[i]
        elif b[i] == 1 and a[i] != 1:
            b[i] = a[i]
    return TensorType(tuple(a)), TensorType(tuple(b))


def _join(t1: Any, t2: Any) -> Any:
    """The least precise type both refine: dimensions that differ become ``Dyn``."""
    if t1 == Dyn or t2 == Dyn:
        return Dyn
    return TensorType(tuple(x if x == y else Dyn for x, y in zip(t1.__args__, t2.__args__)))


def _meet(t1: Any, t2: Any) -> Any:
    """The more precise combination of two consistent types."""
    if t1 == Dyn:
        return t2
    if t2 == Dyn or not isinstance(t1, TensorType):
        return t1
    return TensorType(tuple(y if x == Dyn else x for x, y in zip(t1.__args__, t2.__args__)))


def _settle(n: Node, computed: Any) -> Any:
    """Combine the computed type with the node's own annotation, if any, and store it."""
    if n.type is not None:
        if not is_consistent(computed, n.type):
            raise TypeError(f"Node {n.name}: computed type {computed} does not match its annotation {n.type}")
        computed = _meet(computed, n.type)
    n.type = computed
    return computed


def _tensor_arg(n: Node, rank: Tuple[int, ...]) -> TensorType:
    """The type of ``n``'s first argument as a tensor of one of the ranks in ``rank``; an unknown
    input is widened to a tensor of ``rank[-1]`` unknown dimensions (and recorded on the input)."""
    arg = n.args[0]
    t = arg.type if isinstance(arg, Node) else None
    if t is None or t == Dyn:
        t = TensorType((Dyn,) * rank[-1])
        if isinstance(arg, Node):
            arg.type = t
    if not isinstance(t, TensorType) or len(t.__args__) not in rank:
        raise TypeError(f"Node {n.name}: expected a tensor of rank {' or '.join(map(str, rank))}, got {t}")
    return t


def _widen_to_annotation(n: Node) -> bool:
    """For an unknown input: take the rank from the node's own annotation, if it has one (the input
    becomes a tensor of that many unknown dimensions). False when there is nothing to go on."""
    arg = n.args[0]
    if arg.type not in (None, Dyn):
        return True
    if not isinstance(n.type, TensorType):
        return False
    arg.type = TensorType((Dyn,) * len(n.type.__args__))
    return True


def _pair(v: Any) -> Tuple[Any, Any]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _window(size: Any, k: int, s: int, p: int, d: int) -> Any:
    """Output length of a convolution or pooling window along one dimension."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1 if _known(size) else Dyn


def _spatial(t: TensorType, m: torch.nn.Module) -> Tuple[Any, Any]:
    k, s, p, d = (_pair(getattr(m, a)) for a in ("kernel_size", "stride", "padding", "dilation"))
    h, w = t.__args__[-2:]
    return _window(h, k[0], s[0], p[0], d[0]), _window(w, k[1], s[1], p[1], d[1])


def _check_dim(n: Node, dim: Any, expected: int, what: str) -> None:
    if not is_consistent(dim, expected):
        raise TypeError(f"Node {n.name}: {what} is {dim}, but the module expects {expected}")


# ----- inference rules: (node, module or None) -> type -------------------------------------


def _add_rule(n: Node) -> Any:
    # As in torch.fx, the result replaces an annotation of the node rather than refining it.
    t1, t2 = (a.type if isinstance(a, Node) else type(a) for a in n.args[:2])
    if t1 in (int, float) and isinstance(t2, TensorType):
        n.type = t2
    elif t2 in (int, float) and isinstance(t1, TensorType):
        n.type = t1
    else:
        b1, b2 = broadcast_types(t1, t2)
        n.meta["broadcast"] = not (b1 == t1 and b2 == t2)
        if not is_consistent(b1, b2):
            raise TypeError(f"Node {n.name}: cannot add tensors of types {t1} and {t2}")
        n.type = _join(b1, b2)
    return n.type


def _getattr_rule(n: Node) -> Any:
    if n.args[1] != "shape":
        raise TypeError(f"Node {n.name}: typing getattr(..., {n.args[1]!r}) is not yet implemented")
    n.type = Dyn  # a torch.Size, not a tensor
    return n.type


def _relu_rule(n: Node, _m: Any) -> Any:
    return _settle(n, n.args[0].type if _widen_to_annotation(n) else Dyn)


def _reshape_rule(n: Node) -> Any:
    t = n.args[0].type
    target = list(n.args[1])
    out = TensorType([Dyn if d == -1 else d for d in target])
    if t == Dyn or t is None:
        n.type = out  # as in torch.fx, an annotation of the node is replaced, not checked
        return out
    dims = _dims(t)
    p_in = functools.reduce(operator.mul, [d for d in dims if _known(d)], 1)
    p_out = functools.reduce(operator.mul, [d for d in target if d != -1], 1)
    static = all(_known(d) for d in dims) and -1 not in target
    fits = p_in == p_out if static else (p_in % p_out == 0 or p_out % p_in == 0)
    if not fits:
        raise TypeError(f"Cannot reshape in node {n.name} from {t} to {out}")
    n.type = out
    return out


def _transpose_rule(n: Node) -> Any:
    t = n.args[0].type
    if t == Dyn or t is None:
        n.type = Dyn
        return Dyn
    dims = _dims(t)
    i, j = n.args[1], n.args[2]
    if not (0 <= i < len(dims) and 0 <= j < len(dims)):  # torch.fx refuses negative dimensions too
        raise TypeError(f"Node {n.name}: cannot transpose dimensions {i} and {j} of {t}")
    dims[i], dims[j] = dims[j], dims[i]
    return _settle(n, TensorType(dims))


def _flatten_range(n: Node, rank: int) -> Tuple[int, int]:
    # torch.fx's rule starts at dimension 1 when none is given (torch.flatten itself starts at 0).
    start = n.args[1] if len(n.args) > 1 else n.kwargs.get("start_dim", 1)
    end = n.args[2] if len(n.args) > 2 else n.kwargs.get("end_dim", -1)
    start, end = (v + rank if v < 0 else v for v in (start, end))
    if not (0 <= start <= end < rank):
        raise TypeError(f"Node {n.name}: cannot flatten dimensions {start}..{end} of a rank-{rank} tensor")
    return start, end


def _flatten_rule(n: Node) -> Any:
    if not _widen_to_annotation(n):
        return _settle(n, Dyn)
    t = n.args[0].type
    dims = _dims(t)
    start, end = _flatten_range(n, len(dims))
    middle = dims[start : end + 1]
    size = functools.reduce(operator.mul, middle, 1) if all(_known(d) for d in middle) else Dyn
    return _settle(n, TensorType(tuple(dims[:start] + [size] + dims[end + 1 :])))


def _conv_rule(n: Node, m: torch.nn.Conv2d) -> Any:
    t = _tensor_arg(n, (4,))
    _check_dim(n, t.__args__[1], m.in_channels, "the input channel count")
    return _settle(n, TensorType((t.__args__[0], m.out_channels, *_spatial(t, m))))


def _batchnorm_rule(n: Node, m: torch.nn.BatchNorm2d) -> Any:
    t = _tensor_arg(n, (4,))
    _check_dim(n, t.__args__[1], m.num_features, "the channel count")
    out = _settle(n, t)
    _check_dim(n, out.__args__[1], m.num_features, "the channel count")
    return out


def _maxpool_rule(n: Node, m: torch.nn.MaxPool2d) -> Any:
    if not _widen_to_annotation(n):  # unlike conv and batch norm: no rank to assume
        return _settle(n, Dyn)
    t = _tensor_arg(n, (3, 4))
    return _settle(n, TensorType((*t.__args__[:-2], *_spatial(t, m))))


def _linear_rule(n: Node, m: torch.nn.Linear) -> Any:
    if not _widen_to_annotation(n):
        return _settle(n, Dyn)
    t = n.args[0].type
    _check_dim(n, t.__args__[-1], m.in_features, "the last dimension")
    return _settle(n, TensorType((*t.__args__[:-1], m.out_features)))


def _adaptive_avgpool_rule(n: Node, m: torch.nn.AdaptiveAvgPool2d) -> Any:
    if not _widen_to_annotation(n):
        return _settle(n, Dyn)
    t = _tensor_arg(n, (3, 4))
    h, w = _pair(m.output_size)
    h, w = (w if h is None else h), (h if w is None else w)  # torch.fx reads a None as the other size
    return _settle(n, TensorType((*t.__args__[:-2], h, w)))


# Rules by call target: a function (called with the node) or a module class (called with the node
# and the module instance). Extend them with the register_* decorators below, as in torch.fx.
_INFERENCE_RULES: Dict[Any, Callable[..., Any]] = {}
_REFINEMENT_RULES: Dict[Any, Callable[..., Any]] = {}
_RULES: Dict[Any, Callable[..., Any]] = {}  # algebraic expressions for symbolic sizes


def _registrar(table: Dict[Any, Callable[..., Any]], what: str) -> Callable[[Any], Callable[[_F], _F]]:
    def register(call_target: Any) -> Callable[[_F], _F]:
        def add(fn: _F) -> _F:
            if call_target in table:
                raise RuntimeError(f"{what} already registered for {call_target}!")
            table[call_target] = fn
            return fn

        return add

    return register


register_inference_rule = _registrar(_INFERENCE_RULES, "Inference rule")
register_refinement_rule = _registrar(_REFINEMENT_RULES, "Refinement rule")
register_algebraic_expressions_inference_rule = _registrar(_RULES, "Rule")

for _target, _rule in [
    *((f, _add_rule) for f in _ADD_TARGETS),
    (getattr, _getattr_rule),
    (torch.reshape, _reshape_rule),
    (torch.transpose, _transpose_rule),
    (torch.flatten, _flatten_rule),
    (torch.nn.Conv2d, _conv_rule),
    (torch.nn.BatchNorm2d, _batchnorm_rule),
    (torch.nn.ReLU, _relu_rule),
    (torch.nn.MaxPool2d, _maxpool_rule),
    (torch.nn.Linear, _linear_rule),
    (torch.nn.AdaptiveAvgPool2d, _adaptive_avgpool_rule),
]:
    register_inference_rule(_target)(_rule)


def _call_target(traced: Any, n: Node) -> Any:
    """What the rules are keyed by: the function, or the class of the called module."""
    if n.op == "call_function":
        return n.target
    if n.op == "call_module":
        return type(traced.get_submodule(n.target))
    return None


class GraphTypeChecker:
    """Infer and check a ``TensorType`` for every node of ``traced`` (a GraphModule).

    ``env`` is kept for torch.fx compatibility; node types live on ``node.type``.
    """

    def __init__(self, env: Dict[Any, Any], traced: Any) -> None:
        self.env = env
        self.traced = traced

    def type_check(self) -> bool:
        """Type every node in program order; raise ``TypeError`` where shapes cannot fit."""
        for n in self.traced.graph.nodes:
            self.type_check_node(n)
        return True

    def type_check_node(self, n: Node) -> Any:
        if n.op == "placeholder":
            if n.type is None:
                n.type = Dyn
            return n.type
        if n.op == "output":
            arg = n.args[0]
            n.type = arg.type if isinstance(arg, Node) else Dyn
            return n.type
        if n.op == "get_attr":
            value = self.traced
            for atom in str(n.target).split("."):
                value = getattr(value, atom)
            n.type = TensorType(value.shape) if isinstance(value, torch.Tensor) else Dyn
            return n.type
        target = _call_target(self.traced, n)
        rule = _INFERENCE_RULES.get(target)
        if rule is None:
            raise RuntimeError(f"No inference rule registered for target {n.target} (node {n.name})!")
        if n.op == "call_module":
            return rule(n, self.traced.get_submodule(n.target))
        return rule(n)


# ----- refinement: name the unknowns and collect the equalities ----------------------------


def _same_dims(indices: Callable[[int], Sequence[int]]) -> Callable[[Node], List[Equality]]:
    """A rule equating the chosen dimensions of the input and the output."""

    def rule(n: Node) -> List[Equality]:
        t_in, t_out = n.args[0].type, n.type
        if not (isinstance(t_in, TensorType) and isinstance(t_out, TensorType)):
            return []
        return [Equality(t_in.__args__[i], t_out.__args__[i]) for i in indices(len(t_out.__args__))]

    return rule


def _add_refinement(n: Node) -> List[Equality]:
    t1, t2 = (a.type if isinstance(a, Node) else None for a in n.args[:2])
    if not (isinstance(t1, TensorType) and isinstance(t2, TensorType) and isinstance(n.type, TensorType)):
        return []
    b1, b2 = broadcast_types(t1, t2)
    return [Equality(x, o) for x, y, o in zip(b1.__args__, b2.__args__, n.type.__args__) if x == y]


def _flatten_refinement(n: Node) -> List[Equality]:
    t_in, t_out = n.args[0].type, n.type
    if not (isinstance(t_in, TensorType) and isinstance(t_out, TensorType)):
        return []
    # As torch.fx does: negative bounds count from the end of the *output*, and the dimensions
    # after the flattened range are paired by position.
    start = n.args[1] if len(n.args) > 1 else n.kwargs.get("start_dim", 1)
    end = n.args[2] if len(n.args) > 2 else n.kwargs.get("end_dim", -1)
    rank = len(t_out.__args__)
    start, end = (v + rank if v < 0 else v for v in (start, end))
    kept = list(range(start)) + list(range(end + 1, rank))
    return [Equality(t_out.__args__[i], t_in.__args__[i]) for i in kept if i < len(t_in.__args__)]


_everything = _same_dims(range)
_first = _same_dims(lambda rank: [0])
_first_two = _same_dims(lambda rank: [0, 1])

for _target, _rule in [
    (torch.nn.Conv2d, _first),
    (torch.nn.Linear, _first),
    (torch.nn.ReLU, _everything),
    (torch.nn.BatchNorm2d, _everything),
    (torch.nn.MaxPool2d, _first_two),
    (torch.nn.AdaptiveAvgPool2d, _first_two),
    *((f, _add_refinement) for f in _ADD_TARGETS),
    (torch.flatten, _flatten_refinement),
]:
    register_refinement_rule(_target)(_rule)


class Refine:
    """Give every unknown dimension of the typed graph its own variable (``~0``, ``~1`` ...) and
    collect in ``constraints`` the equalities between dimensions that the operations imply."""

    def __init__(self, traced: Any) -> None:
        self.traced = traced
        self.constraints: List[Equality] = []
        self.symbol_iter = 0

    def _fresh(self, dim: Any) -> Any:
        if dim != Dyn:
            return dim
        v = Var(self.symbol_iter)
        self.symbol_iter += 1
        return v

    def refine(self) -> bool:
        """Name the unknowns, then collect the constraints of every node."""
        for n in self.traced.graph.nodes:
            if n.op == "output":
                arg = n.args[0]
                n.type = arg.type if isinstance(arg, Node) else n.type
            elif isinstance(n.type, TensorType):
                n.type = TensorType(tuple(self._fresh(d) for d in n.type.__args__))
            elif n.type == Dyn:
                n.type = self._fresh(n.type)
        for n in self.traced.graph.nodes:
            self.constraints.extend(self.refine_node(n))
        return True

    def refine_node(self, n: Node) -> List[Equality]:
        rule = _REFINEMENT_RULES.get(_call_target(self.traced, n))
        return list(rule(n)) if rule is not None else []

    def symbolic_relations(self) -> bool:
        """Rewrite sizes as formulas of other sizes where a rule knows one (Conv2d outputs)."""
        for n in self.traced.graph.nodes:
            rule = _RULES.get(_call_target(self.traced, n))
            if rule is not None and n.op == "call_module":
                rule(n, self.traced.get_submodule(n.target))
            elif rule is not None:
                rule(n)
        return True


@register_algebraic_expressions_inference_rule(torch.nn.Conv2d)
def _conv_sizes(n: Node, m: torch.nn.Conv2d) -> Any:
    t_in = n.args[0].type
    if isinstance(n.type, TensorType) and isinstance(t_in, TensorType):
        n.type = TensorType((*n.type.__args__[:2], *_symbolic_spatial(t_in, m)))
    return n.type


def _symbolic_spatial(t: TensorType, m: torch.nn.Module) -> Tuple[Any, Any]:
    import sympy

    k, s, p, d = (_pair(getattr(m, a)) for a in ("kernel_size", "stride", "padding", "dilation"))
    sizes = t.__args__[-2:]
    return tuple(
        sympy.floor((size + 2 * p[i] - d[i] * (k[i] - 1) - 1) / s[i]) + 1 for i, size in enumerate(sizes)
    )
