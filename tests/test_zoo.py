"""The bundled models: they build deterministically, run, and trace with torch.fx (the oracle)."""

from __future__ import annotations

import pytest
import torch
import torch.fx

from fxkit import zoo


@pytest.mark.parametrize("name", zoo.list_models())
def test_model_runs_on_its_example_inputs(name: str) -> None:
    model = zoo.get_model(name)
    output = model(*zoo.example_inputs(name))
    assert isinstance(output, torch.Tensor)
    assert torch.isfinite(output).all()
    assert not model.training


@pytest.mark.parametrize("name", zoo.list_models())
def test_same_name_gives_same_weights_and_inputs(name: str) -> None:
    first, second = zoo.get_model(name), zoo.get_model(name)
    for (key, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), key
    for a, b in zip(zoo.example_inputs(name), zoo.example_inputs(name)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", zoo.list_models())
def test_torch_fx_traces_and_matches_eager(name: str) -> None:
    model = zoo.get_model(name)
    inputs = zoo.example_inputs(name)
    traced = torch.fx.symbolic_trace(model)
    torch.testing.assert_close(traced(*inputs), model(*inputs))


def test_resnet_uses_torchvision_style_qualified_names() -> None:
    traced = torch.fx.symbolic_trace(zoo.get_model("resnet"))
    module_targets = [node.target for node in traced.graph.nodes if node.op == "call_module"]
    assert "layer1.0.conv1" in module_targets
    assert "layer2.0.downsample.0" in module_targets
    assert module_targets[-1] == "fc"


def test_transformer_attention_is_written_with_tensor_ops() -> None:
    traced = torch.fx.symbolic_trace(zoo.get_model("transformer"))
    function_targets = [node.target for node in traced.graph.nodes if node.op == "call_function"]
    assert torch.matmul in function_targets and torch.softmax in function_targets
    method_targets = [node.target for node in traced.graph.nodes if node.op == "call_method"]
    assert "view" in method_targets and "transpose" in method_targets


def test_example_inputs_batch_override() -> None:
    (x,) = zoo.example_inputs("transformer", batch=5)
    assert x.shape == (5, 8, 32)
    assert zoo.get_model("transformer")(x).shape == (5, 8, 32)


def test_unknown_name_lists_available_models() -> None:
    with pytest.raises(KeyError) as excinfo:
        zoo.get_model("resnet9000")
    message = str(excinfo.value)
    assert "resnet9000" in message
    for name in zoo.list_models():
        assert name in message
    with pytest.raises(KeyError):
        zoo.example_inputs("nope")


def test_get_model_leaves_global_rng_alone() -> None:
    before = torch.get_rng_state()
    zoo.get_model("resnet")
    zoo.deep_mlp(3)
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("n_layers", [1, 50])
def test_deep_mlp_depth_and_trace(n_layers: int) -> None:
    model = zoo.deep_mlp(n_layers)
    traced = torch.fx.symbolic_trace(model)
    linear_calls = [node for node in traced.graph.nodes if node.op == "call_module"]
    assert len(linear_calls) == n_layers
    x = torch.randn(3, 4)
    torch.testing.assert_close(traced(x), model(x))


def test_deep_mlp_rejects_zero_layers() -> None:
    with pytest.raises(ValueError, match="n_layers"):
        zoo.deep_mlp(0)
