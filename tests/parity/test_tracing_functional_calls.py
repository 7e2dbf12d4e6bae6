"""Tracing functional calls: where/masked_fill, einsum, attention, interpolate, indexing.

Tracing sweep: corner cases real models hit while being traced, run with torch.fx (the oracle)
and with fxkit in both patch modes (fast and plain); helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import math

import torch
import torch.fx
import torch.nn.functional as F

from .oracle import parity_test, snippet, traced


@snippet
def where_masked_fill_and_boolean_mask(fx):
    def fn(x):
        mask = x > 0
        y = torch.where(mask, x, torch.zeros_like(x))
        z = x.masked_fill(~mask, float("-inf"))
        return y, z.softmax(-1), x[mask]

    return traced(fx, fn, torch.tensor([[1.0, -2.0], [-3.0, 4.0]]))


@snippet
def einsum_and_scaled_dot_product_attention(fx):
    def fn(q, k, v):
        scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.size(-1))
        return scores.softmax(-1), F.scaled_dot_product_attention(q, k, v, is_causal=True)

    return traced(fx, fn, torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4))


@snippet
def interpolate_and_pad_with_kwargs(fx):
    def fn(x):
        up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return F.pad(up, (1, 1, 2, 0), mode="constant", value=0.5)

    return traced(fx, fn, torch.randn(1, 1, 2, 2))


@snippet
def functional_with_many_kwargs(fx):
    def fn(x, w):
        y = F.conv2d(x, w, bias=None, stride=1, padding=1, dilation=1, groups=1)
        y = F.layer_norm(y, y.shape[-2:], eps=1e-6)
        return F.dropout(F.gelu(y, approximate="tanh"), p=0.0, training=False)

    return traced(fx, fn, torch.randn(1, 2, 4, 4), torch.randn(3, 2, 3, 3))


@snippet
def getitem_with_proxy_index(fx):
    def fn(x, idx):
        return x[idx], x[:, idx[0]], x[idx.argmax()]

    return traced(fx, fn, torch.arange(12.0).reshape(3, 4), torch.tensor([2, 0]))


@snippet
def getitem_with_none_ellipsis_and_steps(fx):
    def fn(x):
        return x[None, ..., ::2], x[:, None, 1:-1], x[..., -1]

    return traced(fx, fn, torch.randn(3, 5))


test_fxkit_matches_torch_fx = parity_test(__name__, both_patch_modes=True)
