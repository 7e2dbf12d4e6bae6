"""experimental.optimization.fuse against torch.fx's fuse and eager numerics."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.fx
import torch.nn as nn
from torch.fx.experimental.optimization import fuse as oracle_fuse

import fxkit as fx
from fxkit import zoo
from fxkit.experimental.optimization import fuse, matches_module_pattern, remove_dropout, replace_node_module


class AllPairs(nn.Module):
    """Every fusible pair, one BatchNorm whose input is also read elsewhere (not fusible) and
    one without running statistics (not fusible)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1d, self.bn1d = nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4)
        self.conv2d, self.bn2d = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
        self.conv3d, self.bn3d = nn.Conv3d(3, 4, 3), nn.BatchNorm3d(4)
        self.linear, self.bn_linear = nn.Linear(6, 5), nn.BatchNorm1d(5)
        self.shared_conv, self.shared_bn = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)
        self.stateless_conv, self.stateless_bn = (
            nn.Conv2d(3, 4, 1),
            nn.BatchNorm2d(4, track_running_stats=False),
        )

    def forward(self, x1, x2, x3, x4):
        shared = self.shared_conv(x2)
        return (
            self.bn1d(self.conv1d(x1)),
            self.bn2d(self.conv2d(x2)),
            self.bn3d(self.conv3d(x3)),
            self.bn_linear(self.linear(x4)),
            self.shared_bn(shared) + shared,
            self.stateless_bn(self.stateless_conv(x2)),
        )


def _randomize_stats(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-1, 1)
    return model


ALL_PAIRS_INPUTS = (
    torch.randn(2, 3, 8),
    torch.randn(2, 3, 6, 6),
    torch.randn(2, 3, 5, 5, 5),
    torch.randn(4, 6),
)


@pytest.mark.parametrize("name", ["resnet", "all_pairs"])
def test_fuse_matches_torch_fx_and_eager(name: str) -> None:
    if name == "all_pairs":
        model, inputs = AllPairs(), ALL_PAIRS_INPUTS
    else:
        model, inputs = zoo.get_model(name), zoo.example_inputs(name)
    model = _randomize_stats(model).eval()
    fused = fuse(model)
    oracle = oracle_fuse(model)
    assert fused.code == oracle.code
    assert [name for name, _ in fused.named_modules()] == [name for name, _ in oracle.named_modules()]
    with torch.no_grad():
        torch.testing.assert_close(fused(*inputs), model(*inputs), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fused(*inputs), oracle(*inputs))


def test_fuse_leaves_the_original_model_alone() -> None:
    model = _randomize_stats(zoo.get_model("resnet")).eval()
    before = copy.deepcopy(model.state_dict())
    fuse(model)
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


def test_fuse_no_trace_reuses_graph_module() -> None:
    model = _randomize_stats(AllPairs()).eval()
    traced = fx.symbolic_trace(model)
    fused = fuse(traced, no_trace=True)
    with torch.no_grad():
        torch.testing.assert_close(fused(*ALL_PAIRS_INPUTS), model(*ALL_PAIRS_INPUTS), rtol=1e-4, atol=1e-5)


def test_fuse_refuses_training_mode_and_leaves_model_untouched() -> None:
    model = zoo.get_model("resnet").train()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="training mode.*model.eval"):
        fuse(model, inplace=True)
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    with pytest.raises(AssertionError):
        oracle_fuse(model)


def test_helpers_match_and_replace() -> None:
    traced = fx.symbolic_trace(nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)))
    modules = dict(traced.named_modules())
    bn_node = next(node for node in traced.graph.nodes if node.target == "1")
    assert matches_module_pattern((nn.Conv2d, nn.BatchNorm2d), bn_node, modules)
    assert not matches_module_pattern((nn.Conv1d, nn.BatchNorm2d), bn_node, modules)
    replacement = nn.Identity()
    replace_node_module(bn_node, modules, replacement)
    assert traced.get_submodule("1") is replacement and modules["1"] is replacement


def test_remove_dropout_matches_eval_model() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.ReLU()).train()
    cleaned = remove_dropout(model)
    assert not any(isinstance(module, nn.Dropout) for module in cleaned.modules())
    x = torch.randn(3, 4)
    torch.testing.assert_close(cleaned(x), model.eval()(x))
