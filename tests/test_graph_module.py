"""GraphModule: construction from a module or dict, recompilation, submodule editing, copying, pickling,
exporting and debugging. torch.fx is the oracle where both define the behaviour."""

from __future__ import annotations

import copy
import importlib
import operator
import pickle
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any, Dict, List

import pytest
import torch
import torch.fx

import fxkit


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
        self.head = torch.nn.Linear(4, 2)
        self.unused = torch.nn.Linear(3, 3)
        self.block = torch.nn.Module()
        self.block.norm = torch.nn.BatchNorm1d(4)
        self.block.register_buffer("offset", torch.arange(4.0))
        self.block.register_buffer("scratch", torch.zeros(4), persistent=False)
        self.block.gain = torch.nn.Parameter(torch.ones(4))
        self.block.spare = torch.nn.Parameter(torch.zeros(1))
        self.register_buffer("ignored", torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        h = self.block.norm(h) * self.block.gain + self.block.offset + self.block.scratch
        return self.head(h)


def build_net_graph(fx: Any) -> Any:
    """The graph of ``Net.forward``, built by hand."""
    g = fx.Graph()
    x = g.placeholder("x")
    h = g.call_module("encoder", (x,))
    norm = g.call_module("block.norm", (h,))
    gain = g.get_attr("block.gain")
    offset = g.get_attr("block.offset")
    scratch = g.get_attr("block.scratch")
    h = g.call_function(operator.mul, (norm, gain))
    h = g.call_function(operator.add, (h, offset))
    h = g.call_function(operator.add, (h, scratch))
    g.output(g.call_module("head", (h,)))
    return g


def pair(root: Any = None) -> tuple:
    """(ours, theirs) built from the same root module."""
    root = Net().eval() if root is None else root
    return fxkit.GraphModule(root, build_net_graph(fxkit)), torch.fx.GraphModule(
        root, build_net_graph(torch.fx)
    )


def inputs() -> torch.Tensor:
    return torch.randn(5, 4)


# ---------------------------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------------------------


def test_root_module_copies_only_referenced_attributes_at_same_paths() -> None:
    ours, theirs = pair()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    # Intended divergence: torch.fx re-registers non-persistent buffers as persistent; fxkit keeps the
    # flag, so the GraphModule's state_dict has the keys of the original module's state_dict.
    assert list(ours.state_dict()) == [key for key in theirs.state_dict() if key != "block.scratch"]
    assert "unused" not in dict(ours.named_modules())
    assert "block.spare" not in dict(ours.named_parameters())
    assert isinstance(ours.block.gain, torch.nn.Parameter)
    assert "offset" in ours.block._buffers and "scratch" in ours.block._buffers
    assert "scratch" in ours.block._non_persistent_buffers_set
    x = inputs()
    torch.testing.assert_close(ours(x), theirs(x))


def test_root_module_shares_the_original_modules_like_torch_fx() -> None:
    root = Net()
    ours, theirs = pair(root)
    assert (ours.encoder is root.encoder) == (theirs.encoder is root.encoder)
    assert (ours.block.gain is root.block.gain) == (theirs.block.gain is root.block.gain)


def test_root_dict() -> None:
    root = Net()
    mapping = {
        "encoder": root.encoder,
        "block.norm": root.block.norm,
        "block.gain": root.block.gain,
        "block.offset": root.block.offset,
        "block.scratch": root.block.scratch,
        "head": root.head,
    }
    ours = fxkit.GraphModule(mapping, build_net_graph(fxkit))
    theirs = torch.fx.GraphModule(mapping, build_net_graph(torch.fx))
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    ours.eval(), theirs.eval()
    x = inputs()
    torch.testing.assert_close(ours(x), theirs(x))
    assert ours.code == theirs.code


@pytest.mark.parametrize("root_kind", ["module", "dict"])
def test_missing_target_is_a_clear_error_naming_the_node(root_kind: str) -> None:
    g = fxkit.Graph()
    x = g.placeholder("x")
    w = g.get_attr("block.missing_weight")
    g.output(g.call_function(operator.add, (x, w)))
    before = str(g)
    root: Any = Net() if root_kind == "module" else {"encoder": torch.nn.ReLU()}
    # torch.fx raises AttributeError for a module root and RuntimeError for a dict root.
    expected_error = AttributeError if root_kind == "module" else RuntimeError
    with pytest.raises(expected_error, match="'block_missing_weight'.*block.missing_weight") as error:
        fxkit.GraphModule(root, g)
    assert "Add" in str(error.value)
    assert str(g) == before
    assert g.owning_module is None


def test_plain_tensor_and_non_tensor_attributes_like_torch_fx() -> None:
    root = torch.nn.Module()
    root.const = torch.ones(2)
    root.count = 3
    root.seq = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    root.seq[0].register_buffer("extra", torch.zeros(2))

    def build(fx: Any) -> Any:
        g = fx.Graph()
        x = g.placeholder("x")
        total = g.call_function(operator.add, (g.call_module("seq.0", (x,)), g.get_attr("const")))
        total = g.call_function(operator.mul, (total, g.get_attr("count")))
        g.output(g.call_function(operator.add, (total, g.get_attr("seq.0.extra"))))
        return g

    ours, theirs = fxkit.GraphModule(root, build(fxkit)), torch.fx.GraphModule(root, build(torch.fx))
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.count == theirs.count == 3
    assert str(ours) == str(theirs)
    torch.testing.assert_close(ours(torch.ones(2)), theirs(torch.ones(2)))
    ours.to(torch.float64)
    assert ours.const.dtype == torch.float64


def test_root_of_wrong_type_raises() -> None:
    with pytest.raises(RuntimeError, match="nn.Module or a dict"):
        fxkit.GraphModule(42, build_net_graph(fxkit))  # type: ignore[arg-type]


def test_training_flag_follows_root() -> None:
    for training in (True, False):
        root = Net().train(training)
        ours, theirs = pair(root)
        assert ours.training == theirs.training == training


# ---------------------------------------------------------------------------------------------
# Recompiling
# ---------------------------------------------------------------------------------------------


def _double_graph(fx: Any, factor: float) -> Any:
    g = fx.Graph()
    x = g.placeholder("x")
    g.output(g.call_function(operator.mul, (x, factor)))
    return g


def test_graph_setter_recompiles() -> None:
    module = fxkit.GraphModule(torch.nn.Module(), _double_graph(fxkit, 2.0))
    assert module(torch.ones(1)).item() == 2.0
    module.graph = _double_graph(fxkit, 5.0)
    assert module.graph.owning_module is module
    assert "x * 5.0" in module.code
    assert module(torch.ones(1)).item() == 5.0
    with pytest.raises(TypeError, match="Graph"):
        module.graph = torch.fx.Graph()  # type: ignore[assignment]


def test_recompile_after_edits_and_code_property() -> None:
    ours, theirs = pair()
    for module in (ours, theirs):
        for node in module.graph.nodes:
            if node.op == "call_function" and node.target is operator.mul:
                node.target = operator.sub
        module.recompile()
    assert ours.code == theirs.code
    assert "mul = block_norm - block_gain" in ours.code
    x = inputs()
    torch.testing.assert_close(ours(x), theirs(x))


def test_several_recompiles_without_a_call() -> None:
    module = fxkit.GraphModule(torch.nn.Module(), _double_graph(fxkit, 2.0))
    mul = next(n for n in module.graph.nodes if n.op == "call_function")
    for factor in (3.0, 4.0, 6.0):
        mul.args = (mul.args[0], factor)
        module.recompile()
    assert module(torch.ones(1)).item() == 6.0
    assert module.recompile().src == module.code


def test_two_graph_modules_never_share_forward() -> None:
    first = fxkit.GraphModule(torch.nn.Module(), _double_graph(fxkit, 2.0))
    second = fxkit.GraphModule(torch.nn.Module(), _double_graph(fxkit, 3.0))
    assert type(first) is not type(second)
    assert first(torch.ones(1)).item() == 2.0 and second(torch.ones(1)).item() == 3.0
    second.graph = _double_graph(fxkit, 7.0)
    assert first(torch.ones(1)).item() == 2.0 and second(torch.ones(1)).item() == 7.0
    assert isinstance(first, fxkit.GraphModule) and isinstance(second, fxkit.GraphModule)


class Named(fxkit.GraphModule):
    def describe(self) -> str:
        return "named"


def test_subclass_of_graph_module_keeps_its_methods() -> None:
    module = Named(torch.nn.Module(), _double_graph(fxkit, 2.0), class_name="Custom")
    assert isinstance(module, Named) and module.describe() == "named"
    assert type(module).__name__ == "Custom"
    assert module(torch.ones(1)).item() == 2.0
    copied = copy.deepcopy(module)
    assert isinstance(copied, Named) and type(copied).__name__ == "Custom"
    restored = pickle.loads(pickle.dumps(module))
    assert isinstance(restored, Named) and restored(torch.ones(1)).item() == 2.0


def test_error_inside_forward_shows_the_generated_line() -> None:
    g = fxkit.Graph()
    x = g.placeholder("x")
    bad = g.call_function(torch.matmul, (x, x))
    g.output(bad)
    module = fxkit.GraphModule(torch.nn.Module(), g)
    with pytest.raises(RuntimeError) as error:
        module(torch.ones(2, 3))
    formatted = "".join(traceback.format_exception(error.value))
    assert "matmul = torch.matmul(x, x);  x = None" in formatted


# ---------------------------------------------------------------------------------------------
# Submodules
# ---------------------------------------------------------------------------------------------


def test_submodule_editing_like_torch_fx() -> None:
    ours, theirs = pair()
    for module in (ours, theirs):
        assert module.add_submodule("extra.deep.layer", torch.nn.Linear(2, 2))
        assert module.get_submodule("extra.deep.layer").in_features == 2
        assert module.add_submodule("head", torch.nn.Linear(4, 2))
        assert not module.delete_submodule("extra.nothing")
        assert not module.delete_submodule("block.offset")
        assert module.delete_submodule("extra.deep.layer")
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    for module in (ours, theirs):
        module.add_submodule("spare", torch.nn.Sequential(torch.nn.ReLU()))
        module.delete_all_unused_submodules()
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    with pytest.raises(AttributeError):
        ours.get_submodule("spare")


def test_add_submodule_through_a_non_module_fails() -> None:
    ours, theirs = pair()
    for module in (ours, theirs):
        assert not module.add_submodule("block.offset.layer", torch.nn.ReLU())


def test_submodule_paths_through_missing_and_non_module_names_like_torch_fx() -> None:
    def outcomes(module: Any) -> List[Any]:
        return [
            module.delete_submodule("missing.layer"),
            module.delete_submodule("block.offset.layer"),
            module.delete_submodule("block"),
            module.add_submodule("a.b.c", torch.nn.ReLU()),
            module.delete_submodule("a.b"),
            module.add_submodule("a.b", torch.nn.ReLU()),
            [name for name, _ in module.named_modules()],
        ]

    ours, theirs = pair()
    assert outcomes(ours) == outcomes(theirs)


def test_delete_all_unused_submodules_keeps_called_module_children() -> None:
    ours, theirs = pair()
    for module in (ours, theirs):
        module.encoder.add_module("extra", torch.nn.ReLU())
        module.delete_all_unused_submodules()
    assert "encoder.extra" in dict(ours.named_modules())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]


