"""fxkit.interop: conversions to and from torch.fx, the torch.compile backend, torch.export, and
the torch.fx.wrap registry. torch.fx (run side by side) and eager execution are the oracles."""

from __future__ import annotations

import copy
import operator
import subprocess
import sys
import textwrap
from typing import Any, Callable, Dict, List

import pytest
import torch
import torch.fx
import torch.fx.passes.infra.partitioner
import torch.fx.passes.operator_support
import torch.fx.passes.shape_prop
import torch.fx.passes.split_utils

import fxkit
from fxkit import interop, zoo
from fxkit.interop import backend, export, from_torch_fx, to_torch_fx
from fxkit.passes.infra.pass_base import PassBase, PassResult
from fxkit.passes.infra.pass_manager import PassManager
from fxkit.passes.shape_prop import ShapeProp
from fxkit.passes.split_module import split_module
from tests.models.control_flow_zoo import control_flow_entries
from tests.models.hf_zoo import _bert, _gpt2, _ids, _llama

ZOO = ["mlp", "resnet", "transformer"]


@pytest.fixture(params=["fast", "plain"])
def engine(request: Any) -> Any:
    """Converting and compiling with fxkit.interop's fast paths (the default) and without them."""
    with interop.use_fast_path(request.param == "fast"):
        yield request.param


def _fxkit_code(torch_fx_code: str) -> str:
    """torch.fx's code as fxkit writes it: generated wrap lines name fxkit's module instead."""
    return torch_fx_code.replace("torch.fx._symbolic_trace.wrap(", "fxkit._symbolic_trace.wrap(")


def _assert_same_graph(converted: Any, original: Any) -> None:
    """Same nodes in the same order: names, ops, targets, arguments (by name), types and meta."""
    theirs, ours = list(original.graph.nodes), list(converted.graph.nodes)
    assert [n.name for n in ours] == [n.name for n in theirs]
    assert str(converted.graph) == str(original.graph)
    for mine, other in zip(ours, theirs):
        assert (mine.op, mine.target, mine.type) == (other.op, other.target, other.type)
        assert mine.meta == other.meta and mine.meta is not other.meta
        for key, value in other.meta.items():
            assert mine.meta[key] is value  # values are shared, not copied
    assert converted.code == original.code


def _assert_state_shared(converted: torch.nn.Module, original: torch.nn.Module) -> None:
    assert type(converted).__name__ == type(original).__name__
    theirs = dict(original.named_parameters()) | dict(original.named_buffers())
    ours = dict(converted.named_parameters()) | dict(converted.named_buffers())
    assert ours.keys() == theirs.keys()
    assert all(ours[name] is theirs[name] for name in theirs)
    assert dict(converted.named_modules()).keys() == dict(original.named_modules()).keys()


# --------------------------------------------------------------------------- conversions


@pytest.mark.parametrize("name", ZOO)
def test_torch_fx_trace_converts_to_fxkit_and_back_losslessly(name: str, engine: str) -> None:
    model = zoo.get_model(name)
    (x,) = zoo.example_inputs(name)
    traced = torch.fx.symbolic_trace(model)
    torch.fx.passes.shape_prop.ShapeProp(traced).propagate(x)
    for node in traced.graph.nodes:
        node.meta["custom"] = {"tag": node.name}

    ours = from_torch_fx(traced)
    assert isinstance(ours, fxkit.GraphModule)
    _assert_same_graph(ours, traced)
    _assert_state_shared(ours, traced)
    torch.testing.assert_close(ours(x), model(x))

    back = to_torch_fx(ours)
    assert isinstance(back, torch.fx.GraphModule)
    _assert_same_graph(back, traced)
    _assert_state_shared(back, traced)
    torch.testing.assert_close(back(x), model(x))


@pytest.mark.parametrize("name", ZOO)
def test_fxkit_trace_converts_to_torch_fx_and_back_losslessly(name: str, engine: str) -> None:
    model = zoo.get_model(name)
    (x,) = zoo.example_inputs(name)
    traced = fxkit.symbolic_trace(model)
    ShapeProp(traced).propagate(x)

    theirs = to_torch_fx(traced)
    torch.testing.assert_close(theirs(x), model(x))  # called before its code is read
    _assert_same_graph(theirs, traced)
    _assert_state_shared(theirs, traced)
    assert theirs.code == torch.fx.symbolic_trace(model).code

    again = from_torch_fx(theirs)
    _assert_same_graph(again, traced)
    torch.testing.assert_close(again(x), model(x))


