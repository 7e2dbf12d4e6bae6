"""Differential tests of fxkit.operator_schemas and Node.normalized_arguments against torch.fx."""

import numbers
import operator
import re
import types
import warnings
from typing import Any, Dict, List, Optional, Tuple, Union

import pytest
import torch
import torch.fx
import torch.fx.operator_schemas as oracle_schemas
import torch.nn.functional as F

import fxkit
import fxkit.operator_schemas as schemas

Tensor = torch.Tensor


def outcome(call):
    """What a call produced, in a form comparable across the two implementations."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = call()
        except Exception as error:  # noqa: BLE001 - the error itself is what gets compared
            return ("raised", type(error).__name__, str(error))
    if result is None:
        return ("none",)
    return ("pair", type(result).__name__, repr(result.args), repr(result.kwargs), list(result._fields))


class Functionals(torch.nn.Module):
    def forward(self, x, y):
        a = F.relu(x)
        b = F.relu(x, inplace=False)
        c = F.dropout(a, p=0.1)
        d = F.softmax(b, dim=-1)
        e = F.linear(c, y)
        f = F.max_pool2d(x.unsqueeze(0), 1)
        g = F.layer_norm(d, (4,))
        h = F.gelu(g)
        return a, b, c, d, e, f, g, h


class Builtins(torch.nn.Module):
    def forward(self, x, y):
        s0 = torch.sum(x, dim=0)
        s1 = torch.sum(x)
        s2 = torch.sum(x, 1, keepdim=True)
        c0 = torch.cat([x, y])
        c1 = torch.cat((x, y), dim=1)
        a0 = torch.add(x, y, alpha=2)
        a1 = torch.add(x, y)
        t = torch.transpose(x, 0, 1)
        fl = torch.flatten(x, 1)
        m0 = torch.mean(x, dim=[0])
        m1 = torch.mean(x)
        mx = torch.max(x, dim=0)
        r = torch.relu(x)
        z = torch.zeros_like(x)
        nz = torch.nonzero(x)
        return s0, s1, s2, c0, c1, a0, a1, t, fl, m0, m1, mx, r, z, nz


class Overloads(torch.nn.Module):
    def forward(self, x, y):
        m = torch.ops.aten.mul.Tensor(x, y)
        a = torch.ops.aten.add.Tensor(m, y, alpha=3)
        p = torch.ops.aten.add(x, y)
        return m, a, p


class MethodsAndOperators(torch.nn.Module):
    def forward(self, x):
        return (x + 1).relu().sum(dim=0) * operator.neg(x)


class Modules(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.conv = torch.nn.Conv2d(1, 1, 1)
        self.act = torch.nn.ReLU()
        self.seq = torch.nn.Sequential(torch.nn.Tanh())

    def forward(self, x):
        return self.seq(self.act(self.lin(x))) + self.conv(x.unsqueeze(0)).squeeze(0)


MODELS = [Functionals, Builtins, Overloads, MethodsAndOperators, Modules]


def traced_pairs(model_class):
    """(fxkit GraphModule, torch.fx GraphModule, matched node pairs) for one model."""
    model = model_class()
    ours = fxkit.symbolic_trace(model)
    theirs = torch.fx.symbolic_trace(model)
    our_nodes = list(ours.graph.nodes)
    their_nodes = list(theirs.graph.nodes)
    assert [node.name for node in our_nodes] == [node.name for node in their_nodes]
    return ours, theirs, list(zip(our_nodes, their_nodes))


@pytest.mark.parametrize("model_class", MODELS, ids=[model.__name__ for model in MODELS])
@pytest.mark.parametrize("only_kwargs", [False, True])
def test_normalized_arguments_match_torch_fx(model_class, only_kwargs):
    ours, theirs, pairs = traced_pairs(model_class)
    compared = 0
    for our_node, their_node in pairs:
        expected = outcome(
            lambda: their_node.normalized_arguments(theirs, normalize_to_only_use_kwargs=only_kwargs)
        )
        actual = outcome(
            lambda: our_node.normalized_arguments(ours, normalize_to_only_use_kwargs=only_kwargs)
        )
        assert actual == expected, our_node.format_node()
        compared += 1
    assert compared >= 3


def test_traced_models_cover_normalized_and_rejected_nodes():
    kinds = set()
    for model_class in MODELS:
        ours, _theirs, pairs = traced_pairs(model_class)
        for our_node, _ in pairs:
            kinds.add(outcome(lambda: our_node.normalized_arguments(ours))[0])
    assert kinds == {"pair", "none", "raised"}


def test_ambiguous_builtin_raises_runtime_error_listing_matches():
    ours, theirs, pairs = traced_pairs(Builtins)
    by_name = {our.name: (our, their) for our, their in pairs}
    for name in ("sum_2", "add", "add_1"):
        our_node, their_node = by_name[name]
        kind, error_type, message = outcome(lambda: our_node.normalized_arguments(ours))
        assert (kind, error_type) == ("raised", "RuntimeError")
        assert message.startswith("Tried to normalize arguments to torch._VariableFunctionsClass.")
        assert "but the schema match was ambiguous! Please provide argument types" in message
        assert message == outcome(lambda: their_node.normalized_arguments(theirs))[2]


@pytest.mark.parametrize(
    "arg_types, kwarg_types",
    [
        ((Tensor, Tensor), None),
        ((Tensor, Tensor), {"alpha": int}),
        ((Tensor, int), None),
        ((Tensor, float), {"alpha": float}),
        ((Tensor, Tensor), {"alpha": str}),
        ((Tensor,), None),
        ((dict, dict), None),
        (None, {"alpha": int}),
    ],
)
@pytest.mark.parametrize("only_kwargs", [False, True])
def test_arg_types_pick_an_overload(arg_types, kwarg_types, only_kwargs):
    ours, theirs, pairs = traced_pairs(Builtins)
    for our_node, their_node in pairs:
        if our_node.name not in ("add", "add_1"):
            continue
        expected = outcome(
            lambda: their_node.normalized_arguments(theirs, arg_types, kwarg_types, only_kwargs)
        )
        actual = outcome(lambda: our_node.normalized_arguments(ours, arg_types, kwarg_types, only_kwargs))
        assert actual == expected, (our_node.name, arg_types, kwarg_types)


def _plain(a, b=2, *, c, d=4):
    return a


def _var_positional(a, *rest):
    return a


def _var_keyword(a, **options):
    return a


def _positional_only(a, /, b):
    return a


x = torch.randn(2, 3)

FUNCTION_CALLS = [
    (_plain, (1, 2), {"c": 3}),
    (_plain, (1,), {"c": 3}),
    (_plain, (), {"a": 1, "c": 3}),
    (_plain, (1,), {}),
    (_plain, (1, 2, 3), {"c": 1}),
    (_plain, (1,), {"c": 1, "a": 3}),
    (_plain, (1,), {"c": 1, "zz": 3}),
    (_var_positional, (1, 2), {}),
    (_var_keyword, (), {}),
    (_positional_only, (1, 2), {}),
    (len, (x,), {}),
    (getattr, (x, "shape"), {}),
    (operator.add, (x, 1), {}),
    (torch.Tensor.add, (x, x), {}),
    (F.max_pool2d, (x, 3), {"return_indices": True}),
    (torch.sum, (x,), {"bogus": 1}),
    (torch.sum, (x,), {"dim": 0}),
    (torch.conv2d, (x, x), {}),
    (torch.randn, (3,), {}),
    (torch.nonzero, (x,), {"as_tuple": True}),
    (torch.can_cast, (torch.float, torch.int), {}),
    (torch.ops.aten.mul.Tensor, (x, 3, 4), {}),
    (torch.ops.aten.uniform.default, (x, 0.0, 1.0), {}),
    (torch.ops.aten.uniform.default, (x,), {"from": 0.0}),
    (torch.ops.aten._has_compatible_shallow_copy_type.default, (x, x), {}),
    (torch.add, (x, 3), {"alpha": 2}),
]


@pytest.mark.parametrize("target, args, kwargs", FUNCTION_CALLS)
@pytest.mark.parametrize("only_kwargs", [False, True])
def test_normalize_function_matches_torch_fx(target, args, kwargs, only_kwargs):
    expected = outcome(
        lambda: oracle_schemas.normalize_function(
            target, args, kwargs, normalize_to_only_use_kwargs=only_kwargs
        )
    )
    actual = outcome(
        lambda: schemas.normalize_function(target, args, kwargs, normalize_to_only_use_kwargs=only_kwargs)
    )
    assert actual == expected


def test_type_errors_from_arg_types_match_torch_fx():
    # (int, int) selects the scalar ``add.int`` schema, which then cannot take ``alpha``.
    call = (torch.add, (x, 3), {"alpha": 2})
    expected = outcome(lambda: oracle_schemas.normalize_function(*call, arg_types=(int, int)))
    assert expected[0] == "raised"
    assert outcome(lambda: schemas.normalize_function(*call, arg_types=(int, int))) == expected


class _Custom(torch.nn.Module):
    def forward(self, a, b=2):
        return a


class _Holder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)
        self.seq = torch.nn.Sequential(torch.nn.ReLU())
        self.custom = _Custom()


@pytest.mark.parametrize(
    "target, args, kwargs",
    [
        ("lin", (x,), {}),
        ("lin", (), {"input": x}),
        ("lin", (x, x), {}),
        ("seq", (x,), {}),
        ("seq.0", (x,), {}),
        ("custom", (x,), {}),
        ("missing", (x,), {}),
    ],
)
@pytest.mark.parametrize("only_kwargs", [False, True])
def test_normalize_module_matches_torch_fx(target, args, kwargs, only_kwargs):
    root = _Holder()
    expected = outcome(lambda: oracle_schemas.normalize_module(root, target, args, kwargs, only_kwargs))
    assert outcome(lambda: schemas.normalize_module(root, target, args, kwargs, only_kwargs)) == expected


def test_call_module_without_root_raises_like_torch_fx():
    ours, theirs, pairs = traced_pairs(Modules)
    our_node, their_node = next(pair for pair in pairs if pair[0].op == "call_module")
    expected = outcome(lambda: their_node.normalized_arguments(None))
    assert expected[:2] == ("raised", "RuntimeError")
    assert outcome(lambda: our_node.normalized_arguments(None)) == expected


def _builtin_ops():
    found = [getattr(torch, name) for name in sorted(dir(torch))]
    found = [op for op in found if isinstance(op, types.BuiltinFunctionType)]
    found += [torch.ops.aten.add, torch.ops.aten.mul.Tensor, torch.ops.aten.uniform, torch.ops.aten.max.dim]
    found += [F.relu, operator.add, torch.nonzero]
    return found


def _signature_text(result):
    # Script-class annotations print with their memory address.
    return re.sub(r" at 0x[0-9a-f]+", "", str(result))


def test_signatures_of_all_torch_builtins_match_torch_fx():
    ops = _builtin_ops()
    assert len(ops) > 500
    for op in ops:
        expected = oracle_schemas.get_signature_for_torch_op(op, return_schemas=True)
        actual = schemas.get_signature_for_torch_op(op, return_schemas=True)
        assert _signature_text(actual) == _signature_text(expected), op
        assert _signature_text(schemas.get_signature_for_torch_op(op)) == _signature_text(
            oracle_schemas.get_signature_for_torch_op(op)
        ), op


TYPE_PAIRS = [
    (Tensor, Tensor),
    (Tensor, torch.nn.Parameter),
    (torch.nn.Parameter, Tensor),
    (numbers.Number, int),
    (numbers.Number, bool),
    (numbers.Number, Tensor),
    (int, bool),
    (float, int),
    (Optional[Tensor], Tensor),
    (Optional[Tensor], type(None)),
    (Union[int, Tensor], Tensor),
    (List[int], list),
    (List[int], List[int]),
    (List[int], Tuple[int, int]),
    (List[int], Tuple[int, ...]),
    (List[Tensor], Tuple[Tensor, Tensor]),
    (List[float], List[int]),
    (List[numbers.Number], List[int]),
    (List[int], int),
    (List[float], float),
    (List[int], bool),
    (List[int], Tuple[int, str]),
    (List[int], list[int, str]),
    (Any, Any),
    (Any, int),
    (Optional[List[int]], Tuple[int]),
    (Dict[str, int], Dict[str, int]),
    (Dict[str, int], dict[str, int]),
    (Tuple[int, int], Tuple[int, int, int]),
    (Tensor, 3),
    (Tensor, "Tensor"),
    (List[Optional[Tensor]], List[Tensor]),
    (Optional[Tensor], Union[Tensor, None]),
    (List[int], List[List[int]]),
    # PEP 585 list[int] takes a single int as List[int] does; a dtype passes for an int.
    (list[int], int),
    (list[int], bool),
    (list[float], float),
    (int, torch.dtype),
    (Optional[int], torch.dtype),
    (int, torch.layout),
]


@pytest.mark.parametrize("signature_type, argument_type", TYPE_PAIRS)
def test_type_matches_agrees_with_torch_fx(signature_type, argument_type):
    expected = outcome(lambda: _boxed(oracle_schemas.type_matches(signature_type, argument_type)))
    assert outcome(lambda: _boxed(schemas.type_matches(signature_type, argument_type))) == expected


def _boxed(value):
    return schemas.ArgsKwargsPair((value,), {})


@pytest.mark.parametrize(
    "target, args, kwargs",
    [
        (torch.add, (x, x), {"out": x}),
        (torch.add, (x, x), {}),
        (torch.relu_, (x,), {}),
        (F.relu, (x,), {}),
        (torch.ops.aten.add_.Tensor, (x, x), {}),
        (torch.ops.aten.add.out, (x, x), {"out": x}),
        (torch.ops.aten.uniform_.default, (x, 0.0, 1.0), {}),
        (torch.nonzero, (x,), {}),
        (torch.sum, (x,), {"bogus": 1}),
    ],
)
def test_check_for_mutable_operation_agrees_with_torch_fx(target, args, kwargs):
    expected = outcome(lambda: oracle_schemas.check_for_mutable_operation(target, args, kwargs))
    assert outcome(lambda: schemas.check_for_mutable_operation(target, args, kwargs)) == expected


def test_args_kwargs_pair_is_a_named_tuple():
    pair = schemas.ArgsKwargsPair((1,), {"k": 2})
    assert pair == ((1,), {"k": 2}) and pair.args == (1,) and pair.kwargs == {"k": 2}
    assert schemas.ArgsKwargsPair._fields == oracle_schemas.ArgsKwargsPair._fields


def test_module_is_reachable_as_a_package_attribute_like_torch_fx():
    assert fxkit.operator_schemas is schemas
    assert torch.fx.operator_schemas is oracle_schemas


@pytest.mark.parametrize(
    "value",
    [[int, int], (int, int), [int, float], (int, str), [torch.Tensor, torch.Tensor], [], (), [int, bool],
     [bool, int, float], (torch.Tensor, torch.nn.Parameter), [int], 3, "s", None],
    ids=repr,
)  # fmt: skip
def test_create_type_hint_matches_torch_fx(value: Any) -> None:
    assert schemas.create_type_hint(value) == oracle_schemas.create_type_hint(value)


@pytest.mark.parametrize("value", [[3], [List[int], List[int]], [int, List[int]], [[int], [int]]], ids=repr)
def test_create_type_hint_warns_on_non_classes_like_torch_fx(value: Any) -> None:
    with pytest.warns(UserWarning, match="not able to successfully create type hint"):
        ours = schemas.create_type_hint(value)
    with pytest.warns(UserWarning):
        assert ours == oracle_schemas.create_type_hint(value)


@pytest.mark.parametrize(
    "value", [1, 2.5, True, "s", None, [1, 2], (1, 2.0), [1.0], torch.device("cpu"), torch.float]
)
def test_torchscript_type_to_python_type_agrees_with_torch_fx(value):
    inferred = torch._C._jit_try_infer_type(value)
    assert inferred.success()
    expected = oracle_schemas._torchscript_type_to_python_type(inferred.type())
    assert schemas._torchscript_type_to_python_type(inferred.type()) == expected