# ---------------------------------------------------------------------------------------------
# Copying, pickling, moving
# ---------------------------------------------------------------------------------------------


def test_deepcopy_is_independent() -> None:
    ours, theirs = pair()
    copied = copy.deepcopy(ours)
    assert copied.code == ours.code == copy.deepcopy(theirs).code
    assert copied.graph is not ours.graph and copied.graph.owning_module is copied
    assert copied.block.gain is not ours.block.gain
    x = inputs()
    torch.testing.assert_close(copied(x), ours(x))
    with torch.no_grad():
        copied.block.gain.mul_(2)
    assert not torch.equal(copied(x), ours(x))
    copied.graph.erase_node(next(iter(reversed(copied.graph.nodes))))
    copied.recompile()
    assert "return" in ours.code and ours(x).shape == (5, 2)


def test_shallow_copy_shares_graph_but_not_class() -> None:
    ours, _ = pair()
    copied = copy.copy(ours)
    assert type(copied) is not type(ours)
    x = inputs()
    torch.testing.assert_close(copied(x), ours(x))


def test_pickle_round_trip_does_not_retrace_and_keeps_code() -> None:
    ours, _ = pair()
    x = inputs()
    restored = pickle.loads(pickle.dumps(ours))
    assert restored.code == ours.code
    assert str(restored.graph) == str(ours.graph)
    assert type(restored).__name__ == type(ours).__name__
    torch.testing.assert_close(restored(x), ours(x))
    assert restored.graph.owning_module is restored
    restored.graph.lint()