def test_graphs_convert_without_a_module() -> None:
    traced = torch.fx.symbolic_trace(zoo.get_model("mlp"))
    graph = from_torch_fx(traced.graph)
    assert isinstance(graph, fxkit.Graph) and graph.owning_module is None
    assert str(graph) == str(traced.graph)
    assert graph.python_code("self").src == traced.graph.python_code("self").src
    back = to_torch_fx(graph)
    assert isinstance(back, torch.fx.Graph) and str(back) == str(traced.graph)


def test_pytree_calling_convention_survives(engine: str) -> None:
    def f(d, scale):  # noqa: ANN001  (annotated pytree placeholders print differently today; see docs)
        return [d["a"] * scale, d["b"] + d["a"]]

    traced = torch.fx.symbolic_trace(f, concrete_args={"d": {"a": torch.fx.PH, "b": torch.fx.PH}})
    assert type(traced.graph._codegen).__name__ == "_PyTreeCodeGen"
    ours = from_torch_fx(traced)
    _assert_same_graph(ours, traced)
    inputs = ({"a": torch.randn(3), "b": torch.randn(3)}, 2.0)
    for result in (ours(*inputs), to_torch_fx(ours)(*inputs)):
        for got, want in zip(result, f(*inputs)):
            torch.testing.assert_close(got, want)
    assert to_torch_fx(ours).code == traced.code


def _dynamo_graphs(model: torch.nn.Module, *inputs: Any, dynamic: bool = False) -> List[Any]:
    graphs: List[Any] = []

    def keep(gm: Any, example_inputs: List[Any]) -> Callable[..., Any]:
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    torch.compile(model, backend=keep, dynamic=dynamic)(*inputs)
    return graphs


def test_dynamo_graphs_keep_annotations_stack_traces_and_symbolic_sizes() -> None:
    model = zoo.get_model("mlp")
    (x,) = zoo.example_inputs("mlp")
    (gm,) = _dynamo_graphs(model, x, dynamic=True)
    ours = from_torch_fx(gm)
    _assert_same_graph(ours, gm)
    _assert_state_shared(ours, gm)
    placeholders = [n for n in ours.graph.nodes if n.op == "placeholder"]
    assert any(n.type is torch.Tensor for n in placeholders)
    assert any(isinstance(n.meta.get("example_value"), torch.SymInt) for n in placeholders)
    calls = [n for n in ours.graph.nodes if n.op == "call_function"]
    assert any("stack_trace" in n.meta and "nn_module_stack" in n.meta for n in calls)
    assert to_torch_fx(ours).code == gm.code


def test_torch_fx_wrapped_functions_keep_their_calls_through_a_round_trip() -> None:
    traced = fxkit.symbolic_trace(_WrapsLen())
    theirs = to_torch_fx(traced)
    assert _fxkit_code(theirs.code) == traced.code
    assert from_torch_fx(theirs).code == traced.code
    x = torch.randn(3, 2)
    torch.testing.assert_close(theirs(x), x * 3)


fxkit.wrap("len")


