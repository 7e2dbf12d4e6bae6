"""Graph operations side by side with torch.fx (the oracle): copying nodes without a value remap,
custom CodeGen output writers, pickling modules that call torch.library operators, what dead code
elimination keeps (profiler ranges, collectives) and the meta const folding keeps."""

import io
import pickle
import typing
import warnings
from typing import Any, List

import pytest
import torch
import torch.distributed._functional_collectives  # noqa: F401  (registers the _c10d_functional ops)
import torch.fx
import torch.fx.experimental.const_fold
import torch.fx.passes.shape_prop
from torch import nn

import fxkit
import fxkit.experimental.const_fold
import fxkit.passes.shape_prop

LIBRARIES = pytest.mark.parametrize("fx", [torch.fx, fxkit], ids=["torch.fx", "fxkit"])


class AddRelu(nn.Module):
    def forward(self, x):
        return torch.relu(x + 3.0)


@LIBRARIES
def test_node_copy_without_remap_is_reported_by_lint(fx: Any) -> None:
    source = fx.symbolic_trace(AddRelu()).graph
    copied = fx.Graph()
    for node in source.nodes:
        copied.node_copy(node)
    with pytest.raises(RuntimeError, match="Argument 'x' of Node 'add' does not belong to this Graph"):
        copied.lint()
    if fx is fxkit:  # fxkit keeps the source graph's users exact
        source.lint()


def _list_codegen(fx: Any) -> Any:
    class ListCodeGen(fx.CodeGen):
        def gen_fn_def(self, free_vars, maybe_return_annotation):
            return f"""
def forward(self, args_list: List[torch.Tensor]){maybe_return_annotation}:
    {", ".join(free_vars)} = args_list"""

        def additional_globals(self):
            return [("List", typing.List)]

        def process_inputs(self, *inputs):
            assert len(inputs) == 1
            return inputs[0]

        def generate_output(self, output_args):
            return f"return list({repr(output_args)})"

    return ListCodeGen()


def _add(a, b):
    return a + b


def test_custom_codegen_with_a_two_argument_generate_output() -> None:
    values = [torch.randn(3), torch.randn(3)]
    outcomes = []
    for fx in (torch.fx, fxkit):
        gm = fx.symbolic_trace(_add)
        gm.graph.set_codegen(_list_codegen(fx))
        gm.recompile()
        outcomes.append((gm.code, gm(values), fx.Interpreter(gm).run(values)))
    (code, result, interpreted), (expected_code, expected, expected_interpreted) = outcomes
    assert code == expected_code and "return list(add)" in code
    torch.testing.assert_close(result, expected)
    torch.testing.assert_close(interpreted, expected_interpreted)


_LIBRARY = torch.library.Library("fxkit_behaviours", "DEF")
_LIBRARY.define("triple(Tensor x) -> Tensor")
_LIBRARY.impl("triple", lambda x: x * 3, "CompositeExplicitAutograd")


@torch.library.custom_op("fxkit_behaviours::scale", mutates_args=())
def _scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    return x * factor


def _custom_ops(x):
    ops = torch.ops.fxkit_behaviours
    return ops.triple(x) + ops.triple.default(x) + ops.scale(x, 2.0)


@LIBRARIES
def test_pickle_module_calling_library_ops(fx: Any) -> None:
    gm = fx.symbolic_trace(_custom_ops)
    x = torch.arange(3.0)
    restored = pickle.loads(pickle.dumps(gm))
    assert restored.code == gm.code
    assert [node.target for node in restored.graph.nodes] == [node.target for node in gm.graph.nodes]
    torch.testing.assert_close(restored(x), gm(x))
    buffer = io.BytesIO()
    torch.save(gm, buffer)
    buffer.seek(0)
    torch.testing.assert_close(torch.load(buffer, weights_only=False)(x), gm(x))


