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


# --- optimize_for_inference and its helpers ------------------------------------------------


class ConvNet(nn.Module):
    """Conv-BN-ReLU, dropout, a branch leaving MKL-DNN layout, add/mul, pooling, a lone Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.relu = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()
        self.drop, self.conv2, self.pool = (
            nn.Dropout(0.5),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.AdaptiveAvgPool2d(1),
        )
        self.maxpool, self.lin = nn.MaxPool2d(2), nn.Linear(8, 4)

    def forward(self, x):
        y = self.drop(self.relu(self.bn(self.conv(x))))
        y = self.conv2(y) + y[:, :, :, :]
        y = torch.sigmoid(self.maxpool(y * 0.5))
        return self.lin(self.pool(y).flatten(1))


class Branches(nn.Module):
    """One value read by an MKL-DNN region and by dense code; a module called twice; regions of
    one, two and several operators; functional operators."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.conv2 = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = self.conv(x)
        a = y.permute(0, 1, 3, 2)
        b = torch.relu(y)
        c = torch.nn.functional.avg_pool2d(self.conv2(b) * y, 1)
        d = x.relu() * self.conv(x)
        return self.conv2(a), b, torch.transpose(c, 2, 3), torch.nn.functional.relu(input=self.conv2(d))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn(self.conv(x))


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blk, self.conv, self.relu, self.drop = Block(), nn.Conv2d(3, 3, 1), nn.ReLU(), nn.Dropout()

    def forward(self, x):
        return self.relu(self.conv(self.drop(self.blk(x)))) * 1.5


def _fx_tracer_pair():
    """The same custom tracer (Block is a leaf) for fxkit and torch.fx."""

    class Leaves(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, Block) or super().is_leaf_module(m, qualname)

    class OracleLeaves(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, Block) or super().is_leaf_module(m, qualname)

    return Leaves, OracleLeaves


def _regions(log):
    def heuristic(region):
        log.append(
            (
                [n.name for n in region.nodes],
                [n.name for n in region.start_nodes],
                [n.name for n in region.end_nodes],
            )
        )
        return len(log) % 2 == 1  # keep every other region: exercises both outcomes

    return heuristic


OFI_CASES = {
    "convnet": (ConvNet, (torch.randn(2, 3, 10, 10),)),
    "branches": (Branches, (torch.randn(1, 3, 6, 6),)),
    "nested": (Nested, (torch.randn(1, 3, 4, 4),)),
}
OFI_CONFIGS = [
    None,
    {"conv_bn_fuse": False},
    {"remove_dropout": False},
    {"mkldnn_layout_optimize": False},
    {"conv_bn_fuse": False, "remove_dropout": False},
    "alternating",
    "always",
]


@pytest.mark.parametrize("config", OFI_CONFIGS, ids=str)
@pytest.mark.parametrize("case", sorted(OFI_CASES))
def test_optimize_for_inference_matches_torch_fx(case, config) -> None:
    from torch.fx.experimental import optimization as oracle

    from fxkit.experimental.optimization import optimize_for_inference

    make, inputs = OFI_CASES[case]
    model = _randomize_stats(make()).eval()
    ours_log, oracle_log = [], []
    if config == "alternating":
        ours_config = {"mkldnn_layout_optimize": {"heuristic": _regions(ours_log)}}
        oracle_config = {"mkldnn_layout_optimize": {"heuristic": _regions(oracle_log)}}
    elif config == "always":
        ours_config = oracle_config = {"mkldnn_layout_optimize": {"heuristic": lambda region: True}}
    else:
        ours_config = oracle_config = config
    expected = model(*inputs)
    ours = optimize_for_inference(model, ours_config)
    oracle_result = oracle.optimize_for_inference(copy.deepcopy(model), oracle_config)
    assert ours.code == oracle_result.code
    assert ours_log == oracle_log
    assert [name for name, _ in ours.named_modules()] == [name for name, _ in oracle_result.named_modules()]
    leaf_types = lambda gm: [type(m).__name__ for m in gm.modules() if not list(m.children())]  # noqa: E731
    assert leaf_types(ours) == leaf_types(oracle_result)
    with torch.no_grad():
        torch.testing.assert_close(ours(*inputs), expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model(*inputs), expected)  # the model itself is untouched


