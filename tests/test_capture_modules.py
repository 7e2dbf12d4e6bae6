"""fxkit.capture and the modules that run during forward: unregistered ones, and leaves.

Modules built inside ``forward``, held in plain lists or dicts, or living at module level (as the
kernel-hub function layers of transformers do) are traced through; one that stays a call is
installed under a generated name in the captured module, never on the user's model. Every graph
is checked against eager execution. An automatic leaf is the smallest module whose tracing fails;
the result and ``explain`` report the share of parameters inside leaves, and ``leaves="error"``
turns an automatic leaf into a CaptureError.
"""

import json
import os
from typing import Dict, Optional

import pytest
import torch
import torch.fx
from torch import nn

import fxkit
import fxkit.capture_tracer
import fxkit.guards
from tests._source_lines import line_of

# Every capture test runs with the per-class patches (the fast path) and with nn.Module's.
pytestmark = pytest.mark.usefixtures("both_patch_kinds")

THIS_FILE = os.path.abspath(__file__)


def _line_of(marker: str) -> int:
    return line_of(THIS_FILE, marker)


class Rotate(nn.Module):
    """A function wrapped in a module, as kernel hubs wrap ``apply_rotary_pos_emb``."""

    def forward(self, x):
        return torch.cat([-x[..., 1:], x[..., :1]], dim=-1)


ROTATE = Rotate()  # module level, never registered under any model


class UsesGlobalModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x):
        return ROTATE(self.linear(x)) + ROTATE(x)


class LossBuiltInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x, labels):
        logits = self.linear(x)
        loss_fct = nn.CrossEntropyLoss()
        return loss_fct(logits, labels), logits


class Scale(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((4,), value))
        self.register_buffer("shift", torch.arange(4.0))

    def forward(self, x):
        return x * self.weight + self.shift


class PlainContainers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = [Scale(2.0), nn.Linear(4, 4)]  # a plain list: not registered
        self.named = {"last": Scale(-1.0)}  # a plain dict: not registered

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.named["last"](x)


def _captured(model: nn.Module, *inputs: torch.Tensor) -> "fxkit.capture_tracer.CaptureResult":
    return fxkit.capture(model, inputs)


def test_module_level_function_layer_is_traced_through_without_a_leaf():
    model = UsesGlobalModule()
    x = torch.randn(2, 4)
    result = _captured(model, x)
    assert result.leaves == []
    assert not [
        node for node in result.graph.nodes if node.op == "call_module" and "rotate" in node.target.lower()
    ]
    torch.testing.assert_close(result.graph_module(x), model(x))
    other = torch.randn(3, 4)
    torch.testing.assert_close(result.graph_module(other), model(other))


def test_loss_module_built_in_forward_is_installed_under_a_generated_name():
    model = LossBuiltInForward()
    x, labels = torch.randn(5, 4), torch.tensor([0, 2, 1, 1, 0])
    before = dict(model.named_modules())
    result = _captured(model, x, labels)
    assert result.leaves == []
    targets = [node.target for node in result.graph.nodes if node.op == "call_module"]
    assert "_unregistered_loss_fct" in targets
    assert isinstance(result.graph_module.get_submodule("_unregistered_loss_fct"), nn.CrossEntropyLoss)
    assert dict(model.named_modules()) == before, "capture changed the user's model"
    for args in ((x, labels), (torch.randn(5, 4), torch.tensor([2, 2, 0, 1, 1]))):
        expected = model(*args)
        actual = result.graph_module(*args)
        for left, right in zip(expected, actual):
            torch.testing.assert_close(right, left)


def test_modules_in_plain_lists_and_dicts_keep_their_parameters_and_buffers():
    model = PlainContainers()
    x = torch.randn(2, 4)
    result = _captured(model, x)
    assert result.leaves == []
    gm = result.graph_module
    torch.testing.assert_close(gm(x), model(x))
    # Parameters and buffers of unregistered modules are read from the captured module, by path.
    gets = sorted(node.target for node in result.graph.nodes if node.op == "get_attr")
    assert gets == [
        "_unregistered_blocks_0.shift",
        "_unregistered_blocks_0.weight",
        "_unregistered_named_last.shift",
        "_unregistered_named_last.weight",
    ]
    with torch.no_grad():
        gm.get_parameter("_unregistered_blocks_0.weight").mul_(3)
    expected = model.named["last"](model.blocks[1](x * model.blocks[0].weight + model.blocks[0].shift))
    torch.testing.assert_close(gm(x), expected)
    assert list(dict(model.named_modules())) == [""]


def test_generated_names_do_not_collide_with_the_roots_attributes():
    model = LossBuiltInForward()
    model._unregistered_loss_fct = nn.Identity()  # a user attribute with the generated name
    x, labels = torch.randn(5, 4), torch.tensor([0, 2, 1, 1, 0])
    result = _captured(model, x, labels)
    targets = [node.target for node in result.graph.nodes if node.op == "call_module"]
    assert "_unregistered_loss_fct_1" in targets
    torch.testing.assert_close(result.graph_module(x, labels)[0], model(x, labels)[0])