def test_pickle_round_trip_of_a_hand_edited_graph_keeps_the_edits() -> None:
    module = fxkit.symbolic_trace(Net().eval())
    for node in module.graph.nodes:
        if node.op == "call_function" and node.target is operator.mul:
            node.target = operator.sub
    module.recompile()
    restored = pickle.loads(pickle.dumps(module))
    assert restored.code == module.code and "mul = block_norm - block_gain" in restored.code
    x = inputs()
    torch.testing.assert_close(restored(x), module(x))


def test_pickle_of_a_10k_node_graph_module() -> None:
    g = fxkit.Graph()
    value = g.placeholder("x")
    for _ in range(10000):
        value = g.call_function(operator.add, (value, 1))
    g.output(value)
    module = fxkit.GraphModule(torch.nn.Module(), g)
    restored = pickle.loads(pickle.dumps(module))
    assert len(restored.graph.nodes) == 10002
    assert restored.code == module.code
    assert restored(torch.zeros(1)).item() == 10000.0


def test_state_dict_to_and_train_eval() -> None:
    ours, theirs = pair(Net().train())
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(value, theirs.state_dict()[key])
    moved = ours.to(torch.float64)
    assert (
        moved is ours and ours.block.gain.dtype == torch.float64 and ours.block.offset.dtype == torch.float64
    )
    assert ours(inputs().double()).dtype == torch.float64
    ours.eval()
    assert not ours.training and not ours.block.norm.training
    ours.train()
    assert ours.training and ours.block.norm.training


