"""fxkit.save / fxkit.load: round trips keep code, names, meta, structure and numerics; loading
resolves names only through allow-lists and refuses the rest with a ValueError."""

from __future__ import annotations

import builtins
import importlib
import json
import os
import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fxkit
from fxkit import _safetensors, serialize, zoo
from fxkit.guards import GuardError


@pytest.fixture(params=["fast", "plain"])
def engine(request):
    """Loading with the fast paths of fxkit.serialize (the default) and with the plain definitions."""
    with serialize.use_fast_path(request.param == "fast"):
        yield request.param


def round_trip(gm, tmp_path, **options):
    path = tmp_path / "model.fxkit"
    fxkit.save(gm, path)
    return fxkit.load(path, **options)


def kind(module):
    """Every GraphModule has a class of its own: compare those by name."""
    return type(module).__name__ if isinstance(module, fxkit.GraphModule) else type(module)


def assert_same_module(loaded, original):
    assert type(loaded).__name__ == type(original).__name__
    assert loaded.code == original.code
    assert [(n.op, n.name, n.target) for n in loaded.graph.nodes] == [
        (n.op, n.name, n.target) for n in original.graph.nodes
    ]
    assert [(name, kind(m)) for name, m in loaded.named_modules()] == [
        (name, kind(m)) for name, m in original.named_modules()
    ]
    original_state, loaded_state = original.state_dict(), loaded.state_dict()
    assert list(loaded_state) == list(original_state)
    for key, value in original_state.items():
        # Bit flips of the fuzz test can make NaNs, which torch.equal never calls equal.
        torch.testing.assert_close(loaded_state[key], value, rtol=0, atol=0, equal_nan=True)
        assert loaded_state[key].dtype == value.dtype
    assert [m.training for m in loaded.modules()] == [m.training for m in original.modules()]


@pytest.mark.parametrize("name", zoo.list_models())
def test_traced_zoo_models_round_trip(engine, tmp_path, name):
    model = zoo.get_model(name).eval()
    traced = fxkit.symbolic_trace(model)
    loaded = round_trip(traced, tmp_path)
    assert_same_module(loaded, traced)
    inputs = zoo.example_inputs(name)
    torch.testing.assert_close(loaded(*inputs), model(*inputs), rtol=0, atol=0)
    # The same graph torch.fx traces, node for node.
    assert [n.name for n in loaded.graph.nodes] == [
        n.name for n in torch.fx.symbolic_trace(model).graph.nodes
    ]


def _state(module):
    """A module's attributes in order, by type, with sizes and plain values."""
    return [
        (name, type(value), len(value) if isinstance(value, (dict, set, list)) else value)
        for name, value in vars(module).items()
        if not isinstance(value, (torch.Tensor, torch.nn.Module, fxkit.Graph))
    ]


class Watched(torch.nn.Module):
    """Counts assignments of ``training``: loading must make them on both paths."""

    assignments = 0

    def __setattr__(self, name, value):
        if name == "training":
            type(self).assignments += 1
        super().__setattr__(name, value)


def test_fast_and_plain_loading_build_the_same_modules(tmp_path):
    model = Gated()
    model.proj.eval()
    traced = fxkit.symbolic_trace(zoo.get_model("resnet"))
    traced.gated = model  # not called: the module tree is saved whole
    traced.watched = Watched()
    path = tmp_path / "resnet.fxkit"
    fxkit.save(traced, path)
    Watched.assignments = 0
    with serialize.use_fast_path(False):
        plain = fxkit.load(path, allowed=[Gated, Watched])
    fast = fxkit.load(path, allowed=[Gated, Watched])
    assert Watched.assignments == 2
    pairs = list(zip(plain.named_modules(), fast.named_modules(), strict=True))
    assert len(pairs) > 20
    for (name, plain_module), (fast_name, fast_module) in pairs:
        assert name == fast_name and type(plain_module).__name__ == type(fast_module).__name__
        assert _state(plain_module) == _state(fast_module), name


class Gated(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)
        self.norm = torch.nn.LayerNorm(4)

    def forward(self, x, scale=2, mask=None):
        if x.shape[0] == 2:
            x = x * scale
        if mask is not None:
            x = x * mask
        return self.norm(self.proj(x)).relu() + torch.ones(4)


