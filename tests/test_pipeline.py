"""fxkit.pipeline in one process: where it cuts, what each stage holds, and what it refuses.
(The multi-process runs with torch's schedules are in test_pipeline_distributed.py.)"""

from __future__ import annotations

import operator
from typing import Tuple

import pytest
import torch
from _pipeline_models import VOCAB, TinyLM
from torch import nn

import fxkit
import fxkit.pipeline
from fxkit.pipeline import Pipe, PipelineError, SplitPoint, load_stage_state_dict, pipe_split, pipeline


@pytest.fixture(params=[True, False], ids=["kinds-from-graph", "kinds-from-meta-run"])
def both_kinds(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs a test with value kinds read off the graph (the fast path) and from a run on meta."""
    monkeypatch.setattr(fxkit.pipeline, "_STATIC_KINDS", request.param)


def _ids(batch: int = 2, length: int = 8) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length))


def _stage_parameter_names(pipe: Pipe) -> list[list[str]]:
    return [[name for name, _ in pipe.get_stage_module(i).named_parameters()] for i in range(pipe.num_stages)]


@pytest.mark.parametrize("balance", ["params", "flops"])
@pytest.mark.parametrize("num_stages", [2, 3, 4])
def test_automatic_split_runs_like_the_model_and_holds_each_parameter_once(
    num_stages: int, balance: str
) -> None:
    model = TinyLM()
    ids = _ids()
    pipe = pipeline(model, (ids,), num_stages=num_stages, balance=balance)
    assert pipe.num_stages == num_stages
    torch.testing.assert_close(pipe(ids), model(ids))
    names = [name for stage in _stage_parameter_names(pipe) for name in stage]
    assert sorted(names) == sorted(name for name, _ in model.named_parameters())
    for index in range(num_stages):
        stage = pipe.get_stage_module(index)
        for name, parameter in stage.named_parameters():
            assert parameter is model.get_parameter(name)  # original qualified names, same objects


def test_other_batch_sizes_and_lengths_give_the_model_output(both_kinds: None) -> None:
    model = TinyLM()
    pipe = pipeline(model, (_ids(),), num_stages=3)
    ids = _ids(3, 5)
    torch.testing.assert_close(pipe(ids), model(ids))


def test_flops_balance_differs_from_params_balance_where_compute_and_weights_disagree() -> None:
    class Lopsided(nn.Module):
        """Heavy weights that cost little (a lookup) first, cheap weights that cost a lot after."""

        def __init__(self) -> None:
            super().__init__()
            self.table = nn.Embedding(4096, 32)
            self.layers = nn.ModuleList(nn.Linear(32, 32) for _ in range(8))

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            x = self.table(ids)
            for layer in self.layers:
                x = layer(x).relu()
            return x

    model = Lopsided()
    ids = _ids(4, 64)
    by_params = pipeline(model, (ids,), num_stages=2)
    by_flops = pipeline(model, (ids,), num_stages=2, balance="flops")
    assert _stage_parameter_names(by_params)[0] == ["table.weight"]
    first = _stage_parameter_names(by_flops)[0]
    assert "table.weight" in first and 7 <= len(first) <= 11  # about half the linear layers
    torch.testing.assert_close(by_flops(ids), model(ids))


def test_split_spec_beginning_and_end() -> None:
    model = TinyLM()
    ids = _ids()
    pipe = pipeline(model, (ids,), split_spec={"layers.1": SplitPoint.BEGINNING, "layers.2": SplitPoint.END})
    assert pipe.num_stages == 3
    stages = _stage_parameter_names(pipe)
    assert {name.split(".")[1] for name in stages[1] if name.startswith("layers.")} == {"1", "2"}
    assert all(not name.startswith(("layers.1.", "layers.2.")) for name in stages[0] + stages[2])
    torch.testing.assert_close(pipe(ids), model(ids))


def test_torch_split_point_enum_is_accepted() -> None:
    from torch.distributed.pipelining import SplitPoint as TorchSplitPoint

    model = TinyLM()
    pipe = pipeline(model, (_ids(),), split_spec={"layers.2": TorchSplitPoint.BEGINNING})
    assert pipe.num_stages == 2


def test_pipe_split_marker_in_forward() -> None:
    class Marked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.a(x).relu()
            pipe_split()
            x = self.b(x).relu()
            pipe_split()
            return self.c(x)

    model = Marked()
    x = torch.randn(3, 4)
    torch.testing.assert_close(model(x), model.c(model.b(model.a(x).relu()).relu()))  # a no-op eagerly
    pipe = pipeline(model, (x,))
    assert pipe.num_stages == 3
    assert _stage_parameter_names(pipe) == [
        ["a.weight", "a.bias"],
        ["b.weight", "b.bias"],
        ["c.weight", "c.bias"],
    ]
    torch.testing.assert_close(pipe(x), model(x))
    assert all(n.target is not pipe_split for i in range(3) for n in pipe.get_stage_module(i).graph.nodes)
    with pytest.raises(PipelineError, match="num_stages=2, but the split points make 3 stages"):
        pipeline(model, (x,), num_stages=2)


def test_values_a_later_stage_needs_are_passed_through_the_stages_between(both_kinds: None) -> None:
    model = TinyLM()
    ids = _ids()
    pipe = pipeline(model, (ids,), num_stages=4)
    # Every stage after the first reads the position slice made in stage 0 (and the tied weight).
    inputs = [
        [n.name for n in pipe.get_stage_module(i).graph.nodes if n.op == "placeholder"] for i in range(4)
    ]
    assert inputs[0] == ["ids"]
    for index in range(1, 4):
        outputs = pipe.get_stage_module(index - 1).graph.output_node().args[0]
        assert [node.name for node in outputs] == inputs[index]
        assert "embed_weight" in inputs[index]  # the tied head's weight travels as an activation


def test_python_numbers_crossing_a_cut_are_recomputed_from_tensors(both_kinds: None) -> None:
    class Sizes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rows, width = x.shape
            y = self.a(x)
            pipe_split()
            return self.b(y).reshape(rows, width // 2, 2).sum(-1)

    model = Sizes()
    x = torch.randn(3, 6)
    pipe = pipeline(model, (x,))
    torch.testing.assert_close(pipe(x), model(x))
    second = pipe.get_stage_module(1)
    assert [n.name for n in second.graph.nodes if n.op == "placeholder"] == [
        "x",
        "a",
    ]  # x crosses, not the ints
    other = torch.randn(5, 6)
    torch.testing.assert_close(pipe(other), model(other))


def test_tuple_from_a_leaf_crossing_a_cut_sends_its_tensors(both_kinds: None) -> None:
    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple:
            return x.sin(), x.cos()

    class UsesPair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pair, self.a, self.b = Pair(), nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pair = self.pair(x)
            y = self.a(x)
            pipe_split()
            return self.b(y) * pair[0] + pair[1]

    model = UsesPair()
    x = torch.randn(2, 4)
    captured = fxkit.capture(model, (x,), leaf_modules=[Pair])
    assert any(n.op == "call_module" and n.target == "pair" for n in captured.graph_module.graph.nodes)
    pipe = pipeline(model, (x,))
    torch.testing.assert_close(pipe(x), model(x))


def test_non_tensor_inputs_are_fixed_to_the_given_values() -> None:
    class Flagged(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x: torch.Tensor, scale: float = 1.0, double: bool = False) -> torch.Tensor:
            y = self.a(x) * scale
            pipe_split()
            y = self.b(y)
            return y * 2 if double else y

    model = Flagged()
    x = torch.randn(2, 4)
    pipe = pipeline(model, (x,), {"scale": 3.0, "double": True})
    assert pipe.input_names == ("x",)
    torch.testing.assert_close(pipe(x), model(x, scale=3.0, double=True))


def test_structured_outputs_leave_the_last_stage_as_tensors_and_come_back_whole(both_kinds: None) -> None:
    class DictOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> dict:
            y = self.a(x)
            pipe_split()
            return {"logits": self.b(y), "hidden": y}

    model = DictOut()
    x = torch.randn(2, 4)
    pipe = pipeline(model, (x,))
    last = pipe.get_stage_module(1)(*[v for v in pipe.get_stage_module(0)(x)])
    assert isinstance(last, tuple) and all(isinstance(t, torch.Tensor) for t in last)
    whole = pipe(x)
    assert set(whole) == {"logits", "hidden"}
    torch.testing.assert_close(whole["logits"], model(x)["logits"])


def test_parameter_shared_by_module_calls_in_two_stages_is_refused() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
            self.b.weight = self.a.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.a(x)
            pipe_split()
            return self.b(y)

    with pytest.raises(PipelineError, match=r"parameter 'a.weight' \(stage 0\) is also used as 'b.weight'"):
        pipeline(Shared(), (torch.randn(2, 4),))


def test_tensors_inside_a_container_input_are_refused() -> None:
    class TakesList(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)

        def forward(self, xs: list) -> torch.Tensor:
            return self.a(xs[0] + xs[1])

    with pytest.raises(PipelineError, match="input 'xs' is a list holding tensors"):
        pipeline(TakesList(), ([torch.randn(2, 4), torch.randn(2, 4)],), num_stages=1)


def test_without_num_stages_or_split_points_it_says_what_to_pass() -> None:
    with pytest.raises(PipelineError, match="pass num_stages, split_spec, or call pipe_split"):
        pipeline(TinyLM(), (_ids(),))


def test_more_stages_than_pieces_is_refused() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    with pytest.raises(PipelineError, match="cannot cut the model into 5 stages"):
        pipeline(model, (torch.randn(2, 4),), num_stages=5)


def test_split_spec_naming_a_missing_module_is_refused() -> None:
    with pytest.raises(PipelineError, match="'layers.9', which is not a submodule"):
        pipeline(TinyLM(), (_ids(),), split_spec={"layers.9": SplitPoint.BEGINNING})


def test_meta_model_is_materialised_stage_by_stage() -> None:
    reference = TinyLM()
    with torch.device("meta"):
        model = TinyLM()
    ids = _ids()
    pipe = pipeline(model, (ids.to("meta"),), num_stages=3)
    state = reference.state_dict()
    for index in range(3):
        stage = pipe.get_stage_module(index)
        with pytest.raises(PipelineError, match="meta device"):
            pipe.build_stage(index, "cpu")
        load_stage_state_dict(stage, state, device="cpu")
        assert all(not t.is_meta for t in stage.parameters())
        if index < 2:  # later stages are still unallocated: a rank allocates only its own stage
            later = pipe.get_stage_module(index + 1)
            assert all(t.is_meta for t in later.parameters())
    values = (ids,)
    for index in range(3):
        values = pipe.get_stage_module(index)(*values)
        values = values if isinstance(values, tuple) else (values,)
    torch.testing.assert_close(values[0], reference(ids))


def test_load_stage_state_dict_names_missing_entries() -> None:
    pipe = pipeline(TinyLM(), (_ids(),), num_stages=2)
    state = TinyLM().state_dict()
    stage = pipe.get_stage_module(1)
    missing = next(name for name, _ in stage.named_parameters())
    del state[missing]
    with pytest.raises(PipelineError, match=f"state_dict lacks 1 tensors of this stage: {missing}"):
        load_stage_state_dict(stage, state)


def test_hf_llama_7b_config_on_meta_splits_into_8_balanced_stages() -> None:
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        # Eager attention with an explicit mask: transformers' sdpa mask checks read tensor data.
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(attn_implementation="eager"))
    ids = torch.zeros(1, 16, dtype=torch.long, device="meta")
    mask = torch.ones(1, 16, dtype=torch.long, device="meta")
    pipe = pipeline(model, (ids,), {"attention_mask": mask, "use_cache": False}, num_stages=8)
    counts = [sum(p.numel() for p in pipe.get_stage_module(i).parameters()) for i in range(8)]
    assert max(counts) <= 1.15 * min(counts), counts
    held = [id(p) for i in range(8) for p in pipe.get_stage_module(i).parameters()]
    assert len(held) == len(set(held))
    assert set(held) == {id(p) for p in model.parameters()}
    assert sum(counts) == sum(p.numel() for p in model.parameters())


def test_stage_modules_keep_their_code_readable() -> None:
    pipe = pipeline(TinyLM(), (_ids(),), num_stages=2)
    code = pipe.split_gm.code
    assert "self.submod_0(ids)" in code and "self.submod_1(" in code
    assert any(n.target is operator.getitem for n in pipe.split_gm.graph.nodes)


def test_both_ways_of_telling_tensors_give_the_same_stages_on_hf_gpt2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=4, n_head=4, n_positions=32, tie_word_embeddings=False
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    ids = _ids()
    codes = []
    for static in (True, False):
        monkeypatch.setattr(fxkit.pipeline, "_STATIC_KINDS", static)
        pipe = pipeline(model, (ids,), {"use_cache": False}, num_stages=4)
        codes.append([pipe.get_stage_module(i).code for i in range(4)])
        torch.testing.assert_close(pipe(ids).logits, model(ids, use_cache=False).logits)
    assert codes[0] == codes[1]


def test_hf_llama_splits_without_running_the_graph_again(monkeypatch: pytest.MonkeyPatch) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    model = transformers.LlamaForCausalLM(config)

    def no_meta_run(*args: object) -> None:
        raise AssertionError("the graph told every kind the split needed: no run on meta expected")

    monkeypatch.setattr(fxkit.pipeline, "_probe", no_meta_run)
    ids = _ids()
    pipe = pipeline(model, (ids,), {"use_cache": False}, num_stages=4)
    torch.testing.assert_close(pipe(ids).logits, model(ids, use_cache=False).logits)


class _Notes:
    """Like a transformers cache: an object of no registered pytree type holding tensors."""

    def __init__(self, value: torch.Tensor) -> None:
        self.value = value


class _ReturnsNotes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, _Notes]:
        hidden = self.first(x)
        return self.second(hidden), _Notes(hidden)


def test_an_output_holding_a_cache_object_is_refused_with_the_flag_to_pass() -> None:
    with pytest.raises(PipelineError, match=r"holding \['_Notes'\].*pass use_cache=False in mb_kwargs"):
        pipeline(_ReturnsNotes(), (torch.randn(2, 4),), num_stages=2)