def test_load_state_dict_round_trip() -> None:
    first, _ = pair(Net().eval())
    second, _ = pair(Net().eval())
    second.load_state_dict(first.state_dict())
    x = inputs()
    torch.testing.assert_close(first(x), second(x))


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_torch_jit_script_works_like_torch_fx() -> None:
    ours, theirs = pair()
    scripted_ours = torch.jit.script(ours)
    scripted_theirs = torch.jit.script(theirs)
    x = inputs()
    torch.testing.assert_close(scripted_ours(x), scripted_theirs(x))
    torch.testing.assert_close(scripted_ours(x), ours(x))


# ---------------------------------------------------------------------------------------------
# Printing and exporting
# ---------------------------------------------------------------------------------------------


def test_str_and_print_readable_match_torch_fx(capsys: pytest.CaptureFixture[str]) -> None:
    ours, theirs = pair()
    assert str(ours) == str(theirs)
    assert ours.print_readable(print_output=False) == theirs.print_readable(print_output=False)
    returned = ours.print_readable()
    assert capsys.readouterr().out == returned + "\n"


def test_to_folder_writes_an_importable_package(tmp_path: Path) -> None:
    ours, _ = pair(Net().eval())
    folder = tmp_path / "exported_net"
    ours.to_folder(folder, "ExportedNet")
    sys.path.insert(0, str(tmp_path))
    try:
        package = importlib.import_module("exported_net")
        loaded = package.ExportedNet().eval()
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == "exported_net" or n.startswith("exported_net.")]:
            del sys.modules[name]
    assert list(loaded.state_dict()) == list(ours.state_dict())
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    x = inputs()
    torch.testing.assert_close(loaded(x), ours(x))