def test_a_function_calling_a_module_is_captured():
    linear = nn.Linear(4, 2)

    def run(x):
        return linear(x).relu()

    x = torch.randn(3, 4)
    result = _captured(run, x)
    torch.testing.assert_close(result.graph_module(x), run(x))
    assert [node.target for node in result.graph.nodes if node.op == "call_module"] == [
        "_unregistered_linear"
    ]


def test_symbolic_trace_still_refuses_unregistered_modules_like_torch_fx():
    model = UsesGlobalModule()
    with pytest.raises(NameError):
        torch.fx.symbolic_trace(model)
    with pytest.raises(NameError):
        fxkit.symbolic_trace(model)


def _tiny_llama():
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    config = transformers.LlamaConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def _assert_same_output(actual, expected):
    torch.testing.assert_close(actual.logits, expected.logits)
    for mine, theirs in zip(actual.past_key_values.layers, expected.past_key_values.layers):
        torch.testing.assert_close(mine.keys, theirs.keys)
        torch.testing.assert_close(mine.values, theirs.values)


def test_llama_with_kernel_hub_layers_has_no_leaf():
    model = _tiny_llama()
    ids = torch.randint(3, 99, (2, 6))
    result = fxkit.capture(model, {"input_ids": ids}, auto_leaves=False)
    assert result.leaves == []
    with torch.no_grad():
        for new in (ids, torch.randint(3, 99, (2, 6))):
            _assert_same_output(result.graph_module(input_ids=new), model(input_ids=new))


def test_hidden_states_asked_for_at_capture_leave_the_model_as_it_was():
    # transformers registers its output-capturing hooks on the first call and marks the model; the
    # capture takes both away again, so a later eager call does not register them twice.
    model = _tiny_llama().eval()
    ids = torch.randint(3, 99, (2, 6))
    result = fxkit.capture(model, {"input_ids": ids, "output_hidden_states": True}, leaves="error")
    with torch.no_grad():
        new = torch.randint(3, 99, (2, 6))
        eager = model(input_ids=new, output_hidden_states=True)
        captured = result.graph_module(input_ids=new, output_hidden_states=True)
    assert len(eager.hidden_states) == len(captured.hidden_states) == model.config.num_hidden_layers + 1
    for mine, theirs in zip(captured.hidden_states, eager.hidden_states):
        torch.testing.assert_close(mine, theirs)
    _assert_same_output(captured, eager)


def test_a_named_attention_leaf_that_would_update_the_cache_is_not_kept():
    # LlamaAttention updates the DynamicCache the model built: as one call it would update the
    # capture-time cache. The leaf moves up to the module that owns the cache, and stays correct.
    from transformers.models.llama.modeling_llama import LlamaAttention

    model = _tiny_llama()
    ids = torch.randint(3, 99, (2, 6))
    result = fxkit.capture(model, {"input_ids": ids}, leaf_modules=[LlamaAttention])
    assert [leaf.name for leaf in result.leaves if leaf.automatic] == ["model"]
    with torch.no_grad():
        for new in (ids, torch.randint(3, 99, (2, 6)), torch.randint(3, 99, (2, 6))):
            _assert_same_output(result.graph_module(input_ids=new), model(input_ids=new))


# --------------------------------------------------------------------------- narrow, visible leaves


