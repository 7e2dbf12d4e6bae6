"""Small modules several parity sections trace."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AddRelu(nn.Module):
    def forward(self, x, y):
        return torch.relu(x + y) * 2


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.weight = nn.Parameter(torch.randn(3))
        self.register_buffer("offset", torch.arange(3.0))

    def forward(self, x):
        return F.relu(self.linear(x)) * self.weight + self.offset


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.fc(x)) + 1