class _WrapsLen(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * len(x)


def _exported(name: str, dynamic: bool = True) -> Any:
    model = zoo.get_model(name)
    (x,) = zoo.example_inputs(name)
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    return model, x, torch.export.export(model, (x,), dynamic_shapes=shapes)


@pytest.mark.parametrize("name", ZOO)
def test_exported_programs_convert_and_fxkit_passes_run_on_them(name: str) -> None:
    model, x, program = _exported(name)
    original = program.graph_module
    ours = from_torch_fx(original)
    _assert_same_graph(ours, original)
    symbolic = [n for n in ours.graph.nodes if n.op == "placeholder" and n.name == "x"]
    assert isinstance(symbolic[0].meta["val"].shape[0], torch.SymInt)  # dynamic batch kept

    flat = [*program.state_dict.values(), x] if name != "resnet" else None
    if flat is not None:  # parameters first, then the input, as the exported graph expects
        (out,) = fxkit.Interpreter(ours).run(*flat)
        torch.testing.assert_close(out, model(x))
        ShapeProp(ours).propagate(*flat)
        last = [n for n in ours.graph.nodes if n.op != "output"][-1]
        assert last.meta["tensor_meta"].shape == model(x).shape
    assert to_torch_fx(ours).code == original.code


def test_fxkit_replace_pattern_on_an_exported_graph_matches_torch_fx() -> None:
    _, x, program = _exported("mlp", dynamic=False)
    aten = torch.ops.aten

    def pattern(a: torch.Tensor) -> torch.Tensor:
        return aten.relu.default(a)

    def replacement(a: torch.Tensor) -> torch.Tensor:
        return aten.sigmoid.default(a)

    theirs = copy.deepcopy(program.graph_module)
    ours = from_torch_fx(program.graph_module)
    expected = torch.fx.replace_pattern(theirs, pattern, replacement)
    got = fxkit.replace_pattern(ours, pattern, replacement)
    assert len(got) == len(expected) == 2
    assert ours.code == theirs.code


# --------------------------------------------------------------------------- torch.fx passes on fxkit graphs


def _fxkit_mlp() -> Any:
    model = zoo.get_model("mlp")
    (x,) = zoo.example_inputs("mlp")
    return model, x, fxkit.symbolic_trace(model)


def test_torch_fx_interpreter_and_shape_prop_run_on_converted_graphs() -> None:
    model, x, traced = _fxkit_mlp()
    theirs = to_torch_fx(traced)
    torch.testing.assert_close(torch.fx.Interpreter(theirs).run(x), model(x))
    torch.fx.passes.shape_prop.ShapeProp(theirs).propagate(x)
    ShapeProp(traced).propagate(x)
    for mine, other in zip(traced.graph.nodes, theirs.graph.nodes):
        if "tensor_meta" in mine.meta:
            assert other.meta["tensor_meta"].shape == mine.meta["tensor_meta"].shape


def test_torch_fx_split_by_tags_runs_on_a_converted_graph() -> None:
    model, x, traced = _fxkit_mlp()
    theirs = to_torch_fx(traced)
    for node in theirs.graph.nodes:
        node.tag = "early" if node.name in ("x", "layers_0", "relu") else "late"
    split = torch.fx.passes.split_utils.split_by_tags(theirs, ["early", "late"])
    assert {name for name, _ in split.named_children()} == {"early", "late"}
    torch.testing.assert_close(split(x), model(x))


class _ReluAndLinearOnly(torch.fx.passes.operator_support.OperatorSupportBase):
    def is_node_supported(self, submodules: Dict[str, torch.nn.Module], node: Any) -> bool:
        if node.op == "call_module":
            return isinstance(submodules[node.target], torch.nn.Linear)
        return node.op == "call_function" and node.target is torch.relu


def test_torch_fx_capability_partitioner_runs_on_a_converted_graph() -> None:
    model, x, traced = _fxkit_mlp()
    theirs = to_torch_fx(traced)
    partitioner = torch.fx.passes.infra.partitioner.CapabilityBasedPartitioner(theirs, _ReluAndLinearOnly())
    fused = partitioner.partition_and_fuse()
    assert any(name.startswith("fused_") for name, _ in fused.named_children())
    torch.testing.assert_close(fused(x), model(x))


def test_torch_fx_replace_pattern_on_a_converted_graph_matches_fxkit() -> None:
    model, x, traced = _fxkit_mlp()
    theirs = to_torch_fx(traced)
    torch.fx.replace_pattern(theirs, lambda a: torch.relu(a), lambda a: torch.sigmoid(a))
    fxkit.replace_pattern(traced, lambda a: torch.relu(a), lambda a: torch.sigmoid(a))
    assert theirs.code == traced.code
    torch.testing.assert_close(theirs(x), traced(x))


# --------------------------------------------------------------------------- entry points


def _torch_gm() -> torch.fx.GraphModule:
    return torch.fx.symbolic_trace(zoo.get_model("mlp"))


REFUSED: Dict[str, Callable[[torch.fx.GraphModule], Any]] = {
    "GraphModule()": lambda gm: fxkit.GraphModule(gm, gm.graph),
    "GraphModule.graph =": lambda gm: setattr(fxkit.symbolic_trace(zoo.get_model("mlp")), "graph", gm.graph),
    "graph_copy": lambda gm: fxkit.Graph().graph_copy(gm.graph, {}),
    "node_copy": lambda gm: fxkit.Graph().node_copy(next(iter(gm.graph.nodes))),
    "replace_pattern": lambda gm: fxkit.replace_pattern(gm, lambda a: torch.relu(a), lambda a: a),
    "dead_code_elimination": lambda gm: fxkit.passes.dce.dead_code_elimination(gm),
    "eliminate_common_subexpressions": lambda gm: fxkit.passes.cse.eliminate_common_subexpressions(gm),
}


@pytest.mark.parametrize("call", REFUSED.values(), ids=REFUSED.keys())
def test_entry_points_that_would_keep_or_edit_a_torch_fx_object_refuse_it(call: Callable[..., Any]) -> None:
    gm = _torch_gm()
    before = gm.code
    with pytest.raises(TypeError, match=r"fxkit\.interop\.from_torch_fx"):
        call(gm)
    assert gm.code == before


def test_entry_points_that_only_read_a_torch_fx_object_convert_it() -> None:
    model = zoo.get_model("mlp")
    (x,) = zoo.example_inputs("mlp")
    gm = _torch_gm()
    torch.testing.assert_close(fxkit.Interpreter(gm).run(x), model(x))
    torch.testing.assert_close(fxkit.Interpreter(gm, graph=gm.graph).run(x), model(x))
    transformed = fxkit.Transformer(gm).transform()
    assert isinstance(transformed, fxkit.GraphModule)
    assert transformed.code == torch.fx.Transformer(gm).transform().code
    parts = split_module(gm, gm, lambda node: 0 if node.name in ("layers_0", "relu") else 1)
    torch.testing.assert_close(parts(x), model(x))
    rewritten = fxkit.symbolic_trace(model)
    pattern = torch.fx.symbolic_trace(lambda a: torch.relu(a))
    replacement = torch.fx.symbolic_trace(lambda a: torch.sigmoid(a))
    assert len(fxkit.replace_pattern(rewritten, pattern, replacement)) == 2
    traced = fxkit.symbolic_trace(gm)
    assert traced.code == torch.fx.symbolic_trace(gm).code


def test_conversions_refuse_what_they_cannot_take() -> None:
    gm = _torch_gm()
    with pytest.raises(TypeError, match="already an fxkit"):
        from_torch_fx(fxkit.symbolic_trace(zoo.get_model("mlp")))
    with pytest.raises(TypeError, match="already a torch.fx"):
        to_torch_fx(gm)
    with pytest.raises(TypeError, match="single nodes"):
        from_torch_fx(next(iter(gm.graph.nodes)))

    class Custom(torch.fx.graph.CodeGen):
        pass

    gm.graph.set_codegen(Custom())
    with pytest.raises(TypeError, match="code generator"):
        from_torch_fx(gm)


# --------------------------------------------------------------------------- torch.compile backend


class _Record:
    """A plain-function pass that records what it was given."""

    def __init__(self) -> None:
        self.seen: List[type] = []

    def __call__(self, gm: Any) -> None:
        self.seen.append(type(gm))
        assert isinstance(gm, fxkit.GraphModule)


class _ReluToSigmoid(PassBase):
    def call(self, graph_module: fxkit.GraphModule) -> PassResult:
        nodes = graph_module.graph.find_nodes(op="call_function", target=torch.relu)
        for node in nodes:
            node.target = torch.sigmoid
        graph_module.recompile()
        return PassResult(graph_module, bool(nodes))


def _compiled(model: torch.nn.Module, *passes: Any, **options: Any) -> Callable[..., Any]:
    torch._dynamo.reset()
    return torch.compile(model, backend=backend(*passes, compiler="eager"), **options)


def _zoo_cases() -> List[Any]:
    cases = [(name, zoo.get_model(name), lambda n=name: {"x": zoo.example_inputs(n)[0]}) for name in ZOO]
    cases.append(("deep_mlp", zoo.deep_mlp(6), lambda: {"x": torch.linspace(-1, 1, 12).reshape(3, 4)}))
    for entry in control_flow_entries()[:3]:  # data-dependent branches: Dynamo breaks the graph
        model = entry.build()
        cases.append((entry.name, model, lambda entry=entry, model=model: entry.example(model)))
    return cases


@pytest.mark.parametrize("case", _zoo_cases(), ids=lambda case: case[0])
def test_compile_backend_runs_fxkit_passes_on_zoo_models(case: Any, engine: str) -> None:
    _, model, inputs = case
    record = _Record()
    compiled = _compiled(model, record)
    with torch.no_grad():
        torch.testing.assert_close(compiled(**inputs()), model(**inputs()))
    assert record.seen and all(issubclass(kind, fxkit.GraphModule) for kind in record.seen)


def test_compile_backend_sees_every_graph_of_a_graph_break() -> None:
    entry = control_flow_entries()[0]  # sign-branch: `if x.sum() > 0` splits the program
    model, record = entry.build(), _Record()
    compiled = _compiled(model, record)
    for inputs in (entry.example(model), entry.other_paths[0](model)):
        torch.testing.assert_close(compiled(**inputs), model(**inputs))
    assert len(record.seen) >= 2


def test_compile_backend_with_dynamic_shapes_and_pass_objects(engine: str) -> None:
    model = zoo.get_model("mlp")
    manager = PassManager([_ReluToSigmoid()])
    record = _Record()
    compiled = _compiled(model, _ReluToSigmoid(), manager, record, dynamic=True)
    expected_model = copy.deepcopy(model)
    for batch in (2, 5, 7):
        x = torch.randn(batch, 32)
        layers = expected_model.layers
        expected = layers[2](torch.sigmoid(layers[1](torch.sigmoid(layers[0](x)))))
        torch.testing.assert_close(compiled(x), expected)
    assert len(record.seen) == 1  # one graph serves every batch size


def test_compile_backend_rejects_bad_passes_and_results() -> None:
    with pytest.raises(TypeError, match="callable"):
        backend("not a pass")
    compiled = _compiled(zoo.get_model("mlp"), lambda gm: "oops")
    with pytest.raises(Exception, match="returned str"):
        compiled(zoo.example_inputs("mlp")[0])


@pytest.mark.parametrize("make", [_bert, _gpt2, _llama], ids=["bert", "gpt2", "llama"])
def test_compile_backend_on_hf_models(make: Callable[[], torch.nn.Module]) -> None:
    model = make().eval()
    inputs = {"input_ids": _ids(1)}
    if make is not _bert:
        inputs["use_cache"] = False
    record = _Record()
    compiled = _compiled(model, record)
    with torch.no_grad():
        got, want = compiled(**inputs), model(**inputs)
    torch.testing.assert_close(got[0], want[0])
    assert record.seen and all(issubclass(kind, fxkit.GraphModule) for kind in record.seen)


def test_compile_backend_hands_graphs_to_inductor() -> None:
    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) * 2 + 1

    record = _Record()
    torch._dynamo.reset()
    compiled = torch.compile(f, backend=backend(_ReluToSigmoid(), record, compiler="inductor"))
    x = torch.randn(8)
    torch.testing.assert_close(compiled(x), torch.sigmoid(x) * 2 + 1)
    assert record.seen