def test_captured_modules_keep_their_guards(engine, tmp_path):
    model = Gated().eval()
    result = fxkit.capture(model, (torch.randn(2, 4),))
    loaded = round_trip(result.graph_module, tmp_path)
    assert_same_module(loaded, result.graph_module)
    x = torch.randn(2, 4)
    torch.testing.assert_close(loaded(x), model(x))
    guards = [n for n in loaded.graph.nodes if "guard" in n.meta]
    assert len(guards) == len(result.guards) >= 2
    other_path = torch.randn(3, 4)
    with pytest.raises(GuardError) as expected:
        result.graph_module(other_path)
    with pytest.raises(GuardError) as got:
        loaded(other_path)
    assert str(got.value) == str(expected.value)
    stacks = [n.meta["nn_module_stack"] for n in loaded.graph.nodes if "nn_module_stack" in n.meta]
    assert {"proj": ("proj", "torch.nn.modules.linear.Linear")} in stacks


def test_tied_weights_stay_tied_and_plain_meta_survives(engine, tmp_path):
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)
            self.head = torch.nn.Linear(4, 10, bias=False)
            self.head.weight = self.embed.weight
            self.register_buffer("scale", torch.tensor(2.0), persistent=False)

        def forward(self, ids):
            return self.head(self.embed(ids)) * self.scale

    traced = fxkit.symbolic_trace(Tied())
    for node in traced.graph.nodes:
        node.meta["note"] = {"kept": [1, 2.5, None, "x"], "dtype": torch.float16, "size": torch.Size([2])}
        node.meta["dropped"] = object()
    loaded = round_trip(traced, tmp_path)
    assert loaded.head.weight is loaded.embed.weight
    assert "scale" not in loaded.state_dict() and torch.equal(loaded.scale, torch.tensor(2.0))
    for node in loaded.graph.nodes:
        assert node.meta["note"] == {
            "kept": [1, 2.5, None, "x"],
            "dtype": torch.float16,
            "size": torch.Size([2]),
        }
        assert "dropped" not in node.meta
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(loaded(ids), traced(ids))


def scaled_gelu(x):
    return torch.nn.functional.gelu(x) * 3


fxkit.wrap("scaled_gelu")


class UsesHelper(torch.nn.Module):
    def forward(self, x):
        return scaled_gelu(x) + 1


