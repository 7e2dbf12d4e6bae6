"""Inference-time rewrites: Conv/Linear + BatchNorm fusion, dropout removal and the MKL-DNN
layout pass of ``optimize_for_inference``."""

from __future__ import annotations

import copy
import operator
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple, Type

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from fxkit import _foreign, _paths
from fxkit.graph import Graph
from fxkit.graph_module import GraphModule
from fxkit.interpreter import Interpreter
from fxkit.node import Node
from fxkit.tracer import Tracer, symbolic_trace

__all__ = [
    "matches_module_pattern", "replace_node_module", "fuse", "remove_dropout", "extract_subgraph",
    "modules_to_mkldnn", "reset_modules", "MklSubgraph", "gen_mkl_autotuner", "use_mkl_length",
    "UnionFind", "optimize_for_inference",
]  # fmt: skip

# (producer, batch norm) pairs fuse() folds together, and how.
_FUSIBLE_PAIRS: Tuple[Tuple[Type[nn.Module], Type[nn.Module]], ...] = (
    (nn.Conv1d, nn.BatchNorm1d),
    (nn.Conv2d, nn.BatchNorm2d),
    (nn.Conv3d, nn.BatchNorm3d),
    (nn.Linear, nn.BatchNorm1d),
)


def _parent_name(target: str) -> Tuple[str, str]:
    """``'a.b.c'`` -> ``('a.b', 'c')``."""
    return _paths.split_parent(target)


def matches_module_pattern(pattern: Iterable[Type], node: Node, modules: Dict[str, Any]) -> bool:
    """True when ``node`` and its first argument are call_module nodes whose modules have exactly
    the types in ``pattern`` (first argument first)."""
    if len(node.args) == 0:
        return False
    for expected_type, current in zip(pattern, (node.args[0], node)):
        if not isinstance(current, Node) or current.op != "call_module":
            return False
        if not isinstance(current.target, str) or current.target not in modules:
            return False
        if type(modules[current.target]) is not expected_type:
            return False
    return True


def replace_node_module(node: Node, modules: Dict[str, Any], new_module: nn.Module) -> None:
    """Install ``new_module`` at ``node.target`` in the module tree (and in ``modules``)."""
    _foreign.reject(node, "replace_node_module")
    assert isinstance(node.target, str)
    parent_name, name = _parent_name(node.target)
    modules[node.target] = new_module
    setattr(modules[parent_name], name, new_module)


def _check_eval(producer_name: str, producer: nn.Module, norm_name: str, norm: nn.Module) -> None:
    for name, module in ((producer_name, producer), (norm_name, norm)):
        if module.training:
            raise ValueError(
                f"fuse: cannot fold BatchNorm '{norm_name}' into '{producer_name}' because "
                f"'{name}' is in training mode. Fusion bakes the BatchNorm running statistics into "
                "the weights, which only matches the unfused model in eval mode: call model.eval() "
                "before fuse()."
            )


def fuse(model: nn.Module, inplace: bool = False, no_trace: bool = False) -> GraphModule:
    """Fold every BatchNorm that directly follows a Conv1d/2d/3d or Linear (and is its only
    user) into that layer's weights. For inference: the model must be in eval mode.

    ``inplace=False`` works on a deep copy; ``no_trace=True`` uses ``model`` as is when it is
    already a GraphModule.
    """
    if inplace:
        _foreign.reject(model, "fuse(inplace=True)")  # a converted copy would be fused instead
    model = _foreign.convert(model)
    if not inplace:
        model = copy.deepcopy(model)
    traced = model if (no_trace and isinstance(model, GraphModule)) else symbolic_trace(model)
    modules = dict(traced.named_modules())
    new_graph = copy.deepcopy(traced.graph)
    pairs = []
    for pattern in _FUSIBLE_PAIRS:
        for node in new_graph.nodes:
            if not matches_module_pattern(pattern, node, modules):
                continue
            producer_node = node.args[0]
            if len(producer_node.users) > 1:
                continue  # the un-normalized output is read elsewhere too
            if not modules[node.target].track_running_stats:
                continue  # no running statistics to fold
            pairs.append((producer_node, node))
    # Check every pair before changing anything, so a refusal leaves the model untouched.
    for producer_node, node in pairs:
        _check_eval(producer_node.target, modules[producer_node.target], node.target, modules[node.target])
    for producer_node, node in pairs:
        producer, norm = modules[producer_node.target], modules[node.target]
        if isinstance(producer, nn.Linear):
            fused = fuse_linear_bn_eval(producer, norm)
        else:
            fused = fuse_conv_bn_eval(producer, norm)
        replace_node_module(producer_node, modules, fused)
        node.replace_all_uses_with(producer_node)
        new_graph.erase_node(node)
    return GraphModule(traced, new_graph)