def test_to_folder_with_user_function_and_parameters_at_top_level(tmp_path: Path) -> None:
    root = torch.nn.Module()
    root.weight = torch.nn.Parameter(torch.randn(3))
    root.register_buffer("bias", torch.randn(3))
    g = fxkit.Graph()
    x = g.placeholder("x")
    w = g.get_attr("weight")
    b = g.get_attr("bias")
    y = g.call_function(torch.addcmul, (b, x, w))
    g.output(g.call_function(operator.getitem, (g.call_function(torch.max, (y,), {"dim": 0}), 0)))
    module = fxkit.GraphModule(root, g)
    module.to_folder(tmp_path / "flat_export", "Flat")
    sys.path.insert(0, str(tmp_path))
    try:
        loaded = importlib.import_module("flat_export").Flat()
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == "flat_export" or n.startswith("flat_export.")]:
            del sys.modules[name]
    x_value = torch.randn(3)
    torch.testing.assert_close(loaded(x_value), module(x_value))
    assert isinstance(loaded.weight, torch.nn.Parameter)
    assert "bias" in loaded._buffers


def test_meta_is_kept_on_graph_module() -> None:
    module = fxkit.GraphModule(torch.nn.Module(), _double_graph(fxkit, 2.0))
    module.meta["note"] = "kept"
    assert copy.deepcopy(module).meta == {"note": "kept"}
    assert pickle.loads(pickle.dumps(module)).meta == {"note": "kept"}


def test_graph_module_from_traced_module_matches_names() -> None:
    net = Net().eval()
    ours, theirs = fxkit.symbolic_trace(net), torch.fx.symbolic_trace(net)
    assert ours.code == theirs.code
    rebuilt: Dict[str, List[str]] = {}
    for label, module, fx in (("ours", ours, fxkit), ("theirs", theirs, torch.fx)):
        again = fx.GraphModule(module, module.graph)
        rebuilt[label] = [n for n, _ in again.named_parameters()]
    assert rebuilt["ours"] == rebuilt["theirs"]


def test_pickle_drops_unpicklable_meta_with_a_warning_but_keeps_the_module() -> None:
    class LocalInner(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.proj(x))

    class LocalOuter(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = LocalInner()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) + 1

    traced = fxkit.symbolic_trace(LocalOuter())
    with pytest.warns(UserWarning, match="nn_module_stack"):
        restored = pickle.loads(pickle.dumps(traced))
    x = torch.randn(3, 2)
    assert restored.code == traced.code
    torch.testing.assert_close(restored(x), traced(x))


def test_identical_sources_share_compiled_code_and_keep_their_linecache_entry() -> None:
    import gc
    import inspect
    import linecache

    def build() -> fxkit.GraphModule:
        graph = fxkit.Graph()
        x = graph.placeholder("x")
        graph.output(graph.call_function(torch.neg, (x,)))
        return fxkit.GraphModule(torch.nn.Module(), graph)

    first, second = build(), build()
    x = torch.ones(2)
    torch.testing.assert_close(first(x), second(x))
    first_code = type(first).forward.__code__
    assert first_code is type(second).forward.__code__
    key = first_code.co_filename
    del first
    gc.collect()
    assert "neg = torch.neg(x)" in "".join(linecache.getlines(key))
    assert "torch.neg" in inspect.getsource(type(second).forward)


# ---------------------------------------------------------------------------------------------
# What is compiled: the displayed source with frees written ``del x``
# ---------------------------------------------------------------------------------------------


class _Tracked:
    """A value whose lifetime a test can observe through a weak reference."""


_TRACKED_REFS: List[Any] = []


def _make_tracked(x: torch.Tensor) -> _Tracked:
    import weakref

    value = _Tracked()
    _TRACKED_REFS.append(weakref.ref(value))
    return value


def _was_released(x: torch.Tensor) -> bool:
    return _TRACKED_REFS[-1]() is None


