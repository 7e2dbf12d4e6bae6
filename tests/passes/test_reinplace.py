"""passes.reinplace against torch.fx's on functionalized programs (make_fx(functionalize(f))):
the same ops become in-place, the same scatters disappear, and the results stay the same."""

from __future__ import annotations

from typing import Any, Callable, Tuple

import pytest
import torch
import torch.fx.experimental.proxy_tensor as oracle_proxy_tensor
import torch.fx.passes.reinplace as oracle
import torch.utils._pytree as pytree
from torch.func import functionalize

import fxkit.experimental.proxy_tensor as proxy_tensor
import fxkit.passes.reinplace as ours


def chain(x):
    a = x.clone()
    return a.add(1).mul(2)


def index_assign(x):
    a = x.clone()
    a[0] = 5
    a.view(-1).add_(1)
    return a


def input_feeds_result(x, y):
    a = x.add(y)
    return a.add(a.relu()), x.add(1)


def broadcast_promote_and_slice(x, y):
    a = x.clone()
    b = a.add(y)  # broadcasts: not in place
    d = x.clone().int().add(1.5)  # promotes: not in place
    a[1:].mul_(2)
    return b, d, a.sum(), a


def read_afterwards(x):
    a = x.clone()
    return a, a.add(1)


def view_read_afterwards(x):
    a = x.clone()
    v = a.view(-1)
    return v.mul(2), a.add(1)


def diagonal_and_select(x):
    a = x.clone().reshape(2, 3)
    a.diagonal().fill_(0)
    a[:, 1].mul_(3)
    return a.sin().cos()


def fresh_buffer(x):
    a = torch.zeros(3, 3)
    a[1] = x[:3]
    a.add_(x[:3])
    return a


def mutated_input(x):
    x.add_(1)
    return x.mul(2)


def nested_views(x):
    a = x.clone().reshape(4, 4)
    a[1:3, 1:3] += 1
    a[0, :2] = 7
    return a.sum(0)


def other_ops(x):
    a = x.clone()
    b = a.clamp(0, 1)
    c = b.index_put((torch.tensor([0, 2]),), torch.ones(2))
    return torch.where(c > 0, c, torch.zeros_like(c)).exp()


def expanded(x):
    a = x.clone()
    return a.expand(4, 4).add(1)  # elements of the expanded view share memory: not in place


def scatter_of_a_view(x):
    a = x.clone()
    e = a.view(-1)
    d = a.view(-1)[0].view(-1)
    d.add_(1)  # functionalized: the scatter's source is a view of the add
    return a + e


def scatter_to_a_mirror(x, index):
    a = x.clone()
    updated = a[:, 1][1].add(1)
    return torch.select_scatter(a.as_strided((4,), (4,), 1), updated, 0, index)


def scatter_to_the_same_place(x):
    return scatter_to_a_mirror(x, 1)  # the mirror's element 1 is where ``updated`` lives


def scatter_elsewhere(x):
    return scatter_to_a_mirror(x, 0)  # a different element: the scatter becomes a copy_


CASES: Tuple[Tuple[Callable[..., Any], Tuple[torch.Size, ...]], ...] = (
    (chain, ((3,),)), (index_assign, ((3,),)), (input_feeds_result, ((3,), (3,))),
    (broadcast_promote_and_slice, ((3,), (2, 3))), (read_afterwards, ((3,),)), (view_read_afterwards, ((3,),)),
    (diagonal_and_select, ((6,),)), (fresh_buffer, ((6,),)), (mutated_input, ((3,),)), (nested_views, ((16,),)),
    (other_ops, ((3,),)), (expanded, ((1,),)), (scatter_of_a_view, ((4,),)),
    (scatter_to_the_same_place, ((4, 4),)), (scatter_elsewhere, ((4, 4),)),
)  # fmt: skip


def _reinplaced(
    make_fx: Any, reinplace: Any, fn: Callable[..., Any], shapes: Tuple[Any, ...]
) -> Tuple[str, Any]:
    args = [torch.linspace(-1, 1, int(torch.Size(shape).numel())).reshape(shape) for shape in shapes]
    gm = make_fx(functionalize(fn))(*[arg.clone() for arg in args])
    expected = gm(*[arg.clone() for arg in args])
    result = reinplace(gm, *[arg.clone() for arg in args])
    assert result is gm
    got = gm(*[arg.clone() for arg in args])
    assert all(torch.equal(a, b) for a, b in zip(pytree.tree_leaves(got), pytree.tree_leaves(expected)))
    meta = [
        (n.name, n.meta.get("node_idx"), type(n.meta.get("fake_result")).__name__) for n in gm.graph.nodes
    ]
    return gm.code, meta


@pytest.mark.parametrize("fn, shapes", CASES, ids=[fn.__name__ for fn, _ in CASES])
def test_reinplace_matches_torch_fx(fn: Callable[..., Any], shapes: Tuple[Any, ...]) -> None:
    ours_result = _reinplaced(proxy_tensor.make_fx, ours.reinplace, fn, shapes)
    assert ours_result == _reinplaced(oracle_proxy_tensor.make_fx, oracle.reinplace, fn, shapes)