class Custom(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.width = 3
        self.weight = torch.nn.Parameter(torch.ones(3))

    def forward(self, x):
        return x * self.weight * self.width


class HoldsCustom(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.custom = Custom()

    def forward(self, x):
        return self.custom(x)


class Tracer(fxkit.Tracer):
    def is_leaf_module(self, module, name):
        return isinstance(module, Custom) or super().is_leaf_module(module, name)


def test_user_functions_and_classes_load_only_when_allowed(engine, tmp_path):
    traced = fxkit.symbolic_trace(UsesHelper())
    path = tmp_path / "helper.fxkit"
    fxkit.save(traced, path)
    with pytest.raises(
        ValueError, match=r"refusing to load function '(tests\.)?test_serialize\.scaled_gelu'"
    ):
        fxkit.load(path)
    loaded = fxkit.load(path, allowed=[scaled_gelu])
    x = torch.randn(5)
    torch.testing.assert_close(loaded(x), traced(x))

    root = HoldsCustom()
    graph = Tracer().trace(root)
    custom = fxkit.GraphModule(root, graph)
    path = tmp_path / "custom.fxkit"
    fxkit.save(custom, path)
    with pytest.raises(
        ValueError, match=r"refusing to build module class '(tests\.)?test_serialize\.Custom'"
    ):
        fxkit.load(path)
    loaded = fxkit.load(path, allowed=[Custom])
    assert type(loaded.custom) is Custom and loaded.custom.width == 3
    torch.testing.assert_close(loaded(x[:3]), custom(x[:3]))


def _pairs(batch):
    return {"sum": batch["a"] + batch["b"], "products": (batch["a"] * 2, batch["b"] * 3)}


def test_pytree_calling_convention_round_trips(tmp_path):
    traced = fxkit.symbolic_trace(_pairs, concrete_args={"batch": {"a": fxkit.PH, "b": fxkit.PH}})
    fxkit.save(traced, tmp_path / "pairs.fxkit")
    loaded = fxkit.load(tmp_path / "pairs.fxkit")
    assert loaded.code == traced.code
    batch = {"a": torch.randn(3), "b": torch.randn(3)}
    expected = _pairs(batch)
    actual = loaded(batch)
    torch.testing.assert_close(actual["sum"], expected["sum"])
    torch.testing.assert_close(actual["products"], expected["products"])


def test_shapes_from_shape_propagation_are_kept(tmp_path):
    from fxkit.passes.shape_prop import ShapeProp

    traced = fxkit.symbolic_trace(zoo.get_model("resnet"))
    ShapeProp(traced).propagate(*zoo.example_inputs("resnet"))
    fxkit.save(traced, tmp_path / "resnet.fxkit")
    loaded = fxkit.load(tmp_path / "resnet.fxkit")
    before = [node.meta.get("tensor_meta") for node in traced.graph.nodes]
    assert [node.meta.get("tensor_meta") for node in loaded.graph.nodes] == before
    assert sum(meta is not None for meta in before) > 40


def test_what_cannot_be_saved_is_refused_with_the_reason(tmp_path):
    traced = fxkit.symbolic_trace(zoo.get_model("mlp"))
    handle = getattr(traced.layers, "0").register_forward_hook(lambda *args: None)
    with pytest.raises(ValueError, match="hooks"):
        fxkit.save(traced, tmp_path / "x.fxkit")
    handle.remove()
    graph = fxkit.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_function(lambda v: v + 1, (x,)))
    with pytest.raises(ValueError, match="no importable name"):
        fxkit.save(fxkit.GraphModule(torch.nn.Module(), graph), tmp_path / "x.fxkit")
    view = torch.nn.Module()
    view.register_buffer("whole", torch.arange(6.0))
    view.register_buffer("part", view.whole[2:])
    graph = fxkit.Graph()
    graph.output(graph.call_function(torch.add, (graph.get_attr("whole"), 1)))
    holder = fxkit.GraphModule(view, graph)
    holder.register_buffer("part", view.whole[2:])
    with pytest.raises(ValueError, match="shares memory"):
        fxkit.save(holder, tmp_path / "x.fxkit")
    with pytest.raises(TypeError, match="GraphModule"):
        fxkit.save(torch.nn.Linear(2, 2), tmp_path / "x.fxkit")


def test_the_file_is_plain_safetensors(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    traced = fxkit.symbolic_trace(zoo.get_model("resnet"))
    path = tmp_path / "resnet.fxkit"
    fxkit.save(traced, path)
    tensors = safetensors.load_file(path)
    assert set(tensors) == set(traced.state_dict())
    assert all(torch.equal(tensors[k], v) for k, v in traced.state_dict().items())
    record = json.loads(read_record(path))
    assert record["format"] == "fxkit.graph_module" and record["version"] == 1


@pytest.mark.parametrize("writer", ["gathered", "short writes", "buffered"])
def test_every_byte_is_written(tmp_path, monkeypatch, writer):
    tensors = {f"t{i}": torch.randn(i + 1, 3) for i in range(30)}
    tensors.update(
        empty=torch.zeros(0), flags=torch.tensor([True, False]), half=torch.ones(5, dtype=torch.half)
    )
    if writer == "buffered":  # platforms without os.writev
        monkeypatch.delattr(os, "writev")
    elif writer == "short writes":  # the OS may write less than asked: at most 7 bytes a call here
        real = os.writev
        monkeypatch.setattr(
            os, "writev", lambda fd, buffers: real(fd, [memoryview(buffers[0]).cast("B")[:7]])
        )
        monkeypatch.setattr(_safetensors, "_iov_max", lambda: 3)
    _safetensors.write(tmp_path / "t.safetensors", tensors, {"note": "x" * 1000})
    metadata, loaded = _safetensors.read(tmp_path / "t.safetensors")
    assert metadata == {"note": "x" * 1000} and list(loaded) == list(tensors)
    assert all(
        torch.equal(loaded[key], tensor) and loaded[key].dtype == tensor.dtype
        for key, tensor in tensors.items()
    )


def read_record(path):
    metadata, _ = _safetensors.read(path)
    return metadata["fxkit"]


def rewrite(path, record, tensors=None):
    _, saved = _safetensors.read(path)
    _safetensors.write(path, saved if tensors is None else tensors, {"fxkit": json.dumps(record)})


def mlp_file(tmp_path):
    path = tmp_path / "mlp.fxkit"
    fxkit.save(fxkit.symbolic_trace(zoo.get_model("mlp")), path)
    return path, json.loads(read_record(path))


def first(record, op):
    return next(node for node in record["module"]["graph"]["nodes"] if node["op"] == op)


def _spell_out(module_record):
    """The record as the first writer wrote it: every empty field and default present."""
    for field, empty in (("parameters", {}), ("buffers", {}), ("non_persistent", []), ("modules", {}),
                         ("attributes", {})):  # fmt: skip
        module_record.setdefault(field, empty)
    for reference in module_record["parameters"].values():
        reference.setdefault("requires_grad", True)
    for node in module_record.get("graph", {}).get("nodes", []):
        node.setdefault("type", None)
        node.setdefault("meta", {"dict": []})
    for child in module_record["modules"].values():
        _spell_out(child)


def test_empty_fields_may_be_left_out_or_spelled_out(tmp_path):
    traced = fxkit.symbolic_trace(zoo.get_model("mlp"))
    frozen = next(traced.parameters())
    frozen.requires_grad_(False)
    path = tmp_path / "mlp.fxkit"
    fxkit.save(traced, path)
    compact = fxkit.load(path)
    record = json.loads(read_record(path))
    layer = record["module"]["modules"]["layers"]["modules"]["0"]
    assert "buffers" not in layer and "type" not in first(record, "call_module")
    _spell_out(record["module"])
    rewrite(path, record)
    spelled = fxkit.load(path)
    assert_same_module(spelled, compact)
    assert_same_module(compact, traced)
    assert [p.requires_grad for p in spelled.parameters()] == [p.requires_grad for p in traced.parameters()]
    assert not all(p.requires_grad for p in spelled.parameters())


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda r: first(r, "call_function").update(target="os.system"),
            "refusing to load function 'os.system'",
        ),
        (
            lambda r: first(r, "call_function").update(target="builtins.eval"),
            "refusing to load function 'builtins.eval'",
        ),
        (
            lambda r: first(r, "call_function").update(target="torch.load"),
            "refusing to load function 'torch.load'",
        ),
        (lambda r: first(r, "call_function").update(target="operator.methodcaller"), "operator.methodcaller"),
        (
            lambda r: first(r, "call_module").update(op="call_method", target="relu();print('x');x.neg"),
            "not an identifier",
        ),
        (
            lambda r: first(r, "call_module").update(op="call_method", target="__class__"),
            "refusing method '__class__'",
        ),
        (
            lambda r: first(r, "call_function").update(
                target="builtins.getattr", args={"tuple": [{"node": "x"}, "__class__"]}
            ),
            "getattr",
        ),
        (lambda r: first(r, "call_module").update(name="a\nimport os"), "identifier"),
        (lambda r: first(r, "call_module").update(name="x"), "name is taken"),
        (
            lambda r: r["module"]["modules"]["layers"].update({"class": "subprocess.Popen"}),
            "refusing to build module class 'subprocess.Popen'",
        ),
        (lambda r: r.update(version=2), "version 2"),
    ],
)
def test_crafted_files_are_refused_naming_what(engine, tmp_path, edit, message):
    path, record = mlp_file(tmp_path)
    edit(record)
    rewrite(path, record)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fxkit.load(path)