def test_compiled_forward_releases_values_after_their_last_use() -> None:
    graph = fxkit.Graph()
    x = graph.placeholder("x")
    tracked = graph.call_function(_make_tracked, (x,))
    kept = graph.call_function(operator.getitem, ((x, tracked), 0))  # last read of `tracked`
    graph.output(graph.call_function(_was_released, (kept,)))
    module = fxkit.GraphModule(torch.nn.Module(), graph)
    assert "getitem = (x, _make_tracked)[0];  x = _make_tracked = None" in module.code
    assert module(torch.ones(1)) is True


def test_compiled_text_differs_from_the_display_only_in_how_values_are_freed() -> None:
    import inspect

    module = fxkit.symbolic_trace(lambda x, y: torch.relu(x + y) * y)
    python_code = module.graph.python_code(root_module="self")
    display, compiled = python_code.src.split("\n"), python_code._exec_src.split("\n")
    assert len(display) == len(compiled)
    for shown, run in zip(display, compiled):
        if shown != run:
            statement, _, freed = shown.partition(";  ")
            names = freed[: -len(" = None")].split(" = ")
            assert run == f"{statement};  del {', '.join(names)}"
    assert "add = x + y;  x = None" in module.code
    assert inspect.getsource(type(module).forward).strip() == module.code.strip()
    torch.testing.assert_close(module(torch.ones(2), torch.ones(2)), torch.full((2,), 2.0))


def test_a_body_transformer_is_compiled_as_displayed() -> None:
    module = fxkit.symbolic_trace(lambda x: torch.relu(x) + 1)
    module.graph._codegen._body_transformer = lambda body: ["print('running')", *body]
    module.recompile()
    assert module.graph.python_code(root_module="self")._exec_src is None
    torch.testing.assert_close(module(torch.ones(2)), torch.full((2,), 2.0))


def _malformed(kind: str, fx: Any) -> Any:
    """A graph torch.fx turns into code that fails at the first call or returns early."""
    graph = fx.Graph()
    x = graph.placeholder("x")
    relu = graph.call_function(torch.relu, (x,))
    neg = graph.call_function(torch.neg, (relu,))
    if kind == "use-before-definition":
        relu.prepend(neg)
        graph.output(neg)
    elif kind == "cycle":
        relu.args = (neg,)
        graph.output(neg)
    elif kind == "two-outputs":
        graph.output(neg)
        graph.output(x)
    return graph


