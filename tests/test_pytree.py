"""fxkit._pytree (flattening along a spec) against torch.fx._pytree."""

from __future__ import annotations

from typing import Any, List

import torch.fx._pytree as oracle_pytree
import torch.utils._pytree as pytree

import fxkit._pytree as fx_pytree


class Box:
    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b


pytree.register_pytree_node(Box, lambda box: ([box.a, box.b], None), lambda values, _: Box(*values))


def _flatten_with(module: Any) -> List[Any]:
    spec = pytree.tree_structure([Box(1, (2, 3)), {"k": 4}])
    seen = [module.tree_flatten_spec([Box(3, (4, 5)), {"k": 6, "extra": 0}], spec)]
    try:
        # The registered function decides the order of the children it hands back.
        module.register_pytree_flatten_spec(Box, lambda box, _spec: [box.b, box.a])
        seen.append(module.tree_flatten_spec([Box((4, 5), 3), {"k": 6}], spec))
        module.register_pytree_flatten_spec(Box, lambda box, _spec: [box.b, box.a], lambda box, _spec: False)
        seen.append(module.tree_flatten_spec([Box((7, 8), 9), {"k": 0}], spec))
    finally:
        module._deregister_pytree_flatten_spec(Box)
    return seen


def test_register_pytree_flatten_spec_matches_torch_fx() -> None:
    assert _flatten_with(fx_pytree) == _flatten_with(oracle_pytree)


def _builtin_specs(module: Any) -> List[Any]:
    from collections import namedtuple

    pair = namedtuple("pair", "a b")
    dict_spec, list_spec = pytree.tree_structure({"a": 1, "b": 2}), pytree.tree_structure([1, 2])
    tuple_spec, pair_spec = pytree.tree_structure((1, 2)), pytree.tree_structure(pair(1, 2))
    return [
        module._dict_flatten_spec({"b": 5, "a": 4, "c": 0}, dict_spec),
        module._dict_flatten_spec_exact_match({"b": 5, "a": 4, "c": 0}, dict_spec),
        module._dict_flatten_spec_exact_match({"b": 5, "a": 4}, dict_spec),
        module._list_flatten_spec([7, 8, 9], list_spec), module._list_flatten_spec_exact_match([7, 8], list_spec),
        module._tuple_flatten_spec((7, 8, 9), tuple_spec), module._tuple_flatten_spec_exact_match((7, 8, 9), tuple_spec),
        module._namedtuple_flatten_spec(pair(3, 4), pair_spec),
        module._namedtuple_flatten_spec_exact_match(pair(3, 4), pair_spec),
        module.tree_flatten([1, (2, 3)])[0],
    ]  # fmt: skip


def test_builtin_flatten_spec_helpers_match_torch_fx() -> None:
    assert _builtin_specs(fx_pytree) == _builtin_specs(oracle_pytree)


def _retraced_code(fx: Any) -> List[str]:
    """Trace with pytree concrete_args, then trace the result again (its forward flattens a proxy)."""
    import torch

    def f_sum(x):
        return sum(x)

    def f_nested(x):
        return x["a"]["b"] + sum(x["z"]) + x["a"]["c"][0]

    def f_flag(b, a):
        return a["a"] if b else a["z"]

    cases = [
        (f_sum, {"x": [fx.PH, fx.PH, fx.PH]}),
        (f_nested, {"x": {"a": {"b": fx.PH, "c": [fx.PH]}, "z": (fx.PH, fx.PH)}}),
        (f_flag, {"a": {"a": fx.PH, "z": fx.PH}, "b": True}),
    ]
    codes = []
    for fn, concrete in cases:
        retraced = fx.symbolic_trace(fx.symbolic_trace(fn, concrete_args=concrete))
        codes.append(retraced.code)
        value = torch.utils._pytree.tree_map(lambda leaf: torch.ones(2) if leaf is fx.PH else leaf, concrete)
        codes.append(str(retraced(**value)))
    return codes


def test_retracing_pytree_flattened_code_reads_parts_with_getitem_like_torch_fx() -> None:
    import torch.fx

    import fxkit

    assert _retraced_code(fxkit) == _retraced_code(torch.fx)