def test_optimize_for_inference_custom_tracer() -> None:
    from torch.fx.experimental import optimization as oracle

    from fxkit.experimental.optimization import optimize_for_inference

    leaves, oracle_leaves = _fx_tracer_pair()
    model, x = _randomize_stats(Nested()).eval(), torch.randn(1, 3, 4, 4)
    for config in (None, {"conv_bn_fuse": False}):
        ours = optimize_for_inference(model, config, tracer=leaves)
        expected = oracle.optimize_for_inference(copy.deepcopy(model), config, tracer=oracle_leaves)
        assert ours.code == expected.code
        with torch.no_grad():
            torch.testing.assert_close(ours(x), model(x), rtol=1e-4, atol=1e-5)


def test_optimize_for_inference_config_errors_and_untouched_model() -> None:
    from torch.fx.experimental import optimization as oracle

    from fxkit.experimental.optimization import optimize_for_inference

    model = Branches().eval()
    for bad, message in (({}, "Heuristic not found"), (True, "not a dict"), (None, "not a dict")):
        with pytest.raises(RuntimeError, match=message):
            optimize_for_inference(model, {"mkldnn_layout_optimize": bad})
        with pytest.raises(RuntimeError, match=message):
            oracle.optimize_for_inference(model, {"mkldnn_layout_optimize": bad})
    # All passes off: the model comes back as it is, as torch.fx returns it.
    off = {"conv_bn_fuse": False, "remove_dropout": False, "mkldnn_layout_optimize": False}
    assert optimize_for_inference(model, off) is model
    assert oracle.optimize_for_inference(model, off) is model
    # torch.fx swaps modules inside the caller's model when no fusion copied it first; fxkit never does.
    optimize_for_inference(
        model, {"conv_bn_fuse": False, "mkldnn_layout_optimize": {"heuristic": lambda r: True}}
    )
    assert [type(m) for m in model.modules()] == [Branches, nn.Conv2d, nn.Conv2d]


def test_optimize_for_inference_keeps_scalar_add_dense() -> None:
    """torch.fx sends ``mkldnn_tensor + 1`` to MKL-DNN, which cannot add Python numbers (its module
    then fails when called); fxkit leaves that add dense."""
    from fxkit.experimental.optimization import optimize_for_inference

    class ScalarAdd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.relu, self.conv2 = nn.Conv2d(3, 3, 1), nn.ReLU(), nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.conv2(self.relu(self.conv(x)) + 1)

    model, x = ScalarAdd().eval(), torch.randn(1, 3, 5, 5)
    ours = optimize_for_inference(model, {"mkldnn_layout_optimize": {"heuristic": lambda r: True}})
    add = next(node for node in ours.graph.nodes if node.name == "add")
    assert [arg.target for arg in add.args if isinstance(arg, fx.Node)] == ["to_dense"]
    with torch.no_grad():
        torch.testing.assert_close(ours(x), model(x), rtol=1e-4, atol=1e-5)