def _compile_recording(model: torch.nn.Module, monkeypatch: Any, *passes: Any) -> Dict[str, Any]:
    """Compile ``model`` through the fxkit backend; Dynamo's graph, the compiler's, the output."""
    seen: Dict[str, Any] = {}
    convert = interop.from_torch_fx
    monkeypatch.setattr(interop, "from_torch_fx", lambda gm: convert(seen.setdefault("dynamo", gm)))

    def compiler(gm: Any, example_inputs: List[Any]) -> Callable[..., Any]:
        seen["compiled"] = gm
        return gm.forward

    torch._dynamo.reset()
    with torch.no_grad():
        seen["output"] = torch.compile(model, backend=backend(*passes, compiler=compiler))(
            *zoo.example_inputs("mlp")
        )
    return seen


def _read_only(gm: fxkit.GraphModule) -> None:
    assert gm.code and str(gm.graph) and gm.graph.find_nodes(op="placeholder")
    assert dict(gm.named_parameters()) is not None and gm.forward


@pytest.mark.parametrize("passes", [(), (_read_only, _Record())], ids=["none", "read-only"])
def test_compile_backend_hands_dynamo_its_own_graph_when_passes_change_nothing(
    passes: Any, engine: str, monkeypatch: Any
) -> None:
    model = zoo.get_model("mlp")
    seen = _compile_recording(model, monkeypatch, *passes)
    torch.testing.assert_close(seen["output"], model(*zoo.example_inputs("mlp")))
    assert (seen["compiled"] is seen["dynamo"]) == (engine == "fast")
    assert seen["compiled"].code == seen["dynamo"].code