def test_not_a_file_of_ours(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"\x00" * 4)
    with pytest.raises(ValueError, match="not an fxkit file"):
        fxkit.load(path)
    path.write_bytes(pickle.dumps(fxkit.symbolic_trace(zoo.get_model("mlp"))))
    with pytest.raises(ValueError, match="not an fxkit file"):
        fxkit.load(path)


# --------------------------------------------------------------------------- fuzzing

_STRINGS = [
    "os.system",
    "builtins.eval",
    "__class__",
    "x",
    "output",
    "layers.0",
    "torch.relu",
    "a.b",
    "",
    "0",
]


def _paths(value, prefix=()):
    yield prefix, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    copied = dict(value) if isinstance(value, dict) else list(value)
    copied[head] = _replace(value[head], rest, new)
    return copied


_REPLACEMENTS = st.one_of(
    st.sampled_from(_STRINGS),
    st.integers(-3, 300),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.just([]),
    st.just({}),
    st.just({"node": "x"}),
    st.just({"function": "os.system"}),
)


class _Forbidden(Exception):
    pass


def load_where_nothing_else_runs(path):
    """Load ``path`` while unpickling, importing, eval and processes fail loudly instead of running."""

    def forbidden(*args, **kwargs):
        raise _Forbidden(f"called during load with {args!r:.80}")

    with pytest.MonkeyPatch.context() as patch:
        for owner, name in ((pickle, "loads"), (pickle, "load"), (importlib, "import_module"), (os, "system"),
                            (builtins, "eval"), (torch, "load")):  # fmt: skip
            patch.setattr(owner, name, forbidden)
        return fxkit.load(path)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_files_load_as_a_savable_module_or_raise_value_error(engine, tmp_path, data):
    path, record = mlp_file(tmp_path)
    _, tensors = _safetensors.read(path)
    if data.draw(st.booleans(), label="edit the JSON"):
        for _ in range(data.draw(st.integers(1, 3))):
            where = data.draw(st.sampled_from([p for p, _ in _paths(record) if p]))
            record = _replace(record, where, data.draw(_REPLACEMENTS))
        _safetensors.write(path, tensors, {"fxkit": json.dumps(record)})
    else:
        raw = bytearray(path.read_bytes())
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        path.write_bytes(bytes(raw))
    try:
        loaded = load_where_nothing_else_runs(path)
    except ValueError:
        return
    # Whatever loaded could have been saved: it saves and loads back to the same module.
    again = tmp_path / "again.fxkit"
    fxkit.save(loaded, again)
    assert_same_module(fxkit.load(again), loaded)


