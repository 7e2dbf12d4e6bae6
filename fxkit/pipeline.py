"""Pipeline parallelism: split a captured model into stages that torch.distributed.pipelining runs.

``pipeline(module, mb_args)`` captures ``module`` with :func:`fxkit.capture` on one microbatch,
chooses where to cut (``split_spec``, ``pipe_split()`` markers, or balanced automatically), and
returns a :class:`Pipe` whose stage modules are plain fxkit GraphModules. Stage ``i`` reads only
what stage ``i - 1`` returns (a tuple of tensors), as torch's schedules require: values a later stage
needs are passed through the stages in between, and Python values (sizes, flags) crossing a cut are
recomputed on the far side from the tensors they come from.
"""

from __future__ import annotations

import bisect
import enum
import inspect
import operator
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

import torch
import torch.utils._pytree as pytree
from torch import nn

from fxkit import _paths
from fxkit.capture_tracer import capture
from fxkit.graph import Graph
from fxkit.graph_module import GraphModule
from fxkit.interpreter import Interpreter
from fxkit.node import Node, map_arg
from fxkit.tracer import _active_tracer

__all__ = [
    "Pipe",
    "PipelineError",
    "SplitPoint",
    "load_stage_state_dict",
    "pipe_split",
    "pipeline",
]


class PipelineError(RuntimeError):
    """The model cannot be split as asked; the message says where and what to change."""


class SplitPoint(enum.Enum):
    """Where a ``split_spec`` entry cuts: before the named submodule runs, or after it."""

    BEGINNING = 1
    END = 2


def pipe_split() -> None:
    """Mark a stage boundary inside ``forward``; does nothing when the model runs eagerly."""
    tracer = _active_tracer()
    if tracer is not None:
        tracer.create_proxy("call_function", pipe_split, (), {})


class Pipe(nn.Module):
    """A model split into ``num_stages`` stages: ``split_gm`` calls ``submod_0`` ... in order."""

    def __init__(
        self,
        split_gm: GraphModule,
        num_stages: int,
        input_names: Sequence[str],
        output_spec: Optional[pytree.TreeSpec] = None,
    ) -> None:
        super().__init__()
        self.split_gm = split_gm
        self.num_stages = num_stages
        self.input_names: Tuple[str, ...] = tuple(input_names)
        self.output_spec = output_spec

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run every stage in this process, one after the other; returns what the model returns."""
        return self.unflatten_output(self.split_gm(*args, **kwargs))

    def unflatten_output(self, output: Any) -> Any:
        """The model's own output structure rebuilt from what the last stage returns.

        A model returning an object (a ``ModelOutput``, a dict) has its last stage return the
        tensors inside (one tensor alone, else a tuple), since torch's stages pass only tensors.
        """
        if self.output_spec is None:
            return output
        leaves = list(output) if isinstance(output, tuple) else [output]
        return pytree.tree_unflatten(leaves, self.output_spec)

    def get_stage_module(self, stage_idx: int) -> GraphModule:
        """The GraphModule of stage ``stage_idx``, holding only that stage's parameters."""
        if not 0 <= stage_idx < self.num_stages:
            raise IndexError(f"stage index {stage_idx} out of range: the pipe has {self.num_stages} stages")
        return getattr(self.split_gm, f"submod_{stage_idx}")

    def build_stage(
        self, stage_index: int, device: Union[str, torch.device], group: Optional[Any] = None
    ) -> Any:
        """A ``torch.distributed.pipelining.PipelineStage`` running stage ``stage_index`` on ``device``.

        The stage module is moved to ``device``; a stage still on the meta device is refused (load
        its weights first, e.g. with :func:`load_stage_state_dict`).
        """
        from torch.distributed.pipelining import PipelineStage  # torch.distributed loads lazily

        module = self.get_stage_module(stage_index)
        on_meta = [name for name, t in _tensors_of(module) if t.is_meta]
        if on_meta:
            raise PipelineError(
                f"stage {stage_index} still has tensors on the meta device ({', '.join(on_meta[:3])}"
                f"{', ...' if len(on_meta) > 3 else ''}); materialise it first: "
                "fxkit.pipeline.load_stage_state_dict(stage_module, state_dict, device=...)"
            )
        device = torch.device(device)
        module.to(device)
        return PipelineStage(module, stage_index, self.num_stages, device, group=group)


def _tensors_of(module: nn.Module) -> List[Tuple[str, torch.Tensor]]:
    return list(module.named_parameters()) + list(module.named_buffers())