class Untraceable(nn.Module):
    """Turns its input into JSON text: it can only run as one call."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.seen = []

    def forward(self, x):
        self.seen.append(json.dumps(x.sum().tolist()))  # MARK-untraceable
        return self.proj(x)


class Middle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.before = nn.Linear(4, 4)
        self.inner = Untraceable()

    def forward(self, x):
        return self.inner(self.before(x)).relu()


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.middle = Middle()
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.middle(x))


def _numel(module: nn.Module) -> int:
    return sum(param.numel() for param in module.parameters())


def test_the_automatic_leaf_is_the_smallest_failing_module_and_its_share_is_reported():
    model = Outer()
    x = torch.randn(3, 4)
    result = fxkit.capture(model, (x,))
    assert [(leaf.name, leaf.automatic) for leaf in result.leaves] == [("middle.inner", True)]
    torch.testing.assert_close(result.graph_module(x), model(x))
    share = _numel(model.middle.inner) / _numel(model)
    assert result.leaf_parameter_share() == pytest.approx(share)
    assert result.leaf_parameter_share(automatic_only=True) == pytest.approx(share)
    report = result.explain()
    assert report.automatic_leaf_parameter_share == pytest.approx(share)
    assert f"Parameters inside leaves: {share:.1%} ({share:.1%} inside automatic leaves)" in str(report)
    [leaf] = report.leaves
    assert f"{_numel(model.middle.inner):,} parameters" in leaf.summary


def test_requested_leaves_count_in_the_share_but_not_as_automatic():
    model = Outer()
    result = fxkit.capture(model, (torch.randn(3, 4),), leaf_modules=["middle"])
    assert result.leaf_parameter_share() == pytest.approx(_numel(model.middle) / _numel(model))
    assert result.leaf_parameter_share(automatic_only=True) == 0.0


def test_leaves_error_makes_an_automatic_leaf_a_capture_error_naming_it():
    model = Outer()
    with pytest.raises(fxkit.guards.CaptureError) as raised:
        fxkit.capture(model, (torch.randn(3, 4),), leaves="error")
    message = str(raised.value)
    assert message.startswith("middle.inner (Untraceable) would become an automatic leaf")
    assert f"{THIS_FILE}:{_line_of('MARK-untraceable')}" in message
    assert "leaf_modules=['middle.inner']" in message
    # Naming the module keeps it a (requested) leaf, which leaves="error" allows.
    result = fxkit.capture(model, (torch.randn(3, 4),), leaves="error", leaf_modules=["middle.inner"])
    assert [(leaf.name, leaf.automatic) for leaf in result.leaves] == [("middle.inner", False)]


def test_leaves_error_captures_models_without_failures_as_usual():
    model = PlainContainers()
    x = torch.randn(2, 4)
    result = fxkit.capture(model, (x,), leaves="error")
    assert result.leaves == [] and result.leaf_parameter_share() == 0.0
    torch.testing.assert_close(result.graph_module(x), model(x))


def test_an_unknown_leaves_policy_is_refused():
    with pytest.raises(fxkit.guards.CaptureError, match="leaves must be one of 'auto', 'error'; got 'never'"):
        fxkit.capture(Outer(), (torch.randn(3, 4),), leaves="never")


# --------------------------------------------------------------------------- explain's suggestions


class FlagsAndCache(nn.Module):
    """Real (not string) annotations, as transformers writes them: explain reads them from the graph."""

    def forward(
        self,
        x: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        use_cache: bool = True,
        cache: Optional[Dict[str, int]] = None,
    ):
        if mask is not None:
            x = x * mask
        if use_cache and cache is not None:
            x = x + len(cache)
        return x.relu()


def test_explain_suggests_tensors_only_for_arguments_that_take_tensors():
    inputs = {"x": torch.randn(2, 3), "mask": None, "use_cache": True, "cache": None}
    report = fxkit.capture(FlagsAndCache(), inputs).explain()
    by_argument = {}
    for entry in report.guards + report.specializations:
        for name in ("mask", "use_cache", "cache"):
            if f" {name} " in f" {entry.summary} " or entry.name.endswith(f" {name}"):
                by_argument.setdefault(name, []).append(entry.suggestion)
    assert set(by_argument) == {"mask", "use_cache", "cache"}, by_argument
    assert any("pass a tensor for it" in text for text in by_argument["mask"])
    for flag_or_cache in ("use_cache", "cache"):
        assert not any("tensor" in text for text in by_argument[flag_or_cache]), by_argument[flag_or_cache]


class _OwnGetattr(nn.Module):
    """A module class with its own ``__getattr__`` (reaching nn.Module's through super())."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4))

    def __getattr__(self, name: str):
        return super().__getattr__(name)

    def forward(self, x):
        return x + self.weight.neg()  # a method of the parameter itself: recorded only if read as a node


class _Exp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4))

    def forward(self, x):
        return x * self.weight.exp()


class _BuildsInForward(nn.Module):
    """Modules not registered anywhere: one of a plain class, one with its own ``__getattr__``."""

    def __init__(self) -> None:
        super().__init__()
        self.parts = [_Exp(), _OwnGetattr()]

    def forward(self, x):
        return self.parts[1](self.parts[0](x))


def test_installed_modules_read_their_parameters_as_nodes_with_either_patch_kind():
    model = _BuildsInForward()
    x = torch.randn(2, 4)
    result = _captured(model, x)
    nodes = list(result.graph.nodes)
    assert sorted(node.target for node in nodes if node.op == "get_attr") == [
        "_unregistered_parts_0.weight",
        "_unregistered_parts_1.weight",
    ]
    assert [node.target for node in nodes if node.op == "call_method"] == ["exp", "neg"]
    torch.testing.assert_close(result.graph_module(x), model(x))
    with torch.no_grad():
        for part in model.parts:
            part.weight.add_(1.0)  # the captured module reads the same parameters
    torch.testing.assert_close(result.graph_module(x), model(x))


def test_capture_patches_getattr_per_class_on_the_fast_path(both_patch_kinds):
    seen = {}

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(2))

        def forward(self, x):
            seen["module"] = "__getattr__" in vars(nn.Module) and nn.Module.__getattr__
            seen["class"] = vars(Probe).get("__getattr__")
            return x * self.weight

    original = nn.Module.__getattr__
    result = fxkit.capture(Probe(), (torch.randn(2),))
    assert [node.op for node in result.graph.nodes].count("get_attr") == 1
    if both_patch_kinds == "per-class-patches":
        assert seen["module"] is original and seen["class"] is not None
    else:
        assert seen["module"] is not original and seen["class"] is None
    assert nn.Module.__getattr__ is original and "__getattr__" not in vars(Probe)