def _tag_nodes(gm: fxkit.GraphModule) -> None:
    for node in gm.graph.nodes:
        node.meta["tag"] = node.name


def _add_buffer(gm: fxkit.GraphModule) -> None:
    gm.register_buffer("scale", torch.ones(1))


def _annotate_input(gm: fxkit.GraphModule) -> None:
    gm.graph.find_nodes(op="placeholder")[0].type = torch.Tensor


@pytest.mark.parametrize("edit", [_tag_nodes, _add_buffer, _annotate_input])
def test_compile_backend_converts_what_passes_changed_without_editing_nodes(
    edit: Any, monkeypatch: Any
) -> None:
    # None of these changes counts as a graph edit: the fast path must still notice them.
    model = zoo.get_model("mlp")
    seen = _compile_recording(model, monkeypatch, edit)
    compiled = seen["compiled"]
    assert compiled is not seen["dynamo"]
    torch.testing.assert_close(seen["output"], model(*zoo.example_inputs("mlp")))
    placeholder = compiled.graph.find_nodes(op="placeholder")[0]
    assert all(node.meta.get("tag") == node.name for node in compiled.graph.nodes) == (edit is _tag_nodes)
    assert hasattr(compiled, "scale") == (edit is _add_buffer)
    assert (placeholder.type is torch.Tensor) == (edit is _annotate_input)


