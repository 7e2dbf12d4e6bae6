"""immutable_list / immutable_dict: read-only, hashable, picklable, pytree-aware, like torch.fx's."""

from __future__ import annotations

import copy
import pickle
from typing import Any, Callable

import pytest
import torch.fx.immutable_collections as theirs
import torch.utils._pytree as pytree

from fxkit.immutable_collections import immutable_dict, immutable_list

LIST_MUTATIONS: list[Callable[[Any], Any]] = [
    lambda v: v.append(1),
    lambda v: v.extend([1]),
    lambda v: v.insert(0, 1),
    lambda v: v.pop(),
    lambda v: v.remove(1),
    lambda v: v.clear(),
    lambda v: v.sort(),
    lambda v: v.reverse(),
    lambda v: v.__setitem__(0, 5),
    lambda v: v.__delitem__(0),
    lambda v: v.__iadd__([1]),
    lambda v: v.__imul__(2),
]

DICT_MUTATIONS: list[Callable[[Any], Any]] = [
    lambda v: v.__setitem__("a", 5),
    lambda v: v.__delitem__("a"),
    lambda v: v.clear(),
    lambda v: v.pop("a"),
    lambda v: v.popitem(),
    lambda v: v.setdefault("c", 1),
    lambda v: v.update(c=1),
    lambda v: v.__ior__({"c": 1}),
]


@pytest.mark.parametrize("mutate", LIST_MUTATIONS)
def test_list_refuses_mutation_like_torch_fx(mutate: Callable[[Any], Any]) -> None:
    ours, reference = immutable_list([1, 2, 3]), theirs.immutable_list([1, 2, 3])
    with pytest.raises(TypeError) as their_error:
        mutate(reference)
    with pytest.raises(type(their_error.value), match="does not support mutation"):
        mutate(ours)
    assert ours == [1, 2, 3]


@pytest.mark.parametrize("mutate", DICT_MUTATIONS)
def test_dict_refuses_mutation_like_torch_fx(mutate: Callable[[Any], Any]) -> None:
    ours, reference = immutable_dict(a=1, b=2), theirs.immutable_dict(a=1, b=2)
    with pytest.raises(TypeError) as their_error:
        mutate(reference)
    with pytest.raises(type(their_error.value), match="does not support mutation"):
        mutate(ours)
    assert ours == {"a": 1, "b": 2}


def test_reading_and_non_mutating_operations_work() -> None:
    values = immutable_list([3, 1, 2])
    assert values[0] == 3 and values[1:] == [1, 2] and len(values) == 3
    assert values + [4] == [3, 1, 2, 4] and sorted(values) == [1, 2, 3]
    assert values.index(1) == 1 and values.count(2) == 1
    mapping = immutable_dict(a=1)
    assert mapping["a"] == 1 and mapping.get("b") is None and list(mapping.items()) == [("a", 1)]
    assert (mapping | {"b": 2}) == {"a": 1, "b": 2}
    assert mapping == {"a": 1}


def test_hash_is_by_value() -> None:
    assert hash(immutable_list([1, 2])) == hash(immutable_list([1, 2]))
    assert hash(immutable_dict(a=1)) == hash(immutable_dict(a=1))
    assert len({immutable_list([1, 2]), immutable_list([1, 2])}) == 1


def test_pickle_and_copy_keep_type_and_value() -> None:
    for value in (immutable_list([1, [2, 3]]), immutable_dict(a=1, b=immutable_list([2]))):
        for clone in (pickle.loads(pickle.dumps(value)), copy.deepcopy(value), copy.copy(value)):
            assert type(clone) is type(value)
            assert clone == value


def test_pytree_flattens_like_the_builtin_containers() -> None:
    nested = immutable_dict(a=immutable_list([1, 2]), b=3)
    leaves, spec = pytree.tree_flatten(nested)
    assert leaves == [1, 2, 3]
    rebuilt = pytree.tree_unflatten([10, 20, 30], spec)
    assert type(rebuilt) is immutable_dict and type(rebuilt["a"]) is immutable_list
    assert rebuilt == {"a": [10, 20], "b": 30}
    assert pytree.tree_map(lambda leaf: leaf * 2, immutable_list([1, 2])) == [2, 4]