def remove_dropout(model: nn.Module) -> GraphModule:
    """A traced version of ``model`` in which every ``nn.Dropout`` call is removed (it forwards its
    input). The model itself is left as is; the result shares its parameters."""
    model = _foreign.convert(model)  # only read: the result is a new module
    traced = symbolic_trace(model)
    modules = dict(traced.named_modules())
    for node in list(traced.graph.nodes):
        if node.op == "call_module" and isinstance(modules.get(node.target), nn.Dropout):
            if len(node.args) != 1 or node.kwargs:
                raise ValueError(
                    f"remove_dropout: dropout node '{node.name}' should take its input as its one "
                    f"positional argument, got args={node.args} kwargs={node.kwargs}"
                )
            node.replace_all_uses_with(node.args[0])
            traced.graph.erase_node(node)
    traced.delete_all_unused_submodules()
    traced.recompile()
    return traced


def extract_subgraph(
    orig_module: nn.Module, nodes: List[Node], inputs: List[Node], outputs: List[Node]
) -> GraphModule:
    """A GraphModule that runs ``nodes`` (in the order given) of a larger graph: each node of
    ``inputs`` becomes a placeholder of the same name and the values of ``outputs`` are returned
    as a list. Submodules are taken from ``orig_module``."""
    orig_module = _foreign.convert(orig_module)  # only read for submodules, which its twin shares
    _foreign.reject_all(nodes, "extract_subgraph")
    graph = Graph()
    env: Dict[Node, Node] = {}
    for node in inputs:
        env[node] = graph.placeholder(node.name)
    for node in nodes:
        env[node] = graph.node_copy(node, lambda arg: env[arg])
    graph.output([env[node] for node in outputs])
    graph.lint()
    return GraphModule(orig_module, graph)


# ---------------------------------------------------------------------------------------------
# MKL-DNN layout pass. Operators below run on MKL-DNN (opaque layout) tensors; a region of them
# is entered with ``to_mkldnn`` and left with ``to_dense``, and kept only when a heuristic says
# the region is worth the two conversions.


def _mkldnn_map() -> Dict[Type[nn.Module], Callable[[nn.Module, torch.dtype], nn.Module]]:
    """Module types with an MKL-DNN counterpart, and how to build it (from the module and a
    dtype). Built on first use: importing torch.utils.mkldnn compiles TorchScript classes and
    warns, too costly for ``import fxkit``."""
    if "mkldnn_map" not in globals():
        import torch.utils.mkldnn as th_mkldnn

        globals()["mkldnn_map"] = {
            nn.Conv2d: th_mkldnn.MkldnnConv2d,
            nn.Linear: th_mkldnn.MkldnnLinear,
            nn.BatchNorm2d: lambda module, _dtype: th_mkldnn.MkldnnBatchNorm(module),
        }
    return globals()["mkldnn_map"]


def __getattr__(name: str) -> Any:
    if name == "mkldnn_map":
        return _mkldnn_map()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Modules and functions that accept and return MKL-DNN tensors.
mkldnn_supported: List[Any] = [
    nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
    torch.relu, torch.transpose, torch.sigmoid, F.relu, F.avg_pool2d, F.adaptive_avg_pool2d,
]  # fmt: skip

# Functions that run on MKL-DNN tensors when their inputs already are (and stay dense otherwise).
mkldnn_supported_unknown: List[Any] = [operator.add, operator.mul]