# --------------------------------------------------------------------------- torch.export


def test_export_a_capture_whose_branches_torch_export_refuses() -> None:
    entry = control_flow_entries()[0]  # sign-branch: data-dependent `if`
    model = entry.build()
    example = entry.example(model)
    with pytest.raises(Exception, match="data-dependent|Could not guard"):
        torch.export.export(model, (), example)
    program = export(fxkit.capture(model, example), (), example)
    second = entry.more[0](model)
    torch.testing.assert_close(program.module()(**second), model(**second))
    with pytest.raises(RuntimeError, match="guard_0"):  # the guard is still checked when deployed
        program.module()(**entry.other_paths[0](model))


def _assert_same_lm_output(actual: Any, expected: Any) -> None:
    assert type(actual) is type(expected)
    assert type(actual.past_key_values) is type(expected.past_key_values)
    torch.testing.assert_close(actual.logits, expected.logits)
    for mine, theirs in zip(actual.past_key_values.layers, expected.past_key_values.layers):
        assert type(mine) is type(theirs)
        torch.testing.assert_close(mine.keys, theirs.keys)
        torch.testing.assert_close(mine.values, theirs.values)


@pytest.mark.parametrize("make", [_gpt2, _llama], ids=["gpt2", "llama"])
def test_export_a_causal_lm_called_with_its_defaults_returns_its_cache(make: Callable[[], Any]) -> None:
    # The default call returns a DynamicCache, which torch.export cannot return unregistered.
    model = make().eval()
    inputs = {"input_ids": _ids(1)}
    import torch.utils._pytree as pytree
    from transformers import DynamicCache

    if DynamicCache not in pytree.SUPPORTED_NODES:  # until an export registers it, for good
        with pytest.raises(Exception, match="DynamicCache"):
            torch.export.export(model, (), inputs)
    program = export(fxkit.capture(model, inputs), (), inputs)
    second = {"input_ids": _ids(2)}
    with torch.no_grad():
        _assert_same_lm_output(program.module()(**second), model(**second))