def _dce_survivors(fx: Any) -> List[str]:
    graph = fx.Graph()
    handle = graph.call_function(torch.ops.profiler._record_function_enter_new, ("range",))
    graph.call_function(torch.ops.profiler._record_function_exit, (handle,))
    old = graph.call_function(torch.ops.profiler._record_function_enter.default, ("old",))
    graph.call_function(torch.ops.profiler._record_function_exit._RecordFunction, (old,))
    x = graph.placeholder("x")
    functional = torch.ops._c10d_functional
    reduced = graph.call_function(functional.all_reduce.default, (x, "sum", "0"))
    graph.call_function(functional.wait_tensor.default, (reduced,))
    graph.call_function(functional.all_reduce, (x, "sum", "0"))
    graph.call_function(functional.all_gather_into_tensor.default, (x, 2, "0"))
    graph.call_function(functional.all_reduce_.default, (x, "sum", "0"))
    graph.call_function(torch.ops.aten._print.default, ("hello",))
    graph.call_function(torch.ops.aten.randn.default, ([2],))
    graph.call_function(torch.relu, (x,))
    graph.output(None)
    graph.eliminate_dead_code()
    return [str(node.target) for node in graph.nodes]


def test_dce_keeps_profiler_ranges_collectives_and_effects_like_torch_fx() -> None:
    survivors = _dce_survivors(fxkit)
    assert survivors == _dce_survivors(torch.fx)
    assert (
        "profiler._record_function_enter_new" in survivors
        and "_c10d_functional.wait_tensor.default" in survivors
    )


IMPURITY_TARGETS = [
    torch.ops.profiler._record_function_enter_new,
    torch.ops.profiler._record_function_exit._RecordFunction,
    torch.ops.aten._assert_scalar.default,
    torch.ops.aten.sym_constrain_range.default,
    torch.ops.aten._linalg_check_errors.default,
    torch.ops._c10d_functional.wait_tensor.default,
    torch.ops._c10d_functional.all_reduce.default,
    torch.ops.aten.add_.Tensor,
    torch.ops.aten.squeeze_,
    torch.ops.aten.randn,
    torch.ops.aten.rand.default,
    torch.ops.aten.relu.default,
    torch.rand,
    torch.relu,
    torch._assert,
    torch._C._set_grad_enabled,
    torch._functorch.eager_transforms._jvp_increment_nesting,
]


def _impurity(fx: Any) -> List[tuple]:
    graph = fx.Graph()
    x = graph.placeholder("x")
    found = []
    for target in IMPURITY_TARGETS:
        node = graph.call_function(target, (x,))
        found.append((str(target), node.is_impure(), node.is_impure(impure_random=False)))
    return found


def _registered_with_torch_fx(x: Any) -> Any:
    return x


torch.fx.node.has_side_effect(_registered_with_torch_fx)


@LIBRARIES
def test_functions_registered_with_torch_fx_has_side_effect_survive_dce(fx: Any) -> None:
    """Libraries register their effectful helpers with torch.fx.node.has_side_effect; fxkit reads
    that registry too (through fxkit.interop)."""
    graph = fx.Graph()
    x = graph.placeholder("x")
    kept = graph.call_function(_registered_with_torch_fx, (x,))
    graph.output(x)
    graph.eliminate_dead_code()
    assert kept in graph.nodes and kept.is_impure()


def test_is_impure_like_torch_fx() -> None:
    assert _impurity(fxkit) == _impurity(torch.fx)


class Foldable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 4))
        self.b = nn.Parameter(torch.randn(4))

    def forward(self, x):
        return torch.relu(x @ (self.w.t() + 1) + self.b * 2)


class FoldableOne(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        return x @ (self.w.t() + 1)


def _folded_meta(fx: Any, const_fold: Any, shape_prop: Any, module: nn.Module) -> List[tuple]:
    gm = fx.symbolic_trace(module)
    shape_prop.ShapeProp(gm).propagate(torch.randn(2, 4))
    for node in gm.graph.nodes:
        node.meta["origin"] = node.name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.fx warns about its own get_attr nodes here
        folded = const_fold.split_const_subgraphs(gm)
    folded.run_folding()
    return [
        (
            node.name,
            node.meta.get("origin"),
            tuple(node.meta["tensor_meta"].shape) if "tensor_meta" in node.meta else None,
        )
        for node in folded.graph.nodes
        if node.op != "output"  # torch.fx drops the output's meta here; fxkit keeps it
    ]


@pytest.mark.parametrize("make_module", [Foldable, FoldableOne])
def test_const_fold_keeps_tensor_meta_and_node_meta(make_module: Any) -> None:
    torch.manual_seed(0)
    module = make_module()
    expected = _folded_meta(torch.fx, torch.fx.experimental.const_fold, torch.fx.passes.shape_prop, module)
    got = _folded_meta(fxkit, fxkit.experimental.const_fold, fxkit.passes.shape_prop, module)
    assert got == expected