def modules_to_mkldnn(nodes: List[Node], modules: Dict[str, nn.Module]) -> Dict[nn.Module, nn.Module]:
    """Swap each module called by ``nodes`` that has an MKL-DNN version (see ``mkldnn_map``) for
    that version, in the module tree and in ``modules``. Returns {new module: original module},
    the map ``reset_modules`` undoes the swap with."""
    _foreign.reject_all(nodes, "modules_to_mkldnn")
    old_modules: Dict[nn.Module, nn.Module] = {}
    for node in nodes:
        if node.op != "call_module":
            continue
        assert isinstance(node.target, str)
        current = modules[node.target]
        make = _mkldnn_map().get(type(current))
        if make is not None:
            new_module = make(current, torch.float)
            replace_node_module(node, modules, new_module)
            old_modules[new_module] = current
    return old_modules


def reset_modules(
    nodes: Iterable[Node], modules: Dict[str, nn.Module], old_modules: Dict[nn.Module, nn.Module]
) -> None:
    """Put back the original module of each call_module node in ``nodes`` that
    ``modules_to_mkldnn`` swapped (``old_modules`` is its result)."""
    _foreign.reject_all(nodes, "reset_modules")
    for node in nodes:
        if node.op == "call_module":
            assert isinstance(node.target, str)
            current = modules[node.target]
            if current in old_modules:
                replace_node_module(node, modules, old_modules[current])


class MklSubgraph:
    """One connected MKL-DNN region of ``fx_graph``: the operators in it (``nodes``), the
    ``to_mkldnn`` conversions entering it (``start_nodes``) and the ``to_dense`` conversions
    leaving it (``end_nodes``), each in graph order."""

    def __init__(self, fx_graph: Graph) -> None:
        self.fx_graph = fx_graph
        self.nodes: List[Node] = []
        self.start_nodes: List[Node] = []
        self.end_nodes: List[Node] = []


def use_mkl_length(graph: MklSubgraph) -> bool:
    """Heuristic for ``optimize_for_inference``: keep a region in MKL-DNN layout when it has more
    than two operators (short regions rarely pay for their layout conversions)."""
    return len(graph.nodes) > 2


class UnionFind:
    """Disjoint sets over ``0 .. n-1`` (union by size, path compression). An element belongs to
    no set until ``make_set`` is called on it."""

    def __init__(self, n: int) -> None:
        self.parent: List[Optional[int]] = [None] * n
        self.size: List[int] = [0] * n

    def make_set(self, v: int) -> None:
        self.parent[v] = v
        self.size[v] = 1

    def find(self, v: int) -> int:
        root = v
        while self.parent[root] != root:
            parent = self.parent[root]
            assert parent is not None, f"UnionFind: {v} is in no set; call make_set({v}) first"
            root = parent
        while self.parent[v] != root:  # path compression
            self.parent[v], v = root, self.parent[v]  # type: ignore[assignment]
        return root

    def join(self, a: int, b: int) -> Optional[int]:
        """Merge the sets of ``a`` and ``b``; returns the root when they were already one set."""
        # The larger set's root stays (the first on a tie): trees stay shallow.
        keep, merged = sorted((self.find(a), self.find(b)), key=lambda root: -self.size[root])
        if keep == merged:
            return keep
        self.parent[merged], self.size[keep] = keep, self.size[keep] + self.size[merged]
        return None


def _is_conversion(node: Any, method: str) -> bool:
    return isinstance(node, Node) and node.op == "call_method" and node.target == method


class _RecordValues(Interpreter):
    """Runs a module and keeps every node's value."""

    def __init__(self, module: GraphModule) -> None:
        super().__init__(module, garbage_collect_values=False)
        self.values: Dict[Node, Any] = {}

    def run_node(self, n: Node) -> Any:
        self.values[n] = result = super().run_node(n)
        return result