MALFORMED = {
    "use-before-definition": "Node 'neg' reads 'relu' before it is defined",
    "cycle": "Node 'relu' reads 'neg' before it is defined",
    "two-outputs": "Node 'output_1' is a second output node after the output node 'output'",
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_graph_is_refused_when_code_is_made_naming_the_node(kind: str) -> None:
    # torch.fx builds the module and fails (or returns before some nodes) only when it runs.
    theirs = torch.fx.GraphModule(torch.nn.Module(), _malformed(kind, torch.fx))
    if kind in ("use-before-definition", "cycle"):
        with pytest.raises(UnboundLocalError):
            theirs(torch.ones(2))
    with pytest.raises(RuntimeError, match=MALFORMED[kind]):
        fxkit.GraphModule(torch.nn.Module(), _malformed(kind, fxkit))
    with pytest.raises(RuntimeError, match=MALFORMED[kind]):
        _malformed(kind, fxkit).python_code("self")


def test_recompile_refuses_a_graph_broken_after_construction_and_keeps_the_old_code() -> None:
    graph = _malformed("fine", fxkit)
    graph.output(list(graph.nodes)[-1])
    module = fxkit.GraphModule(torch.nn.Module(), graph)
    relu, neg = list(graph.find_nodes(op="call_function"))
    relu.prepend(neg)
    with pytest.raises(RuntimeError, match="Node 'neg' reads 'relu' before it is defined"):
        module.recompile()
    neg.prepend(relu)  # repaired: the module runs again
    torch.testing.assert_close(module(torch.tensor([-1.0, 2.0])), torch.tensor([0.0, -2.0]))


def test_a_node_after_the_output_is_dead_code_as_in_torch_fx() -> None:
    results = []
    for fx in (torch.fx, fxkit):
        graph = fx.Graph()
        x = graph.placeholder("x")
        output = graph.output(graph.call_function(torch.relu, (x,)))
        with graph.inserting_after(output):
            graph.call_function(torch.neg, (x,))
        results.append(fx.GraphModule(torch.nn.Module(), graph)(torch.tensor([-1.0, 2.0])))
    torch.testing.assert_close(results[1], results[0])


def _import_package(folder: Path, class_name: str) -> torch.nn.Module:
    sys.path.insert(0, str(folder.parent))
    try:
        return getattr(importlib.import_module(folder.name), class_name)()
    finally:
        sys.path.remove(str(folder.parent))
        for name in [n for n in sys.modules if n == folder.name or n.startswith(folder.name + ".")]:
            del sys.modules[name]


@pytest.mark.parametrize("fx", [torch.fx, fxkit], ids=["torch.fx", "fxkit"])
def test_to_folder_with_numeric_child_names_imports(fx: Any, tmp_path: Path) -> None:
    """nn.Sequential's children are named 0, 1, ...: the package sets them with setattr (as torch.fx
    writes it) and still imports; its weights are read back with weights_only=True."""
    torch.manual_seed(0)
    module = fx.symbolic_trace(
        torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    )
    folder = tmp_path / f"sequential_{fx.__name__.replace('.', '_')}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.fx warns about children it pickles
        module.to_folder(folder, "Exported")
    source = (folder / "module.py").read_text()
    assert "setattr(self, '0', " in source
    if fx is fxkit:
        assert "torch.load(_HERE / 'state_dict.pt', weights_only=True)" in source
    loaded = _import_package(folder, "Exported")
    x = torch.randn(4, 3)
    torch.testing.assert_close(loaded(x), module(x))


def _nested_sequential(depth: int) -> torch.nn.Module:
    module: torch.nn.Module = torch.nn.Linear(2, 2)
    for _ in range(depth):
        module = torch.nn.Sequential(module)
    return module


def _traced_with_room(fx: Any, model: torch.nn.Module) -> Any:
    """Tracing recurses once per module level in both libraries: give it the stack it needs."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        return fx.symbolic_trace(model)
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize("round_trip", ["pickle", "deepcopy"])
def test_a_500_deep_traced_hierarchy_round_trips_at_the_default_recursion_limit(round_trip: str) -> None:
    do = (lambda gm: pickle.loads(pickle.dumps(gm))) if round_trip == "pickle" else copy.deepcopy
    assert sys.getrecursionlimit() <= 1000
    # torch.fx already fails at 200 levels (and cannot generate code for 300).
    with pytest.raises(RecursionError):
        do(_traced_with_room(torch.fx, _nested_sequential(200)))
    gm = _traced_with_room(fxkit, _nested_sequential(500))
    copied = do(gm)
    x = torch.randn(3, 2)
    torch.testing.assert_close(copied(x), gm(x))
    assert (
        copied.get_submodule(".".join(["0"] * 500)).weight
        is not gm.get_submodule(".".join(["0"] * 500)).weight
    )


@pytest.mark.parametrize("round_trip", ["pickle", "deepcopy"])
def test_round_trips_keep_a_module_shared_by_two_paths_shared(round_trip: str) -> None:
    do = (lambda gm: pickle.loads(pickle.dumps(gm))) if round_trip == "pickle" else copy.deepcopy

    shared = torch.nn.Linear(2, 2)
    root = torch.nn.Module()
    root.first = torch.nn.Sequential(shared)
    root.second = torch.nn.Sequential(torch.nn.ReLU(), shared)
    graph = fxkit.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_module("second.1", (graph.call_module("first.0", (x,)),)))
    copied = do(fxkit.GraphModule(root, graph))
    assert getattr(copied.first, "0") is getattr(copied.second, "1")
    x = torch.randn(3, 2)
    layer = getattr(copied.first, "0")
    torch.testing.assert_close(copied(x), layer(layer(x)))