def test_export_a_decode_step_that_takes_and_returns_the_cache() -> None:
    model = _llama().eval()
    with torch.no_grad():
        prompt = model(input_ids=_ids(1))
        step_inputs = {"input_ids": _ids(2)[:, :1], "past_key_values": prompt.past_key_values}
        program = export(fxkit.capture(model, step_inputs), (), step_inputs)
        eager_cache, exported_cache = (model(input_ids=_ids(1)).past_key_values for _ in range(2))
        token = _ids(3)[:, :1]
        expected = model(input_ids=token, past_key_values=eager_cache)
        actual = program.module()(input_ids=token, past_key_values=exported_cache)
    _assert_same_lm_output(actual, expected)


def test_a_failed_export_leaves_no_pytree_registration_behind() -> None:
    import torch.utils._pytree as pytree

    class Holder:
        def __init__(self, value: torch.Tensor) -> None:
            self.value = value

    def broken(x: torch.Tensor) -> Holder:
        return Holder(x + 1)

    captured = fxkit.capture(broken, (torch.randn(3),))
    with pytest.raises(Exception):
        export(captured, (torch.randn(3), torch.randn(3)))  # one input too many
    assert Holder not in pytree.SUPPORTED_NODES


# --------------------------------------------------------------------------- torch.fx.wrap registry


def _write_module(tmp_path: Any, name: str, source: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))