def _time(fn: Callable[[], Any], iters: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    return time.perf_counter() - start


def gen_mkl_autotuner(
    example_inputs: List[torch.Tensor], iters: int = 10, warmup: int = 1
) -> Callable[[MklSubgraph], bool]:
    """A heuristic for ``optimize_for_inference`` that times each region on the values it sees
    when the model runs on ``example_inputs``: in MKL-DNN layout (conversions included) against
    the dense original, and keeps the faster. Timing makes its answers machine dependent.

    ``optimize_for_inference(model, {"mkldnn_layout_optimize": {"heuristic": gen_mkl_autotuner(inputs)}})``
    """
    recorded: Dict[int, Dict[Node, Any]] = {}

    def use_mkl_heuristic(graph: MklSubgraph) -> bool:
        module = graph.fx_graph.owning_module
        if module is None:
            raise RuntimeError("gen_mkl_autotuner: the region's graph has no owning GraphModule to run")
        if id(graph.fx_graph) not in recorded:
            recorder = _RecordValues(module)
            with torch.no_grad():
                recorder.run(*example_inputs)
            recorded[id(graph.fx_graph)] = recorder.values
        values = recorded[id(graph.fx_graph)]
        inputs = [values[node].to_dense() for node in graph.start_nodes]
        outputs = [node.args[0] for node in graph.end_nodes]
        mkl = extract_subgraph(module, graph.nodes, graph.start_nodes, outputs)
        dense = extract_subgraph(module, graph.nodes, graph.start_nodes, outputs)
        reset_modules(dense.graph.nodes, dict(dense.named_modules()), getattr(graph, "_old_modules", {}))

        def run_mkl() -> None:
            for out in mkl(*[value.to_mkldnn() for value in inputs]):
                out.to_dense()

        with torch.no_grad():
            mkl_time = _time(run_mkl, iters, warmup)
            dense_time = _time(lambda: dense(*inputs), iters, warmup)
        return mkl_time < dense_time

    return use_mkl_heuristic


_DEFAULT_PASS_CONFIG: Dict[str, Any] = {
    "conv_bn_fuse": True,
    "remove_dropout": True,
    "mkldnn_layout_optimize": {"heuristic": use_mkl_length},
}


def optimize_for_inference(
    model: nn.Module, pass_config: Optional[Dict[str, Any]] = None, tracer: Type[Tracer] = Tracer
) -> nn.Module:
    """Rewrite ``model`` for faster CPU inference: fold BatchNorm into the preceding Conv/Linear
    (``fuse``), drop ``nn.Dropout`` calls (``remove_dropout``), then run connected regions of
    MKL-DNN capable operators in MKL-DNN layout, converting at their borders.

    ``pass_config`` overrides entries of the defaults ``{"conv_bn_fuse": True, "remove_dropout":
    True, "mkldnn_layout_optimize": {"heuristic": use_mkl_length}}``. The heuristic receives each
    region as an ``MklSubgraph`` and returns whether to keep it in MKL-DNN layout;
    ``"mkldnn_layout_optimize": False`` skips the layout pass (then the model is returned as the
    first two passes left it). ``tracer`` is the Tracer class the layout pass traces with. The
    model is not modified. The pass assumes no two values alias each other.
    """
    model = _foreign.convert(model)  # only read: the result is a new module
    config = {**_DEFAULT_PASS_CONFIG, **(pass_config or {})}
    if config["conv_bn_fuse"]:
        model = fuse(model)
    if config["remove_dropout"]:
        model = remove_dropout(model)
    layout_config = config["mkldnn_layout_optimize"]
    if layout_config is False:
        return model
    if not isinstance(layout_config, dict):
        raise RuntimeError(
            "mkldnn_layout_optimize config is not a dict: pass False to skip the pass or "
            "{'heuristic': use_mkl_length} (any function MklSubgraph -> bool)"
        )
    if "heuristic" not in layout_config:
        raise RuntimeError(
            "Heuristic not found in mkldnn_layout_optimize config: add a 'heuristic' entry, "
            "e.g. {'heuristic': use_mkl_length}"
        )
    use_mkl_heuristic = layout_config["heuristic"]

    active_tracer = tracer()
    graph = active_tracer.trace(model)
    # A fresh GraphModule has its own module containers, so swapping modules below never
    # touches ``model``.
    fx_model = GraphModule(active_tracer.root, graph)
    modules = dict(fx_model.named_modules())

    converted, conversions = _insert_layout_conversions(graph, modules)
    old_modules = modules_to_mkldnn(converted, modules)
    _drop_redundant_conversions(graph, conversions)
    for region in _mkldnn_regions(graph, converted, conversions):
        region._old_modules = old_modules  # for gen_mkl_autotuner's dense timing
        if not use_mkl_heuristic(region):
            for node in region.start_nodes + region.end_nodes:
                node.replace_all_uses_with(node.args[0])
                graph.erase_node(node)
            reset_modules(region.nodes, modules, old_modules)
    graph.lint()
    fx_model.recompile()
    return fx_model


def _runs_on_mkldnn(node: Node, modules: Dict[str, nn.Module], conversions: Set[Node]) -> bool:
    """Whether ``node`` takes (and returns) MKL-DNN tensors for its tensor arguments."""
    if node.kwargs and any(isinstance(value, Node) for value in node.kwargs.values()):
        return False  # only positional inputs are converted
    if not any(isinstance(arg, Node) for arg in node.args):
        return False
    if node.op == "call_module":
        return type(modules.get(node.target)) in mkldnn_supported  # type: ignore[arg-type]
    if node.op != "call_function":
        return False
    if any(node.target is supported for supported in mkldnn_supported):
        return True
    if not any(node.target is unknown for unknown in mkldnn_supported_unknown):
        return False
    # add/mul follow their inputs: MKL-DNN when an input already is. MKL-DNN add takes no
    # Python numbers (mul does), so such an add stays dense.
    if not any(arg in conversions for arg in node.args if isinstance(arg, Node)):
        return False
    return node.target is operator.mul or all(isinstance(arg, Node) for arg in node.args)


def _insert_layout_conversions(graph: Graph, modules: Dict[str, nn.Module]) -> Tuple[List[Node], Set[Node]]:
    """Wrap every MKL-DNN capable node in ``to_mkldnn`` (per tensor argument) and ``to_dense``
    (of its result). Returns the wrapped nodes and the conversion nodes added."""
    converted: List[Node] = []
    conversions: Set[Node] = set()
    for node in list(graph.nodes):
        if not _runs_on_mkldnn(node, modules, conversions):
            continue
        new_args = []
        with graph.inserting_before(node):
            for arg in node.args:
                if isinstance(arg, Node):
                    arg = graph.call_method("to_mkldnn", (arg,))
                    conversions.add(arg)
                new_args.append(arg)
        node.args = tuple(new_args)
        with graph.inserting_after(node):
            dense = graph.call_method("to_dense", (node,))
        conversions.add(dense)
        node.replace_all_uses_with(dense, delete_user_cb=lambda user, dense=dense: user is not dense)
        converted.append(node)
    return converted, conversions


def _drop_redundant_conversions(graph: Graph, conversions: Set[Node]) -> None:
    """``to_mkldnn(to_dense(x))`` is ``x``: remove such pairs (a ``to_dense`` stays while a dense
    user still reads it)."""
    for node in list(graph.nodes):
        if node in conversions and _is_conversion(node, "to_mkldnn") and node.args[0] in conversions:
            dense = node.args[0]
            node.replace_all_uses_with(dense.args[0])
            graph.erase_node(node)
            conversions.discard(node)
            if not dense.users:
                graph.erase_node(dense)
                conversions.discard(dense)


def _mkldnn_regions(graph: Graph, converted: List[Node], conversions: Set[Node]) -> List[MklSubgraph]:
    """Group the converted nodes and their conversions into connected regions, in graph order."""
    converted_set = set(converted)
    members = [node for node in graph.nodes if node in converted_set or node in conversions]
    index = {node: i for i, node in enumerate(members)}
    sets = UnionFind(len(members))
    for i in range(len(members)):
        sets.make_set(i)
    for i, node in enumerate(members):
        if _is_conversion(node, "to_mkldnn"):
            continue  # its input is dense: outside the region
        for arg in node.args:
            if isinstance(arg, Node) and arg in index:
                sets.join(index[arg], i)
    regions: Dict[int, MklSubgraph] = {}
    for i, node in enumerate(members):
        region = regions.setdefault(sets.find(i), MklSubgraph(graph))
        if _is_conversion(node, "to_mkldnn"):
            region.start_nodes.append(node)
        elif node in converted_set:
            region.nodes.append(node)
        else:
            region.end_nodes.append(node)
    return list(regions.values())
