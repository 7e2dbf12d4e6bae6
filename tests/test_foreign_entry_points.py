"""Every fxkit entry point that takes a GraphModule, Graph or Node, given torch.fx's: it either
converts the object (and then answers as it does for the fxkit twin) or refuses it with a
TypeError naming ``fxkit.interop.from_torch_fx``. A discovery check keeps the table complete."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import tempfile
from typing import Any, Callable, Dict, List, Tuple

import pytest
import torch
import torch.fx
from torch import nn

import fxkit
import fxkit.experimental
import fxkit.passes
import fxkit.passes.graph_transform_observer
from fxkit.experimental import accelerator_partitioner as accel
from fxkit.experimental import const_fold, merge_matmul, meta_tracer, normalize, optimization, rewriter
from fxkit.experimental import partitioner_utils as putils
from fxkit.experimental.proxy_tensor import make_fx
from fxkit.experimental.schema_type_annotation import AnnotateTypesWithSchema
from fxkit.interop import from_torch_fx
from fxkit.passes import (
    annotate_getitem_nodes,
    cse,
    dce,
    fake_tensor_prop,
    graph_manipulation,
    net_min_base,
    param_fetch,
    profiler,
    reinplace,
    shape_prop,
    split_module,
    split_utils,
    splitter_base,
    tools_common,
)
from fxkit.passes import pass_manager as legacy_pass_manager
from fxkit.passes.dialect.common import cse_pass
from fxkit.passes.graph_drawer import FxGraphDrawer
from fxkit.passes.infra import partitioner, pass_base
from fxkit.passes.infra import pass_manager as infra_pass_manager
from fxkit.passes.operator_support import OperatorSupport
from fxkit.passes.utils import common, fuser_utils, source_matcher_utils
from fxkit.passes.utils.matcher_utils import SubgraphMatcher
from fxkit.passes.utils.matcher_with_name_node_map_utils import SubgraphMatcherWithNameNodeMap

FROM_TORCH_FX = r"fxkit\.interop\.from_torch_fx"


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.drop(torch.relu(self.linear(x)))
        return torch.matmul(x, y.t()) + torch.matmul(x, x.t())


def _torch_gm() -> torch.fx.GraphModule:
    torch.manual_seed(0)
    return torch.fx.symbolic_trace(Small().eval())


def _x() -> torch.Tensor:
    return torch.arange(8.0).reshape(2, 4) / 8


def _nodes(gm: Any) -> List[Any]:
    return list(gm.graph.nodes)


def _call_node(gm: Any) -> Any:
    return next(node for node in gm.graph.nodes if node.op == "call_module")


class _Noop(pass_base.PassBase):
    def call(self, graph_module: fxkit.GraphModule) -> pass_base.PassResult:
        return pass_base.PassResult(graph_module, False)


def _own_subgraph() -> fxkit.Graph:
    graph = fxkit.Graph()
    graph.output(graph.get_attr("linear.weight"))
    return graph


_META_X = {"x": torch.empty(2, 4, device="meta")}


def _tagged(gm: Any) -> Any:
    """``gm`` with its call nodes tagged "a" up to the first ``call_module``, "b" after it."""
    tag = "a"
    for node in gm.graph.nodes:
        node.tag = tag
        if node.op == "call_module":
            tag = "b"
    return gm


# Entry points that convert a torch.fx object: each call gets a torch.fx GraphModule or its fxkit
# twin and must answer the same for both.
CONVERTS: Dict[str, Callable[[Any], Any]] = {
    # (runs the twin, then writes its metadata onto the torch.fx nodes: see test_shape_prop.py)
    "fxkit.passes.shape_prop:ShapeProp": lambda gm: shape_prop.ShapeProp(gm).propagate(_x()),
    "fxkit.interpreter:Interpreter": lambda gm: fxkit.Interpreter(gm).run(_x()),
    "fxkit.interpreter:Transformer": lambda gm: fxkit.Transformer(gm).transform(),
    "fxkit.passes.split_module:split_module": lambda gm: split_module.split_module(gm, gm, lambda node: 0),
    "fxkit.passes.graph_drawer:FxGraphDrawer": lambda gm: (
        FxGraphDrawer(gm, "small").get_dot_graph().to_string()
    ),
    "fxkit.passes.profiler:ProfilingInterpreter": lambda gm: profiler.ProfilingInterpreter(gm).run(_x()),
    "fxkit.passes.splitter_base:generate_inputs_for_submodules": lambda gm: (
        splitter_base.generate_inputs_for_submodules(gm, [_x()], ["linear"])
    ),
    "fxkit.passes.utils.common:lift_subgraph_as_module": lambda gm: common.lift_subgraph_as_module(
        gm, _own_subgraph(), "part"
    ),
    "fxkit.passes.utils.matcher_with_name_node_map_utils:SubgraphMatcherWithNameNodeMap": lambda gm: len(
        SubgraphMatcherWithNameNodeMap(gm).match(fxkit.symbolic_trace(Small()).graph)
    ),
    "fxkit.passes.utils.common:compare_graphs": lambda gm: common.compare_graphs(gm.graph, gm.graph),
    "fxkit.passes.cse:CSEPass.__call__": lambda gm: cse.CSEPass()(gm),
    "fxkit.passes.cse:CSEPass.call": lambda gm: cse.CSEPass().call(gm),
    "fxkit.passes.dialect.common.cse_pass:CSEPass.__call__": lambda gm: cse_pass.CSEPass()(gm),
    "fxkit.passes.dialect.common.cse_pass:CSEPass.call": lambda gm: cse_pass.CSEPass().call(gm),
    "fxkit.experimental.const_fold:split_const_subgraphs": lambda gm: const_fold.split_const_subgraphs(gm),
    "fxkit.experimental.optimization:fuse": lambda gm: optimization.fuse(gm),
    "fxkit.experimental.optimization:remove_dropout": lambda gm: optimization.remove_dropout(gm),
    "fxkit.experimental.optimization:optimize_for_inference": lambda gm: optimization.optimize_for_inference(
        gm, {"mkldnn_layout_optimize": False}
    ),
    "fxkit.experimental.merge_matmul:merge_matmul": lambda gm: merge_matmul.merge_matmul(gm),
    "fxkit.experimental.normalize:NormalizeArgs": lambda gm: normalize.NormalizeArgs(gm).transform(),
    "fxkit.experimental.normalize:NormalizeOperators": lambda gm: normalize.NormalizeOperators(
        gm
    ).transform(),
    "fxkit.experimental.schema_type_annotation:AnnotateTypesWithSchema": lambda gm: AnnotateTypesWithSchema(
        gm
    ).transform(),
    # Tracers take any nn.Module: a torch.fx GraphModule is traced through its generated forward
    # (compared by graph: the annotation spelled in the code may differ).
    "fxkit.experimental.meta_tracer:symbolic_trace": lambda gm: meta_tracer.symbolic_trace(gm, _META_X).graph,
    "fxkit.experimental.meta_tracer:MetaTracer.trace": lambda gm: meta_tracer.MetaTracer().trace(gm, _META_X),
    "fxkit.experimental.rewriter:RewritingTracer.trace": lambda gm: rewriter.RewritingTracer().trace(gm),
    "fxkit.experimental.proxy_tensor:make_fx": lambda gm: make_fx(gm)(_x()).graph,
    # The tags set on the torch.fx nodes reach the twin's nodes.
    "fxkit.passes.split_utils:split_by_tags": lambda gm: split_utils.split_by_tags(_tagged(gm), ["a", "b"]),
}

# Entry points that keep, edit or answer with parts of the object they are given: a torch.fx
# object (the module, its graph or one of its nodes) is refused.
REFUSES: Dict[str, Callable[[Any], Any]] = {
    "fxkit.passes.graph_transform_observer:GraphTransformObserver": lambda gm: (
        # active (a log_url): it would hook into the module; an inactive one touches nothing
        fxkit.passes.graph_transform_observer.GraphTransformObserver(
            gm, "a pass", log_url=tempfile.gettempdir()
        )
    ),
    "fxkit.graph_module:GraphModule": lambda gm: fxkit.GraphModule(gm, gm.graph),
    # node_to_partition is keyed by the given module's own nodes: a converted twin has others.
    "fxkit.passes.split_module:split_module_simple": lambda gm: split_module.split_module_simple(gm, {}),
    "fxkit.graph:Graph.graph_copy": lambda gm: fxkit.Graph().graph_copy(gm.graph, {}),
    "fxkit.graph:Graph.node_copy": lambda gm: fxkit.Graph().node_copy(_call_node(gm)),
    "fxkit.subgraph_rewriter:replace_pattern": lambda gm: fxkit.replace_pattern(
        gm, torch.relu, torch.sigmoid
    ),
    "fxkit.passes.cse:eliminate_common_subexpressions": lambda gm: cse.eliminate_common_subexpressions(gm),
    "fxkit.passes.dce:dead_code_elimination": lambda gm: dce.dead_code_elimination(gm),
    "fxkit.passes.dce:DCEPass.__call__": lambda gm: dce.DCEPass()(gm),
    "fxkit.passes.dce:DCEPass.call": lambda gm: dce.DCEPass().call(gm),
    "fxkit.passes.utils.matcher_utils:SubgraphMatcher.match": lambda gm: SubgraphMatcher(
        fxkit.symbolic_trace(lambda a: torch.relu(a)).graph
    ).match(gm.graph),
    "fxkit.passes.utils.matcher_with_name_node_map_utils:SubgraphMatcherWithNameNodeMap.match": lambda gm: (
        SubgraphMatcherWithNameNodeMap(fxkit.symbolic_trace(lambda a: torch.relu(a))).match(gm.graph)
    ),
    "fxkit.passes.annotate_getitem_nodes:annotate_getitem_nodes": lambda gm: (
        annotate_getitem_nodes.annotate_getitem_nodes(gm.graph)
    ),
    "fxkit.passes.fake_tensor_prop:FakeTensorProp": lambda gm: fake_tensor_prop.FakeTensorProp(gm),
    "fxkit.passes.graph_manipulation:replace_target_nodes_with": lambda gm: (
        graph_manipulation.replace_target_nodes_with(
            gm, "call_function", torch.relu, "call_function", torch.tanh
        )
    ),
    "fxkit.passes.graph_manipulation:get_size_of_all_nodes": lambda gm: (
        graph_manipulation.get_size_of_all_nodes(gm, [_x()])
    ),
    "fxkit.passes.graph_manipulation:get_tensor_meta": lambda gm: graph_manipulation.get_tensor_meta(
        _call_node(gm)
    ),
    "fxkit.passes.graph_manipulation:get_size_of_node": lambda gm: graph_manipulation.get_size_of_node(
        gm, _call_node(gm)
    ),
    "fxkit.passes.param_fetch:lift_lowering_attrs_to_nodes": lambda gm: (
        param_fetch.lift_lowering_attrs_to_nodes(gm)
    ),
    "fxkit.passes.pass_manager:PassManager.__call__": lambda gm: legacy_pass_manager.PassManager(
        [lambda m: m]
    )(gm),
    "fxkit.passes.reinplace:reinplace": lambda gm: reinplace.reinplace(gm, _x()),
    "fxkit.passes.split_utils:Component": lambda gm: split_utils.Component(gm.graph, 0, "a"),
    "fxkit.passes.splitter_base:FxNetAccNodesFinder": lambda gm: splitter_base.FxNetAccNodesFinder(
        gm, OperatorSupport(), False
    ),
    "fxkit.passes.splitter_base:_SplitterBase": lambda gm: splitter_base._SplitterBase(
        gm, [_x()], None, None
    ),
    "fxkit.passes.net_min_base:_MinimizerBase": lambda gm: net_min_base._MinimizerBase(
        gm, [_x()], None, None
    ),
    "fxkit.passes.tools_common:get_node_target": lambda gm: tools_common.get_node_target(
        dict(gm.named_modules()), _call_node(gm)
    ),
    "fxkit.passes.tools_common:is_node_output_tensor": lambda gm: tools_common.is_node_output_tensor(
        _call_node(gm)
    ),
    "fxkit.passes.tools_common:FxNetAccFusionsFinder": lambda gm: tools_common.FxNetAccFusionsFinder(
        gm, set()
    ),
    "fxkit.passes.tools_common:legalize_graph": lambda gm: tools_common.legalize_graph(gm),
    "fxkit.passes.tools_common:stable_topological_sort": lambda gm: tools_common.stable_topological_sort(gm),
    "fxkit.passes.operator_support:OperatorSupport.is_node_supported": lambda gm: (
        OperatorSupport().is_node_supported(dict(gm.named_modules()), _call_node(gm))
    ),
    "fxkit.passes.infra.partitioner:Partition.add_node": lambda gm: partitioner.Partition().add_node(
        _call_node(gm)
    ),
    "fxkit.passes.infra.partitioner:Partition.remove_node": lambda gm: partitioner.Partition().remove_node(
        _call_node(gm)
    ),
    "fxkit.passes.infra.partitioner:CapabilityBasedPartitioner": lambda gm: (
        partitioner.CapabilityBasedPartitioner(gm, OperatorSupport())
    ),
    "fxkit.passes.infra.pass_base:PassBase.__call__": lambda gm: _Noop()(gm),
    "fxkit.passes.infra.pass_manager:PassManager.__call__": lambda gm: infra_pass_manager.PassManager(
        [_Noop()]
    )(gm),
    "fxkit.passes.utils.common:lift_subgraph_as_module(subgraph)": lambda gm: common.lift_subgraph_as_module(
        gm, gm.graph
    ),
    "fxkit.passes.utils.fuser_utils:topo_sort": lambda gm: fuser_utils.topo_sort(_nodes(gm)),
    "fxkit.passes.utils.fuser_utils:validate_partition": lambda gm: fuser_utils.validate_partition(
        _nodes(gm)
    ),
    "fxkit.passes.utils.fuser_utils:fuse_as_graphmodule": lambda gm: fuser_utils.fuse_as_graphmodule(
        gm, [_call_node(gm)], "fused"
    ),
    "fxkit.passes.utils.fuser_utils:insert_subgm": lambda gm: fuser_utils.insert_subgm(gm, gm, (), ()),
    "fxkit.passes.utils.fuser_utils:erase_nodes": lambda gm: fuser_utils.erase_nodes(gm, []),
    "fxkit.passes.utils.fuser_utils:fuse_by_partitions": lambda gm: fuser_utils.fuse_by_partitions(gm, []),
    "fxkit.experimental.const_fold:FoldedGraphModule": lambda gm: const_fold.FoldedGraphModule(
        gm, from_torch_fx(gm.graph), gm.graph
    ),
    "fxkit.experimental.optimization:fuse(inplace=True)": lambda gm: optimization.fuse(gm, inplace=True),
    "fxkit.experimental.optimization:replace_node_module": lambda gm: optimization.replace_node_module(
        _call_node(gm), {}, nn.ReLU()
    ),
    "fxkit.experimental.optimization:extract_subgraph": lambda gm: optimization.extract_subgraph(
        gm, _nodes(gm), [], []
    ),
    "fxkit.experimental.optimization:modules_to_mkldnn": lambda gm: optimization.modules_to_mkldnn(
        _nodes(gm), {}
    ),
    "fxkit.experimental.optimization:reset_modules": lambda gm: optimization.reset_modules(
        _nodes(gm), {}, {}
    ),
    "fxkit.experimental.merge_matmul:are_nodes_independent": lambda gm: merge_matmul.are_nodes_independent(
        _nodes(gm)
    ),
    "fxkit.experimental.partitioner_utils:Partition.add_node": lambda gm: putils.Partition(0).add_node(
        _call_node(gm)
    ),
    "fxkit.experimental.partitioner_utils:Partition.remove_node": lambda gm: putils.Partition(0).remove_node(
        _call_node(gm)
    ),
    "fxkit.experimental.partitioner_utils:get_extra_size_of": lambda gm: putils.get_extra_size_of(
        _call_node(gm), set()
    ),
    "fxkit.experimental.accelerator_partitioner:Partitioner.partition_graph": lambda gm: (
        accel.Partitioner().partition_graph(gm, gm, putils.PartitionerConfig([]))
    ),
    "fxkit.experimental.accelerator_partitioner:Partitioner.dump_dag": lambda gm: (
        accel.Partitioner().dump_dag(gm)
    ),
    "fxkit.experimental.accelerator_partitioner:Partitioner.create_single_node_partition": lambda gm: (
        accel.Partitioner().create_single_node_partition(_call_node(gm))
    ),
}

# Callables the discovery finds that take no fx Graph, GraphModule or Node of the caller's, or are
# screened by the entry point that calls them.
EXCLUDED: Dict[str, str] = {
    "fxkit.passes.param_fetch:extract_attrs_for_lowering": "takes a leaf module (Linear, ...); any GraphModule is "
    "refused by its module_fetch_book check",
    "fxkit.passes.infra.pass_base:PassBase.call": "abstract hook run by PassBase.__call__, which screens",
    "fxkit.passes.infra.pass_base:PassBase.requires": "hook run by PassBase.__call__, which screens",
    "fxkit.passes.infra.pass_base:PassBase.ensures": "hook run by PassBase.__call__, which screens",
    "fxkit.passes.infra.pass_manager:PassManager.check": "no-op hook (replaced by add_checks) run by "
    "PassManager.__call__, which screens",
    "fxkit.passes.splitter_base:NodeEventTracker.add": "records nodes for FxNetAccNodesFinder, which screens",
    "fxkit.experimental.optimization:use_mkl_length": "takes an MklSubgraph, not an fx Graph",
    "fxkit.experimental.accelerator_partitioner:check_dependency": "takes a partitioner_utils.Partition",
    "fxkit.experimental.partitioner_utils:get_latency_of_one_partition": "takes a partitioner_utils.Partition",
    "fxkit.experimental.meta_tracer:MetaProxy": "built by MetaTracer for nodes of its own graph (hot path)",
    "fxkit.experimental.meta_tracer:MetaAttribute": "built by MetaTracer from its own proxies",
    "fxkit.experimental.meta_tracer:MetaDeviceAttribute": "built by MetaTracer from its own proxies",
    "fxkit.experimental.meta_tracer:MetaTracer.proxy": "tracer hook for nodes of its own graph (hot path)",
    "fxkit.experimental.meta_tracer:MetaTracer.path_of_module": "takes a submodule of the traced root",
    "fxkit.experimental.rewriter:AST_Rewriter.visit_Assert": "takes a Python ast node",
    "fxkit.experimental.rewriter:AST_Rewriter.visit_AnnAssign": "takes a Python ast node",
    "fxkit.passes.splitter_base:NodeEvent": "a log record about a node FxNetAccNodesFinder already screened",
}

# Pure analyses whose answer is the graph's own nodes: they read a torch.fx graph in place
# (nodes of a converted copy would be of no use). Each returns a list of node lists.
READS_IN_PLACE: Dict[str, Callable[[Any], List[List[Any]]]] = {
    "fxkit.passes.utils.source_matcher_utils:SourcePartition": lambda gm: [
        source_matcher_utils.SourcePartition([_call_node(gm)], nn.Linear).nodes
    ],
    "fxkit.passes.utils.source_matcher_utils:get_source_partitions": lambda gm: [
        p.nodes for p in source_matcher_utils.get_source_partitions(gm.graph, [nn.Linear])[nn.Linear]
    ],
}


# Names of a first parameter that announce a module, graph or node.
_GRAPHY = set(
    "gm graph_module module graph node nodes model m mod in_mod orig_module fx_module root subgraph"
    " pattern_gm partition module_with_submodules source const_subgraph".split()
)


def _summary(value: Any) -> Any:
    """A comparable picture of a result: code for modules and graphs, values for tensors."""
    if isinstance(value, fxkit.GraphModule):
        return [(name, sub.code) for name, sub in value.named_modules() if isinstance(sub, fxkit.GraphModule)]
    if isinstance(value, fxkit.Graph):
        return [(node.op, node.name, str(node.target), str(node.args)) for node in value.nodes]
    if isinstance(value, torch.Tensor):
        return (tuple(value.shape), [round(v, 5) for v in value.detach().flatten().tolist()])
    if isinstance(value, dict):
        return {key: _summary(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return (
            type(value)(_summary(item) for item in value)
            if not hasattr(value, "_fields")
            else (tuple(_summary(item) for item in value))
        )
    return value


@pytest.mark.parametrize("call", CONVERTS.values(), ids=CONVERTS.keys())
def test_converting_entry_points_answer_as_for_the_fxkit_twin(call: Callable[[Any], Any]) -> None:
    theirs = _torch_gm()
    before = theirs.code
    expected = _summary(call(from_torch_fx(_torch_gm())))
    assert _summary(call(theirs)) == expected
    assert theirs.code == before


@pytest.mark.parametrize("call", REFUSES.values(), ids=REFUSES.keys())
def test_refusing_entry_points_name_the_conversion(call: Callable[[Any], Any]) -> None:
    theirs = _torch_gm()
    before = theirs.code
    with pytest.raises(TypeError, match=FROM_TORCH_FX):
        call(theirs)
    assert theirs.code == before
    assert all(not hasattr(node, "size_bytes") and "val" not in node.meta for node in theirs.graph.nodes)


@pytest.mark.parametrize("call", READS_IN_PLACE.values(), ids=READS_IN_PLACE.keys())
def test_reading_entry_points_answer_with_the_torch_fx_graphs_own_nodes(call: Callable[[Any], Any]) -> None:
    theirs = _torch_gm()
    _call_node(theirs).meta["source_fn_stack"] = [("linear", nn.Linear)]
    twin = from_torch_fx(theirs)
    before = theirs.code
    found = call(theirs)
    assert [[n.name for n in nodes] for nodes in found] == [[n.name for n in nodes] for nodes in call(twin)]
    assert found and all(n in _nodes(theirs) for nodes in found for n in nodes)
    assert theirs.code == before


def _discovered() -> List[Tuple[str, Callable[..., Any]]]:
    found = []
    for package in (fxkit.passes, fxkit.experimental):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if any(part.startswith("_") for part in info.name.split(".")):
                continue
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if name.startswith("_") or not callable(obj) or getattr(obj, "__module__", None) != info.name:
                    continue
                found.append((f"{info.name}:{name}", obj.__init__ if inspect.isclass(obj) else obj))
                if inspect.isclass(obj):
                    for attr in vars(obj):
                        if (attr == "__call__" or not attr.startswith("_")) and callable(getattr(obj, attr)):
                            found.append((f"{info.name}:{name}.{attr}", getattr(obj, attr)))
    return found


def _first_parameter(function: Callable[..., Any]) -> str:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return ""
    parameters = [p for p in parameters if p.name not in ("self", "cls")]
    return parameters[0].name if parameters and parameters[0].kind != inspect.Parameter.VAR_POSITIONAL else ""


def test_every_entry_point_of_passes_and_experimental_is_in_the_table() -> None:
    known = set(CONVERTS) | set(REFUSES) | set(READS_IN_PLACE) | set(EXCLUDED)
    missing = [
        f"{label}({_first_parameter(function)}, ...)"
        for label, function in _discovered()
        if _first_parameter(function) in _GRAPHY and label not in known
    ]
    assert not missing, (
        "entry points taking a module, graph or node without a torch.fx decision: convert it with "
        "fxkit._foreign.convert or refuse it with fxkit._foreign.reject, then add it to CONVERTS, "
        f"REFUSES or EXCLUDED (with a reason) in this file: {missing}"
    )


def test_the_table_names_only_callables_that_exist() -> None:
    labels = {label for label, _ in _discovered()}
    stale = [label for label in EXCLUDED if label not in labels]
    assert not stale, f"EXCLUDED names callables that no longer exist: {stale}"