def test_symbolic_trace_honours_functions_registered_with_torch_fx_wrap(
    tmp_path: Any, monkeypatch: Any
) -> None:
    _write_module(
        tmp_path,
        "interop_wrapped_helpers",
        """
        import torch
        import torch.fx

        def rows_plus_one(x):
            return int(x.shape[0]) + 1  # untraceable: int() of a traced size

        torch.fx.wrap("rows_plus_one")

        def scaled(x):
            return x * rows_plus_one(x)
        """,
    )
    _write_module(
        tmp_path,
        "interop_wrapped_user",
        """
        import torch
        import interop_wrapped_helpers as helpers

        class Model(torch.nn.Module):
            def forward(self, x):
                return helpers.scaled(x) + helpers.rows_plus_one(x)
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("interop_wrapped_helpers", "interop_wrapped_user"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import interop_wrapped_helpers  # type: ignore[import-not-found]
    import interop_wrapped_user  # type: ignore[import-not-found]

    original = interop_wrapped_helpers.rows_plus_one
    model = interop_wrapped_user.Model()
    ours, theirs = fxkit.symbolic_trace(model), torch.fx.symbolic_trace(model)
    assert ours.code == _fxkit_code(theirs.code)
    assert [n.target for n in ours.graph.nodes if n.op == "call_function"].count(original) == 2
    for rows in (2, 5):
        x = torch.randn(rows, 3)
        torch.testing.assert_close(ours(x), model(x))
    assert interop_wrapped_helpers.rows_plus_one is original  # nothing left patched


def test_torch_fx_wrap_registry_reader_lists_registrations() -> None:
    from fxkit.interop import torch_fx_wrapped_functions

    pairs = torch_fx_wrapped_functions()
    assert all(isinstance(globals_dict, dict) and isinstance(name, str) for globals_dict, name in pairs)
    assert any(name == "_assert_is_none" for _, name in pairs)  # torch.fx registers one of its own


class _Scaler:
    """Recorded as a call_method node once its ``scale`` is in torch.fx's wrapped-method registry."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def scale(self, x: Any, extra: int = 0) -> Any:
        return x * (self.factor + extra)

    def __fx_create_arg__(self, tracer: Any) -> Any:
        return tracer.create_node("call_function", _Scaler, (self.factor,), {})


def test_symbolic_trace_honours_methods_in_torch_fx_wrapped_method_registry(monkeypatch: Any) -> None:
    import torch.fx._symbolic_trace as torch_fx_tracer

    from fxkit.interop import torch_fx_wrapped_methods

    monkeypatch.setattr(torch_fx_tracer, "_wrapped_methods_to_patch", [(_Scaler, "scale")])
    assert torch_fx_wrapped_methods() == [(_Scaler, "scale")]
    original = _Scaler.scale
    scaler = _Scaler(2)

    def fn(x):
        return scaler.scale(x, extra=1) + _Scaler(3).scale(x) + scaler.scale(torch.ones(2))

    ours, theirs = fxkit.symbolic_trace(fn), torch.fx.symbolic_trace(fn)
    assert ours.code == _fxkit_code(theirs.code)
    assert [n.target for n in ours.graph.nodes if n.op == "call_method"] == ["scale", "scale"]
    x = torch.randn(2)
    torch.testing.assert_close(ours(x), fn(x))
    assert _Scaler.scale is original  # nothing left patched


def test_operator_targets_survive_conversion() -> None:
    graph = fxkit.Graph()
    a = graph.placeholder("a")
    total = graph.call_function(operator.add, (a, 1))
    sliced = graph.call_function(operator.getitem, (total, slice(None, a, 2)))
    graph.output({"out": [sliced, (a,)]})
    back = from_torch_fx(to_torch_fx(graph))
    assert str(back) == str(graph)
    assert back.python_code("self").src == graph.python_code("self").src


class _AddsBias(torch.nn.Module):
    def forward(self, x: torch.Tensor, w: torch.Tensor, *, bias: torch.Tensor) -> Any:
        return x @ w + bias, {"total": x.sum()}


def test_an_exported_module_converts_callable_with_the_same_code() -> None:
    x, w, bias = torch.randn(2, 3), torch.randn(3, 4), torch.randn(4)
    exported = torch.export.export(_AddsBias(), (x, w), {"bias": bias}).module()
    converted = from_torch_fx(exported)
    assert converted.code == exported.code  # inputs packed as ([x, w], {'bias':bias})
    expected, actual = exported(x, w, bias=bias), converted(x, w, bias=bias)
    torch.testing.assert_close(actual[0], expected[0])
    torch.testing.assert_close(actual[1]["total"], expected[1]["total"])
    assert to_torch_fx(converted).code == exported.code


@pytest.mark.parametrize("make", [_bert, _gpt2, _llama], ids=["bert", "gpt2", "llama"])
def test_captured_hf_models_convert_to_torch_fx_and_back(make: Callable[[], Any], engine: str) -> None:
    # A capture holds guards, NOT_GIVEN defaults and class arguments (the cache it builds):
    # torch.fx runs it, and the way back restores fxkit's code exactly.
    from tests.models import difference

    model = make().eval()
    captured = fxkit.capture(model, {"input_ids": _ids(1)}).graph_module
    converted = to_torch_fx(captured)
    back = from_torch_fx(converted)
    assert back.code == captured.code
    assert not [name for name in vars(back) if name.startswith("_fxkit_class_")]
    with torch.no_grad():
        for seed in (1, 2):
            expected = model(input_ids=_ids(seed))
            assert difference(expected, converted(input_ids=_ids(seed))) is None
            assert difference(expected, back(input_ids=_ids(seed))) is None


def test_experimental_shape_modules_hand_out_torchs_own_shape_environment() -> None:
    import torch.fx.experimental.sym_node
    import torch.fx.experimental.symbolic_shapes

    from fxkit.experimental import sym_node, symbolic_shapes

    assert symbolic_shapes.ShapeEnv is torch.fx.experimental.symbolic_shapes.ShapeEnv
    assert (
        symbolic_shapes.statically_known_true is torch.fx.experimental.symbolic_shapes.statically_known_true
    )
    assert sym_node.SymNode is torch.fx.experimental.sym_node.SymNode
    assert "ShapeEnv" in dir(symbolic_shapes)
    with pytest.raises(AttributeError):
        symbolic_shapes.no_such_name  # noqa: B018
    with pytest.raises(ValueError, match="no torch shape module 'graph'"):
        fxkit.interop.torch_shape_module("graph")


def test_importing_the_shape_modules_loads_torch_fx_only_when_a_name_is_read() -> None:
    script = (
        "import sys, torch\n"
        "before = set(sys.modules)\n"
        "import fxkit.experimental.symbolic_shapes as shapes\n"
        "print(any(m.startswith('torch.fx') for m in set(sys.modules) - before))\n"
        "shapes.ShapeEnv\n"
        "print(any(m.startswith('torch.fx') for m in set(sys.modules) - before))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