def load_stage_state_dict(
    stage_module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    device: Union[str, torch.device, None] = None,
) -> None:
    """Load a stage's own entries of a full-model ``state_dict`` (keys are the original names).

    With ``device``, a stage on the meta device is first allocated there (only this stage's tensors).
    Every parameter and buffer of the stage must be found in ``state_dict``; non-persistent buffers
    (which checkpoints leave out) can be added to the dict under their qualified name.
    """
    tensors = dict(_tensors_of(stage_module))
    missing = [name for name in tensors if name not in state_dict]
    if missing:
        raise PipelineError(
            f"state_dict lacks {len(missing)} tensors of this stage: {', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}; pass a dict with every parameter and buffer "
            "(non-persistent buffers such as rotary 'inv_freq' are not in model.state_dict(): add them)"
        )
    if device is not None:
        stage_module.to_empty(device=device)
    elif any(t.is_meta for t in tensors.values()):
        raise PipelineError("the stage is on the meta device: pass device=... to allocate it")
    with torch.no_grad():
        for name, tensor in _tensors_of(stage_module):
            source = state_dict[name]
            if source.shape != tensor.shape:
                raise PipelineError(
                    f"{name}: checkpoint shape {tuple(source.shape)} != stage {tuple(tensor.shape)}"
                )
            tensor.copy_(source)


# --------------------------------------------------------------------------- inputs