def test_a_captured_causal_lm_round_trips_with_its_classes_allowed(tmp_path):
    transformers = pytest.importorskip("transformers")
    from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
    from transformers.modeling_outputs import CausalLMOutputWithPast

    from tests.models.hf_zoo import _ids, _llama

    model = _llama().eval()
    captured = fxkit.capture(model, {"input_ids": _ids(1)}).graph_module  # returns its DynamicCache
    fxkit.save(captured, tmp_path / "llama.fxkit")
    with pytest.raises(ValueError, match="refusing to load function 'transformers.cache_utils.DynamicLayer'"):
        fxkit.load(tmp_path / "llama.fxkit")
    loaded = fxkit.load(
        tmp_path / "llama.fxkit", allowed=[DynamicCache, DynamicLayer, Cache, CausalLMOutputWithPast]
    )
    assert loaded.code == captured.code  # annotations such as `torch.LongTensor | None` included
    with torch.no_grad():
        expected, actual = model(input_ids=_ids(2)), loaded(input_ids=_ids(2))
    torch.testing.assert_close(actual.logits, expected.logits)
    assert type(actual.past_key_values) is transformers.DynamicCache


def _positions(x):
    return x + torch.arange(x.shape[-1]) + torch.zeros(1)


def test_torch_factory_functions_load_by_themselves(tmp_path):
    traced = fxkit.symbolic_trace(_positions)
    fxkit.save(traced, tmp_path / "positions.fxkit")
    x = torch.randn(2, 5)
    torch.testing.assert_close(fxkit.load(tmp_path / "positions.fxkit")(x), _positions(x))


def test_a_file_whose_graph_calls_a_missing_module_is_refused(tmp_path):
    # Found by the fuzz test: a child record set to null loaded, and the module built from it
    # could not be saved and loaded back.
    path, record = mlp_file(tmp_path)
    _, tensors = _safetensors.read(path)
    record = _replace(record, ("module", "modules", "layers", "modules", "1"), None)
    _safetensors.write(path, tensors, {"fxkit": json.dumps(record)})
    with pytest.raises(ValueError, match="calls module 'layers.1', which the file does not hold"):
        fxkit.load(path)


def test_a_file_whose_output_takes_no_value_is_refused(tmp_path):
    path, record = mlp_file(tmp_path)  # found by the fuzz test: the code could not be generated
    _, tensors = _safetensors.read(path)
    [output] = [i for i, node in enumerate(record["module"]["graph"]["nodes"]) if node.get("op") == "output"]
    record = _replace(record, ("module", "graph", "nodes", output, "args", "tuple"), [])
    _safetensors.write(path, tensors, {"fxkit": json.dumps(record)})
    with pytest.raises(ValueError, match="output node output must take one value"):
        fxkit.load(path)
