"""ShapeProp against torch.fx's ShapeProp on the same models, with real, meta and fake inputs."""

from __future__ import annotations

import pytest
import torch
import torch.fx
from torch.fx.passes.shape_prop import ShapeProp as OracleShapeProp
from torch.fx.passes.shape_prop import _extract_tensor_metadata as oracle_extract

import fxkit as fx
from fxkit import zoo
from fxkit.passes.shape_prop import ShapeProp, TensorMetadata, _extract_tensor_metadata


def _metas(graph_module) -> dict:
    return {
        node.name: (node.meta.get("tensor_meta"), node.meta.get("type")) for node in graph_module.graph.nodes
    }


def _same_meta(ours, theirs) -> None:
    """Compare nested TensorMetadata structures field by field (the classes differ)."""
    if isinstance(theirs, tuple) and type(theirs).__name__ == "TensorMetadata":
        assert isinstance(ours, TensorMetadata)
        assert tuple(ours) == tuple(theirs)
    elif isinstance(theirs, (tuple, list)):
        assert type(ours).__name__ == type(theirs).__name__ and len(ours) == len(theirs)
        for mine, oracle in zip(ours, theirs):
            _same_meta(mine, oracle)
    elif isinstance(theirs, dict):
        assert ours.keys() == theirs.keys()
        for key in theirs:
            _same_meta(ours[key], theirs[key])
    else:
        assert ours == theirs


class TupleAndListOutputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        return y.chunk(2, dim=1), y.shape[0], [y.sum()], {"t": y.transpose(2, 3)}


@pytest.mark.parametrize("name", ["mlp", "resnet", "transformer", "tuples"])
def test_same_metadata_as_torch_fx(name: str) -> None:
    if name == "tuples":
        model, inputs = TupleAndListOutputs(), (torch.randn(2, 3, 8, 8),)
    else:
        model, inputs = zoo.get_model(name), zoo.example_inputs(name)
    ours, theirs = fx.symbolic_trace(model), torch.fx.symbolic_trace(model)
    result = ShapeProp(ours).propagate(*inputs)
    OracleShapeProp(theirs).propagate(*inputs)
    ours_meta, theirs_meta = _metas(ours), _metas(theirs)
    assert ours_meta.keys() == theirs_meta.keys()
    for node_name, (oracle_meta, oracle_type) in theirs_meta.items():
        meta, value_type = ours_meta[node_name]
        assert value_type is oracle_type, node_name
        _same_meta(meta, oracle_meta)
    torch.testing.assert_close(result, model(*inputs))


def test_meta_device_model_and_inputs_give_same_shapes() -> None:
    model = zoo.get_model("resnet")
    inputs = zoo.example_inputs("resnet")
    real = fx.symbolic_trace(model)
    ShapeProp(real).propagate(*inputs)
    on_meta = fx.symbolic_trace(zoo.get_model("resnet").to("meta"))
    result = ShapeProp(on_meta).propagate(*(t.to("meta") for t in inputs))
    assert result.device.type == "meta"
    for real_node, meta_node in zip(real.graph.nodes, on_meta.graph.nodes):
        real_meta, meta_meta = real_node.meta.get("tensor_meta"), meta_node.meta.get("tensor_meta")
        if isinstance(real_meta, TensorMetadata):
            assert real_meta.shape == meta_meta.shape and real_meta.dtype == meta_meta.dtype
            assert real_meta.stride == meta_meta.stride


def test_fake_mode_leaves_real_module_untouched() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    model = zoo.get_model("mlp")
    traced = fx.symbolic_trace(model)
    inputs = zoo.example_inputs("mlp")
    ShapeProp(traced, fake_mode=FakeTensorMode()).propagate(*inputs)
    oracle = torch.fx.symbolic_trace(model)
    OracleShapeProp(oracle).propagate(*inputs)
    for ours, theirs in zip(traced.graph.nodes, oracle.graph.nodes):
        _same_meta(ours.meta.get("tensor_meta"), theirs.meta.get("tensor_meta"))
    assert all(type(p) is torch.nn.Parameter and type(p.data) is torch.Tensor for p in traced.parameters())
    torch.testing.assert_close(traced(*inputs), model(*inputs))


@pytest.mark.filterwarnings("ignore:.*quantize.*:UserWarning")
def test_extract_metadata_matches_torch_fx() -> None:
    tensors = [
        torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last),
        torch.randn(2, 3, 4, 5).transpose(0, 1),
        torch.randn(3, 3).to_sparse(),
        torch.randn(3, requires_grad=True),
        torch.quantize_per_tensor(torch.randn(3), 0.1, 2, torch.quint8),
        torch.quantize_per_channel(
            torch.randn(3, 2), torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0, 1, 2]), 0, torch.quint8
        ),
    ]
    for tensor in tensors:
        assert tuple(_extract_tensor_metadata(tensor)) == tuple(oracle_extract(tensor))


def test_shape_error_names_node_and_op() -> None:
    traced = fx.symbolic_trace(TupleAndListOutputs())
    with pytest.raises(RuntimeError) as info:
        ShapeProp(traced).propagate(torch.randn(2, 5, 8, 8))
    message = str(info.value)
    assert "%conv" in message and "call_module" in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_wrong_argument_count_names_placeholder() -> None:
    traced = fx.symbolic_trace(lambda x, y: x + y)
    with pytest.raises(RuntimeError) as info:
        ShapeProp(traced).propagate(torch.randn(2))
    assert "%y" in str(info.value) and "placeholder" in str(info.value)


def test_fake_inputs_bring_their_mode() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode()
    model = zoo.get_model("resnet")
    traced = fx.symbolic_trace(model)
    (real_input,) = zoo.example_inputs("resnet")
    result = ShapeProp(traced).propagate(mode.from_tensor(real_input))
    assert type(result).__name__ == "FakeTensor" and result.shape == model(real_input).shape
    assert all(type(p.data) is torch.Tensor for p in traced.parameters())


def test_data_dependent_sizes_are_bound_like_torch_fx() -> None:
    """With a shape environment, the size a nonzero makes is bound on its node and not left pending."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    def f(x):
        return torch.nonzero(x).sum() + x.sum()

    def run(tracing, shape_prop):
        gm = tracing.symbolic_trace(f)
        mode = FakeTensorMode(shape_env=ShapeEnv())
        shape_prop(gm, fake_mode=mode).propagate(mode.from_tensor(torch.tensor([1, 0, 1, 0])))
        bound = {n.name: str(n.meta.get("unbacked_bindings")) for n in gm.graph.nodes}
        return len(mode.shape_env.pending_fresh_unbacked_symbols), bound

    assert run(fx, ShapeProp) == run(torch.fx, OracleShapeProp)


def test_a_torch_fx_module_gets_the_metadata_on_its_own_nodes() -> None:
    torch.manual_seed(0)
    model = TupleAndListOutputs()
    x = torch.randn(2, 3, 6, 6)
    theirs, ours = torch.fx.symbolic_trace(model), torch.fx.symbolic_trace(model)
    OracleShapeProp(theirs).propagate(x)
    ShapeProp(ours).propagate(x)
    assert ours.code == theirs.code
    for name, (meta, kind) in _metas(theirs).items():
        mine, my_kind = _metas(ours)[name]
        _same_meta(mine, meta)
        assert my_kind == kind