def test_remove_dropout_matches_torch_fx() -> None:
    from torch.fx.experimental.optimization import remove_dropout as oracle_remove_dropout

    class Drops(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.d, self.seq, self.d2 = (
                nn.Dropout(),
                nn.Sequential(nn.Linear(3, 3), nn.Dropout()),
                nn.Dropout2d(),
            )

        def forward(self, x):
            unused = x * 3  # noqa: F841  (dead code is kept, as torch.fx keeps it)
            return self.d2(self.seq(self.d(x)))

    model = Drops()
    ours, oracle = remove_dropout(model), oracle_remove_dropout(model)
    assert ours.code == oracle.code
    assert [name for name, _ in ours.named_modules()] == [name for name, _ in oracle.named_modules()]
    assert ours.get_submodule("seq.0").weight is model.seq[0].weight  # shared, as in torch.fx


def test_extract_subgraph_matches_torch_fx() -> None:
    from torch.fx.experimental.optimization import extract_subgraph as oracle_extract

    from fxkit.experimental.optimization import extract_subgraph

    model = Branches()
    results = []
    for trace, extract in ((fx.symbolic_trace, extract_subgraph), (torch.fx.symbolic_trace, oracle_extract)):
        gm = trace(model)
        nodes = {n.name: n for n in gm.graph.nodes}
        pick = lambda *names: [nodes[name] for name in names]  # noqa: E731
        results.append([
            extract(gm, pick("conv", "relu", "conv2", "mul"), pick("x"), pick("mul", "relu")),
            extract(gm, pick("relu", "conv2"), pick("conv", "x"), pick("conv2")),
        ])  # fmt: skip
    x = torch.randn(1, 3, 4, 4)
    for ours, oracle in zip(*results):
        assert ours.code == oracle.code
    torch.testing.assert_close(results[0][0](x), results[1][0](x))


def test_union_find_matches_torch_fx() -> None:
    from torch.fx.experimental.optimization import UnionFind as OracleUnionFind

    from fxkit.experimental.optimization import UnionFind

    ops = [("make_set", i) for i in range(6)] + [
        ("join", 0, 1), ("join", 2, 1), ("join", 0, 0), ("join", 3, 4), ("join", 4, 0), ("find", 4), ("find", 2),
        ("join", 5, 3), ("find", 5),
    ]  # fmt: skip
    ours, oracle = UnionFind(6), OracleUnionFind(6)
    for name, *args in ops:
        assert getattr(ours, name)(*args) == getattr(oracle, name)(*args)
        assert (ours.parent, ours.size) == (oracle.parent, oracle.size)


def test_modules_to_mkldnn_and_reset_round_trip() -> None:
    from fxkit.experimental.optimization import mkldnn_map, modules_to_mkldnn, reset_modules

    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2)
    ).eval()
    traced = fx.symbolic_trace(model)
    modules = dict(traced.named_modules())
    originals = [modules[str(i)] for i in range(5)]
    old = modules_to_mkldnn(list(traced.graph.nodes), modules)
    assert [type(traced.get_submodule(str(i))) for i in (0, 1, 4)] == [
        mkldnn_map[nn.Conv2d], type(mkldnn_map[nn.BatchNorm2d](originals[1], torch.float)), mkldnn_map[nn.Linear]
    ]  # fmt: skip
    assert traced.get_submodule("2") is originals[2]
    reset_modules(traced.graph.nodes, modules, old)
    assert [traced.get_submodule(str(i)) for i in range(5)] == originals


def test_gen_mkl_autotuner_keeps_results_correct() -> None:
    from fxkit.experimental.optimization import gen_mkl_autotuner, optimize_for_inference, use_mkl_length

    model, x = _randomize_stats(ConvNet()).eval(), torch.randn(2, 3, 10, 10)
    decisions = []
    autotuner = gen_mkl_autotuner([x], iters=1, warmup=0)

    def heuristic(region):
        decisions.append(autotuner(region))
        return decisions[-1]

    tuned = optimize_for_inference(model, {"mkldnn_layout_optimize": {"heuristic": heuristic}})
    assert len(decisions) == 2 and all(isinstance(d, bool) for d in decisions)
    with torch.no_grad():
        torch.testing.assert_close(tuned(x), model(x), rtol=1e-4, atol=1e-5)
    assert use_mkl_length.__name__ == "use_mkl_length"


def test_optimization_public_names_match_torch_fx() -> None:
    import torch.fx.experimental.optimization as oracle

    import fxkit.experimental.optimization as ours

    assert ours.__all__ == oracle.__all__
    assert set(ours.mkldnn_map) == set(oracle.mkldnn_map)
    assert ours.mkldnn_supported == oracle.mkldnn_supported
    assert ours.mkldnn_supported_unknown == oracle.mkldnn_supported_unknown
