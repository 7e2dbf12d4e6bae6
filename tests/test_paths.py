"""fxkit._paths: the one walker of dotted attribute paths."""

from __future__ import annotations

import pytest
import torch

from fxkit import _paths, zoo


def _tree() -> torch.nn.Module:
    root = torch.nn.Module()
    root.a = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    root.b = torch.nn.Module()
    root.b.shared = root.a[0]  # the same module at a second path
    root.b.empty = None
    return root


def test_resolve_and_lookup_follow_paths_and_name_the_missing_prefix() -> None:
    root = _tree()
    assert _paths.resolve(root, "a.0.weight") is root.a[0].weight
    assert _paths.lookup(root, "a.7.weight", "default") == "default"
    with pytest.raises(_paths.MissingAttribute) as caught:
        _paths.resolve(root, "a.7.weight")
    assert caught.value.missing == "a.7" and isinstance(caught.value.error, AttributeError)
    assert isinstance(caught.value, AttributeError)


def test_make_parents_creates_holders_only_where_asked() -> None:
    root = _tree()
    owner, leaf = _paths.make_parents(root, "b.empty.c.d", torch.nn.Module)
    assert leaf == "d" and root.b.empty.c is owner  # None and missing names get holders
    kept = root.a
    owner, leaf = _paths.make_parents(root, "a.x", torch.nn.Module)
    assert owner is kept and leaf == "x"


def test_walk_modules_matches_named_modules() -> None:
    for root in (_tree(), zoo.get_model("resnet")):
        assert [(p, id(m)) for p, m in _paths.walk_modules(root)] == [
            (p, id(m)) for p, m in root.named_modules()
        ]