def _bind_inputs(module: nn.Module, mb_args: Tuple[Any, ...], mb_kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Parameter name -> the example value given for it (parameters left out are absent)."""
    return dict(inspect.signature(module.forward).bind(*mb_args, **mb_kwargs).arguments)


def _contains_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (tuple, list)):
        return any(_contains_tensor(item) for item in value)
    if isinstance(value, dict):
        return any(_contains_tensor(item) for item in value.values())
    return False


def _input_value(node: Node, examples: Dict[str, Any]) -> Any:
    """The example value of a placeholder: the one given, else what capture stands in for a parameter
    left out (its default, or the "not given" marker its guard expects)."""
    name = node.target.lstrip("*")
    if name in examples:
        return examples[name]
    if node.args:
        return node.args[0]
    return {} if node.target.startswith("**") else ()


def _specialize_inputs(graph: Graph, examples: Dict[str, Any]) -> List[Node]:
    """Turn every non-tensor input into the constant it was given as; return the tensor inputs."""
    tensor_inputs = []
    for node in list(graph.nodes):
        if node.op != "placeholder":
            continue
        value = _input_value(node, examples)
        name = node.target.lstrip("*")
        if isinstance(value, torch.Tensor):
            tensor_inputs.append(node)
            continue
        if _contains_tensor(value):
            raise PipelineError(
                f"input {name!r} is a {type(value).__name__} holding tensors; a pipeline's inputs are "
                "sent between processes one tensor each: pass these tensors as separate arguments"
            )
        for user in list(node.users):
            user.args = map_arg(user.args, lambda n, node=node, value=value: value if n is node else n)
            user.kwargs = map_arg(user.kwargs, lambda n, node=node, value=value: value if n is node else n)
        graph.erase_node(node)
    return tensor_inputs


# --------------------------------------------------------------------------- probing values


def _is_guard(node: Node) -> bool:
    """A run-time check capture recorded (``fxkit.guards.guard_*``): it returns nothing."""
    target = node.target
    named_guard = getattr(target, "__module__", None) == "fxkit.guards" and target.__name__.startswith(
        "guard_"
    )
    return "guard" in node.meta or named_guard


class _Probe(Interpreter):
    """Runs the graph once to learn which values are tensors and, optionally, each node's FLOPs."""

    def __init__(self, module: GraphModule, count_flops: bool) -> None:
        super().__init__(module, garbage_collect_values=True)
        self.is_tensor: Dict[Node, bool] = {}
        self.flops: Dict[Node, int] = {}
        self.result: Any = None
        self._counter: Any = None
        if count_flops:
            from torch.utils.flop_counter import FlopCounterMode

            self._counter = FlopCounterMode(display=False)

    def run_node(self, n: Node) -> Any:
        if n.op == "call_function" and (_is_guard(n) or n.target is pipe_split):
            return None  # checks of example values: meta tensors cannot answer them
        before = self._counter.get_total_flops() if self._counter is not None else 0
        value = super().run_node(n)
        self.is_tensor[n] = isinstance(value, torch.Tensor)
        if self._counter is not None:
            self.flops[n] = self._counter.get_total_flops() - before
        return value

    def probe(self, *args: Any) -> Any:
        if self._counter is None:
            return self.run(*args)
        with self._counter:
            return self.run(*args)


class _OnMeta(nn.Module):
    def __init__(self, probe: _Probe) -> None:
        super().__init__()
        self.graph_module = probe.module
        self._probe = [probe]

    def forward(self, *args: Any) -> Any:
        return self._probe[0].probe(*args)


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.empty_like(value, device="meta")
    return value


def _probe(gm: GraphModule, inputs: Sequence[torch.Tensor], count_flops: bool) -> _Probe:
    """Run ``gm`` on meta copies of its inputs and weights (no real compute, no memory); the probe
    keeps each value's kind, the FLOPs if asked, and the (meta) output."""
    probe = _Probe(gm, count_flops)
    wrapper = _OnMeta(probe)
    meta_state = {
        f"graph_module.{name}": _to_meta(t)
        for name, t in list(gm.named_parameters(remove_duplicate=False))
        + list(gm.named_buffers(remove_duplicate=False))
    }
    try:
        with torch.no_grad():
            output = torch.func.functional_call(
                wrapper, meta_state, tuple(_to_meta(t) for t in inputs), tie_weights=False
            )
    except Exception as error:  # noqa: BLE001 - any failure is reported with its cause
        raise PipelineError(
            f"running the captured graph on the meta device failed at node {probe._current_node}: "
            f"{type(error).__name__}: {error}. The split needs each value's type (and, for "
            "balance='flops', its shape); an operation that reads tensor data cannot run on meta"
        ) from error
    probe.result = output
    return probe


# Whether a value is a tensor, read off the graph where certain (a fast path: on the 7B LLaMA config
# the run on meta it saves is ~40% of the split time, see benchmarks/bench_pipeline.py). With it off,
# or where the graph does not tell, the graph is run once on meta and the values are looked at.
_STATIC_KINDS = True

_OPERATORS = frozenset(
    getattr(operator, name)
    for name in (
        "add sub mul truediv floordiv mod pow matmul neg pos abs invert and_ or_ xor lshift rshift "
        "eq ne lt le gt ge iadd isub imul itruediv"
    ).split()
)
_SIZE_ATTRIBUTES = frozenset({"shape", "dtype", "device", "ndim", "is_cuda", "is_meta", "layout"})
_SIZE_METHODS = frozenset({"size", "dim", "numel", "get_device", "is_floating_point", "is_contiguous"})
_TENSOR_METHODS = frozenset(
    (
        "to float half double bfloat16 long int bool type_as view view_as reshape reshape_as transpose "
        "permute contiguous expand expand_as repeat repeat_interleave unsqueeze squeeze flatten unflatten "
        "pow mean sum prod sqrt rsqrt exp log abs neg sigmoid tanh relu softmax log_softmax masked_fill "
        "matmul mul add sub div clone detach t narrow index_select gather clamp triu tril cumsum "
        "cos sin argmax argmin all any eq ne lt le gt ge float_power new_zeros new_ones new_full new_empty "
        "masked_fill_ mul_ add_ copy_ fill_ zero_ norm var std amax amin logsumexp where"
    ).split()
)
_TENSOR_FUNCTIONS = frozenset(
    (
        "rsqrt sqrt exp log cat stack matmul bmm mm addmm baddbmm einsum softmax log_softmax arange zeros "
        "ones full empty zeros_like ones_like full_like empty_like tril triu cos sin tanh sigmoid "
        "relu gelu silu linear embedding layer_norm group_norm rms_norm dropout scaled_dot_product_attention "
        "outer cumsum mean sum pow abs neg clamp masked_fill flatten reshape transpose permute unsqueeze "
        "squeeze cross_entropy mse_loss conv1d conv2d pad interpolate normalize"
    ).split()
)
_TENSOR_MODULE_FILES = frozenset(
    "torch.nn.modules." + name
    for name in ("linear", "conv", "sparse", "normalization", "batchnorm", "dropout", "activation", "flatten")
)
_NOT_TENSOR_MODULES = (nn.Identity, nn.MultiheadAttention, nn.EmbeddingBag)


def _torch_function_name(target: Any) -> Optional[str]:
    """The name of a torch / torch.nn.functional function, when ``target`` is one."""
    name = getattr(target, "__name__", None)
    if name is None:
        return None
    for namespace in (torch, torch.nn.functional, torch.Tensor):
        if getattr(namespace, name, None) is target:
            return name
    return None


class _Unknown(Exception):
    """A value whose kind the graph alone does not tell."""


class _Kinds:
    """Answers "is this node's value a tensor?" for the split."""

    def __init__(self, gm: GraphModule, run_on_meta: Callable[[], "_Probe"]) -> None:
        self.gm = gm
        self._run_on_meta = run_on_meta
        self._probe: Optional[_Probe] = None
        self._known: Dict[Node, Optional[bool]] = self._read_graph() if _STATIC_KINDS else {}

    def __call__(self, node: Node) -> bool:
        known = self._known.get(node)
        if known is not None:
            return known
        return self.probed().is_tensor.get(node, False)

    def probed(self) -> "_Probe":
        if self._probe is None:
            self._probe = self._run_on_meta()
        return self._probe

    def output(self) -> Any:
        """The model's output with stand-in tensors where the graph tells its structure, else the
        output of the run on meta."""
        stand_ins: Dict[Node, Any] = {}

        def stand_in(node: Node) -> Any:
            if node not in stand_ins:
                stand_ins[node] = self._stand_in(node, stand_in)
            return stand_ins[node]

        try:
            value = map_arg(self.gm.graph.output_node().args[0], stand_in)
        except _Unknown:
            return self.probed().result
        leaves = pytree.tree_leaves(value)
        made = {id(v) for v in stand_ins.values() if isinstance(v, torch.Tensor)}
        if not all(id(leaf) in made for leaf in leaves):
            return self.probed().result
        return value

    def _stand_in(self, node: Node, stand_in: Callable[[Node], Any]) -> Any:
        if self._known.get(node) is True:
            return torch.empty(0, device="meta")
        if node.op == "call_function" and isinstance(node.target, type) and _STATIC_KINDS:
            if all(self._known.get(arg) is True for arg in node.all_input_nodes):
                return node.target(*map_arg(node.args, stand_in), **map_arg(node.kwargs, stand_in))
        raise _Unknown(node.name)

    def _read_graph(self) -> Dict[Node, Optional[bool]]:
        known: Dict[Node, Optional[bool]] = {}
        sizes: Set[Node] = set()  # torch.Size values and their pieces
        for node in self.gm.graph.nodes:
            known[node] = self._rule(node, known, sizes)
        return known

    def _rule(self, node: Node, known: Dict[Node, Optional[bool]], sizes: Set[Node]) -> Optional[bool]:
        receiver = node.args[0] if node.args and isinstance(node.args[0], Node) else None
        if node.op == "placeholder":
            return True  # the non-tensor ones were fixed to constants before
        if node.op == "get_attr":
            return isinstance(_fetch(self.gm, node.target), torch.Tensor)
        if node.op == "call_module":
            module = self.gm.get_submodule(node.target)
            tensor_module = type(module).__module__ in _TENSOR_MODULE_FILES
            return True if tensor_module and not isinstance(module, _NOT_TENSOR_MODULES) else None
        if node.op == "call_method":
            if receiver is None or known.get(receiver) is not True:
                return None
            if node.target in _SIZE_METHODS:
                sizes.add(node)
                return False
            return True if node.target in _TENSOR_METHODS else None
        if node.op != "call_function":
            return None
        target = node.target
        if _is_guard(node) or target is pipe_split:
            return False
        if target is getattr and receiver is not None and known.get(receiver) is True:
            if node.args[1] in _SIZE_ATTRIBUTES:
                sizes.add(node)
                return False
            return None
        if target is operator.getitem and receiver is not None:
            if known.get(receiver) is True:
                return True
            if receiver in sizes:
                sizes.add(node)
                return False
            return None
        if target in _OPERATORS:
            if node.all_input_nodes and all(arg in sizes for arg in node.all_input_nodes):
                sizes.add(node)  # arithmetic on sizes and shape tuples: `(-1,) + x.shape[1:]`
                return False
            if any(not isinstance(arg, (Node, int, float, bool)) for arg in node.args) or node.kwargs:
                return None  # containers: `(a, b) + (c,)` is a tuple
            return True if any(known.get(arg) is True for arg in node.args if isinstance(arg, Node)) else None
        name = _torch_function_name(target)
        if name == "where":  # torch.where(condition) alone returns a tuple
            return True if len(node.args) + len(node.kwargs) == 3 else None
        return True if name in _TENSOR_FUNCTIONS else None


# --------------------------------------------------------------------------- choosing cuts


def _owner_paths(node: Node) -> List[str]:
    return list(node.meta.get("nn_module_stack", {}).keys())


_CONTAINERS = (nn.ModuleList, nn.Sequential, nn.ModuleDict)


class _Units:
    """Where each node sits in the module tree, at the levels cuts may respect.

    Level 0 is a block: a module held in a container (``layers.3``), or for models without one a
    child of the root. Level 1 is a part of a block (``layers.3.mlp``), level 2 a part of a part.
    """

    LEVELS = 3

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self._in_container: Dict[str, bool] = {}

    def _held_by_container(self, path: str) -> bool:
        cached = self._in_container.get(path)
        if cached is None:
            parent = path.rsplit(".", 1)[0] if "." in path else ""
            try:
                holder = self.root.get_submodule(parent)
            except AttributeError:
                holder = None
            cached = self._in_container[path] = isinstance(holder, _CONTAINERS)
        return cached

    def keys(self, node: Node) -> List[Tuple[str, ...]]:
        """The node's module path cut at each level (a shorter path where the node sits higher)."""
        paths = _owner_paths(node)
        if node.op == "call_module" and (not paths or paths[-1] != node.target):
            paths.append(node.target)
        block = next((depth for depth, path in enumerate(paths) if self._held_by_container(path)), 0)
        return [tuple(paths[: block + level + 1]) for level in range(self.LEVELS)]


# Beyond this many places to cut, a level is skipped (the search is quadratic in them).
_MAX_POINTS = 1500


def _best_cuts(weights: Sequence[float], candidates: Sequence[int], num_stages: int) -> Optional[List[int]]:
    """The ``num_stages - 1`` candidate positions minimising the sum of squared stage weights
    (dynamic programming over the candidates)."""
    totals = [0.0]
    for weight in weights:
        totals.append(totals[-1] + weight)
    inner = sorted(set(c for c in candidates if 0 < c < len(weights)))
    # Of candidates with nothing weighed between them keep the last (where the next piece begins):
    # the cost is the same and the table stays small.
    inner = [c for c, after in zip(inner, inner[1:] + [len(weights)]) if totals[c] != totals[after]]
    points = [0, *inner, len(weights)]
    if len(points) - 1 < num_stages or len(points) > _MAX_POINTS:
        return None
    prefix = [totals[p] for p in points]
    count, inf = len(points), float("inf")
    cost = [0.0] + [inf] * (count - 1)  # cost[j]: best cost of the stages so far ending at point j
    links = []
    for stage in range(1, num_stages + 1):
        new, back = [inf] * count, [0] * count
        for j in range(stage, count - (num_stages - stage)):
            end = prefix[j]
            new[j], back[j] = min((cost[i] + (end - prefix[i]) ** 2, i) for i in range(stage - 1, j))
        cost = new
        links.append(back)
    cuts, j = [], count - 1
    for back in reversed(links):
        j = back[j]
        cuts.append(points[j])
    return sorted(cuts)[1:]


def _stage_weights(weights: Sequence[float], cuts: Sequence[int]) -> List[float]:
    bounds = [0, *cuts, len(weights)]
    return [sum(weights[a:b]) for a, b in zip(bounds, bounds[1:])]


# The coarsest level whose heaviest stage is within this factor of the heaviest stage the finest
# level reaches wins: cuts between whole blocks pass fewer values along.
_COARSE_SLACK = 1.05


def _auto_cuts(
    nodes: Sequence[Node], weights: Sequence[float], root: nn.Module, num_stages: int
) -> List[int]:
    units = _Units(root)
    keys = [units.keys(node) for node in nodes]
    options = []
    for level in range(_Units.LEVELS):
        candidates = [i for i in range(1, len(nodes)) if keys[i][level] != keys[i - 1][level]]
        options.append((_best_cuts(weights, candidates, num_stages), len(candidates)))
    finest, pieces = options[-1]
    if finest is None:
        raise PipelineError(
            f"cannot cut the model into {num_stages} stages: it has only {pieces + 1} pieces between "
            "module boundaries; ask for fewer stages or mark cuts with split_spec / pipe_split()"
        )
    bound = _COARSE_SLACK * max(_stage_weights(weights, finest))
    return next(
        cuts for cuts, _ in options if cuts is not None and max(_stage_weights(weights, cuts)) <= bound
    )


def _param_weights(nodes: Sequence[Node], gm: GraphModule) -> List[float]:
    """Bytes of the parameters and buffers each node is the first to read."""
    seen: Set[int] = set()
    weights = []
    for node in nodes:
        tensors: Iterable[torch.Tensor] = ()
        if node.op == "get_attr":
            value = _fetch(gm, node.target)
            tensors = (value,) if isinstance(value, torch.Tensor) else ()
        elif node.op == "call_module":
            sub = gm.get_submodule(node.target)
            tensors = list(sub.parameters()) + list(sub.buffers())
        total = 0
        for tensor in tensors:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
        weights.append(float(total))
    return weights


def _fetch(root: nn.Module, target: str) -> Any:
    try:
        return _paths.resolve(root, target)
    except _paths.MissingAttribute as missing:
        raise missing.error from None


def _spec_cuts(nodes: Sequence[Node], split_spec: Mapping[str, Any], root: nn.Module) -> List[int]:
    """Positions (in ``nodes``) where the ``split_spec`` entries cut."""
    cuts = []
    for name, point in split_spec.items():
        kind = getattr(point, "name", None)
        if kind not in ("BEGINNING", "END"):
            raise PipelineError(
                f"split_spec[{name!r}] = {point!r}: use SplitPoint.BEGINNING or SplitPoint.END"
            )
        try:
            root.get_submodule(name)
        except AttributeError as error:
            raise PipelineError(
                f"split_spec names {name!r}, which is not a submodule of the model"
            ) from error
        inside = [
            i
            for i, node in enumerate(nodes)
            if any(p == name or p.startswith(name + ".") for p in _owner_paths(node))
            or (
                node.op in ("call_module", "get_attr")
                and (node.target == name or node.target.startswith(name + "."))
            )
        ]
        if not inside:
            raise PipelineError(f"split_spec names {name!r}, but the captured forward never runs it")
        cuts.append(inside[0] if kind == "BEGINNING" else inside[-1] + 1)
    return cuts


# --------------------------------------------------------------------------- building stages


_HOISTABLE = (operator.getitem, getattr)


class _Split:
    """Assigns every node to a stage and works out what each stage receives and returns."""

    def __init__(
        self,
        graph: Graph,
        gm: GraphModule,
        stage_of: Dict[Node, int],
        is_tensor: _Kinds,
        inputs: List[Node],
        num_stages: int,
    ) -> None:
        self.graph, self.gm, self.stage_of, self.is_tensor = graph, gm, stage_of, is_tensor
        self.inputs = inputs
        self.order = {node: i for i, node in enumerate(graph.nodes)}
        for node in inputs:
            self.stage_of[node] = -1
        self.num_stages = num_stages
        self.copies: List[Set[Node]] = [set() for _ in range(self.num_stages)]

    def _is_parameter_attr(self, node: Node) -> bool:
        return node.op == "get_attr" and isinstance(_fetch(self.gm, node.target), nn.Parameter)

    def _available_at(self, node: Node, stage: int) -> bool:
        return all(self.stage_of[arg] <= stage for arg in node.all_input_nodes)

    def hoist(self) -> None:
        """Move ``v[i]`` / ``v.attr`` next to a non-tensor ``v`` so the picked tensor crosses, not ``v``."""
        for node in self.graph.nodes:
            if node.op != "call_function" or node.target not in _HOISTABLE or node not in self.stage_of:
                continue
            source = node.args[0] if node.args else None
            if not isinstance(source, Node):
                continue
            home = max(self.stage_of[source], 0)
            if home < self.stage_of[node] and not self.is_tensor(source) and self._available_at(node, home):
                self.stage_of[node] = home

    def _parameters_of(self, node: Node) -> List[Tuple[str, nn.Parameter]]:
        if node.op == "call_module":
            return list(self.gm.get_submodule(node.target).named_parameters(prefix=node.target))
        if self._is_parameter_attr(node):
            return [(node.target, _fetch(self.gm, node.target))]
        return []

    def place_attributes(self) -> None:
        """Put each parameter read by ``get_attr`` in the first stage that uses it (also through a
        module call there); later stages receive it as an activation, so its gradient flows back to
        the one copy. Other attributes (buffers, constants) are copied into every stage reading them."""
        home: Dict[int, int] = {}
        for node, stage in self.stage_of.items():
            if node.op == "call_module":
                for _, parameter in self._parameters_of(node):
                    home[id(parameter)] = min(home.get(id(parameter), stage), stage)
        attributes = [n for n in self.graph.nodes if n.op == "get_attr"]
        user_stages = {
            node: sorted({self.stage_of[user] for user in node.users if user in self.stage_of})
            for node in attributes
        }
        for node in attributes:
            if self._is_parameter_attr(node) and user_stages[node]:
                key = id(_fetch(self.gm, node.target))
                home[key] = min(home.get(key, user_stages[node][0]), user_stages[node][0])
        for node in attributes:
            stages = user_stages[node]
            if not stages:
                continue
            if self._is_parameter_attr(node):
                self.stage_of[node] = home[id(_fetch(self.gm, node.target))]
                continue
            self.stage_of[node] = stages[0]
            for stage in stages[1:]:
                self.copies[stage].add(node)

    def rematerialise(self) -> None:
        """Copy the Python values (sizes, flags) a stage reads from earlier stages into it."""
        for stage in range(self.num_stages):
            pending = [n for n, s in self.stage_of.items() if s == stage] + list(self.copies[stage])
            while pending:
                node = pending.pop()
                for source in node.all_input_nodes:
                    if self.stage_of[source] >= stage or source in self.copies[stage]:
                        continue
                    if self.is_tensor(source):
                        continue
                    if source.op not in ("call_function", "call_method", "get_attr") or _is_guard(source):
                        raise PipelineError(
                            f"node {source.name} ({source.op} {source.target}) makes a "
                            f"non-tensor value that stage "
                            f"{stage} reads (in {node.name}); only tensors travel between stages and this "
                            "one cannot be recomputed there. Move the cut with split_spec or pipe_split()"
                        )
                    self.copies[stage].add(source)
                    pending.append(source)

    def members(self, stage: int) -> List[Node]:
        own = [n for n, s in self.stage_of.items() if s == stage]
        return sorted(set(own) | self.copies[stage], key=self.order.__getitem__)

    def carried(self) -> List[List[Node]]:
        """``carried[s]``: the tensors stage ``s`` receives (stage 0: the model's tensor inputs)."""
        needs: List[Set[Node]] = []
        for stage in range(self.num_stages):
            members = set(self.members(stage))
            outside: Set[Node] = set()
            for node in members:
                outside.update(arg for arg in node.all_input_nodes if arg not in members)
            if stage == self.num_stages - 1:
                output = self.graph.output_node()
                outside.update(arg for arg in output.all_input_nodes if arg not in members)
            needs.append(outside)
        carried: List[List[Node]] = [list(self.inputs)]
        for stage in range(1, self.num_stages):
            wanted = set().union(*needs[stage:])
            crossing = [n for n in wanted if self.stage_of[n] < stage]
            carried.append(sorted(crossing, key=self.order.__getitem__))
        return carried

    def check_parameters(self) -> None:
        """Refuse a parameter that two stages would both hold (their gradients would diverge)."""
        holders: Dict[int, Tuple[str, int]] = {}
        for stage in range(self.num_stages):
            for node in self.members(stage):
                for name, parameter in self._parameters_of(node):
                    first = holders.setdefault(id(parameter), (name, stage))
                    if first[1] != stage:
                        raise PipelineError(
                            f"parameter {first[0]!r} (stage {first[1]}) is also used as {name!r} by the "
                            f"module call {node.name} in stage {stage}; a module call needs its parameters "
                            "in its own stage, and two copies would train apart. Untie the parameter "
                            "(e.g. tie_word_embeddings=False), read it as an attribute in the later stage "
                            "(F.linear(x, self.embed.weight) is passed along), or keep both users in one stage"
                        )


def _output_leaves(value: Any) -> Any:
    """The tensors inside a model's output: one tensor alone, else a tuple (the last stage returns this)."""
    leaves = pytree.tree_leaves(value)
    return leaves[0] if len(leaves) == 1 else tuple(leaves)


def _output_spec(output: Any) -> Optional[pytree.TreeSpec]:
    """None when the model already returns a tensor or a tuple of tensors, else its output's structure."""
    if isinstance(output, torch.Tensor) or (
        type(output) is tuple and all(isinstance(item, torch.Tensor) for item in output)
    ):
        return None
    leaves, spec = pytree.tree_flatten(output)
    odd = [type(leaf).__name__ for leaf in leaves if not isinstance(leaf, torch.Tensor)]
    if odd or not leaves:
        raise PipelineError(
            f"the model returns a {type(output).__name__} holding {odd or 'no tensors'}; the last stage "
            "can return only tensors (torch's schedules pass nothing else). For a transformers model that"
            " returns its cache, pass use_cache=False in mb_kwargs (training does not use the cache);"
            " otherwise make forward return the tensors you need (e.g. the logits)"
        )
    return spec


def _stage_graph(split: _Split, stage: int, carried: List[List[Node]], flatten_output: bool) -> Graph:
    graph = Graph()
    env: Dict[Node, Node] = {}
    for node in carried[stage]:
        if stage == 0:
            env[node] = graph.node_copy(node)
        else:
            env[node] = graph.placeholder(node.name)
    for node in split.members(stage):
        env[node] = graph.node_copy(node, env.__getitem__)
    if stage == split.num_stages - 1:
        result = map_arg(split.graph.output_node().args[0], env.__getitem__)
        if flatten_output:
            result = graph.call_function(_output_leaves, (result,))
        graph.output(result)
    else:
        graph.output(tuple(env[node] for node in carried[stage + 1]))
    graph.lint()
    return graph


def _driver_graph(inputs: List[Node], carried: List[List[Node]], num_stages: int) -> Graph:
    """The graph of ``split_gm``: each stage called on what the one before returned."""
    graph = Graph()
    values = [graph.node_copy(node) for node in inputs]
    result: Any = None
    for stage in range(num_stages):
        result = graph.call_module(f"submod_{stage}", tuple(values))
        if stage < num_stages - 1:
            values = [
                graph.call_function(operator.getitem, (result, i)) for i in range(len(carried[stage + 1]))
            ]
    graph.output(result)
    return graph


# --------------------------------------------------------------------------- entry point


_BALANCES = ("params", "flops")


def pipeline(
    module: nn.Module,
    mb_args: Union[Tuple[Any, ...], List[Any], torch.Tensor] = (),
    mb_kwargs: Optional[Dict[str, Any]] = None,
    *,
    num_stages: Optional[int] = None,
    split_spec: Optional[Mapping[str, Any]] = None,
    balance: str = "params",
) -> Pipe:
    """Capture ``module`` on one microbatch and split it into pipeline stages.

    Cuts come from ``split_spec`` (``{"layers.4": SplitPoint.BEGINNING}``) and ``pipe_split()``
    calls in ``forward``; with neither, ``num_stages`` stages are cut between blocks so that they
    hold about equal parameter bytes (``balance="params"``) or FLOPs (``balance="flops"``, from a run
    on the meta device). Non-tensor inputs (``use_cache=False``) are fixed to the given values.
    """
    if balance not in _BALANCES:
        raise ValueError(f"balance={balance!r}: choose one of {_BALANCES}")
    if num_stages is not None and num_stages < 1:
        raise ValueError(f"num_stages={num_stages}: need at least one stage")
    mb_args = (mb_args,) if isinstance(mb_args, torch.Tensor) else tuple(mb_args)
    mb_kwargs = dict(mb_kwargs or {})
    gm = capture(module, mb_args, mb_kwargs).graph_module
    graph = gm.graph
    inputs = _specialize_inputs(graph, _bind_inputs(module, mb_args, mb_kwargs))
    nodes = [n for n in graph.nodes if n.op not in ("placeholder", "output")]

    markers = [n for n in nodes if n.op == "call_function" and n.target is pipe_split]
    cuts: List[int] = []
    for marker in markers:
        cuts.append(nodes.index(marker) - len(cuts))  # the marker itself leaves the list
        nodes.remove(marker)
        graph.erase_node(marker)
    if split_spec:
        cuts.extend(_spec_cuts(nodes, split_spec, module))
    explicit = bool(cuts)
    examples = [_example_input(n, mb_args, mb_kwargs, module) for n in inputs]
    kinds = _Kinds(gm, lambda: _probe(gm, examples, balance == "flops"))
    if not explicit:
        if num_stages is None:
            raise PipelineError(
                "say where to cut: pass num_stages, split_spec, or call pipe_split() in forward"
            )
        if num_stages == 1:
            cuts = []
        else:
            if balance == "flops":
                flops = kinds.probed().flops
                weights = [float(flops.get(n, 0)) for n in nodes]
            else:
                weights = _param_weights(nodes, gm)
            cuts = _auto_cuts(nodes, weights, module, num_stages)
    cuts = sorted(cuts)
    if explicit:
        empty = [c for c in cuts if c <= 0 or c >= len(nodes)] or [
            a for a, b in zip(cuts, cuts[1:]) if a == b
        ]
        if empty:
            raise PipelineError(
                f"split points {split_spec or {}} / pipe_split() calls leave a stage with no operations"
            )
        if num_stages is not None and num_stages != len(cuts) + 1:
            raise PipelineError(f"num_stages={num_stages}, but the split points make {len(cuts) + 1} stages")
    stage_of = {node: bisect.bisect_right(cuts, i) for i, node in enumerate(nodes)}
    split = _Split(graph, gm, stage_of, kinds, inputs, len(cuts) + 1)
    split.hoist()
    split.place_attributes()
    split.rematerialise()
    split.check_parameters()
    carried = split.carried()
    for stage in range(1, split.num_stages):
        if not carried[stage]:
            raise PipelineError(f"stage {stage} receives nothing from stage {stage - 1}; move the cut")
    spec = _output_spec(kinds.output())
    stages = {
        f"submod_{stage}": GraphModule(
            gm, _stage_graph(split, stage, carried, spec is not None), f"PipeStage{stage}"
        )
        for stage in range(split.num_stages)
    }
    holder = nn.Module()
    for name, stage_module in stages.items():
        holder.add_module(name, stage_module)
    split_gm = GraphModule(holder, _driver_graph(inputs, carried, split.num_stages), "PipeSplit")
    return Pipe(split_gm, split.num_stages, [n.target for n in inputs], spec)


def _example_input(node: Node, mb_args: Tuple[Any, ...], mb_kwargs: Dict[str, Any], module: nn.Module) -> Any:
    return _input_value(node, _bind_inputs(module, mb_args, mb_kwargs))
