"""Tracing real layers as leaves: MultiheadAttention, LSTM, GRU and TransformerEncoderLayer.

Tracing sweep: corner cases real models hit while being traced, run with torch.fx (the oracle)
and with fxkit in both patch modes (fast and plain); helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

from .oracle import parity_test, snippet, summary, traced


@snippet
def multihead_attention_leaf_tuple_unpacked(fx):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            out, weights = self.attn(x, x, x, need_weights=True)
            return out + 1, weights

    return traced(fx, Block().eval(), torch.randn(2, 3, 8))


@snippet
def lstm_leaf_nested_tuple_unpacked(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 5, batch_first=True)

        def forward(self, x):
            out, (h, c) = self.lstm(x)
            return out[:, -1] + h[0], c

    return traced(fx, Net(), torch.randn(2, 3, 4))


@snippet
def gru_leaf_with_initial_state(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(4, 5, num_layers=2)

        def forward(self, x, h0):
            out, h = self.gru(x, h0)
            return out.sum(0), h[-1]

    return traced(fx, Net(), torch.randn(3, 2, 4), torch.zeros(2, 2, 5))


@snippet
def transformer_encoder_layer_leaf(fx):
    class Leafy(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, nn.TransformerEncoderLayer) or super().is_leaf_module(m, qualname)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)

        def forward(self, x, mask):
            return self.layer(x, src_key_padding_mask=mask)

    net = Net().eval()
    graph = Leafy().trace(net)
    gm = fx.GraphModule(net, graph)
    mask = torch.tensor([[False, False, True], [False, False, False]])
    return gm.code, summary(graph), gm(torch.randn(2, 3, 8), mask)


test_fxkit_matches_torch_fx = parity_test(__name__, both_patch_modes=True)
