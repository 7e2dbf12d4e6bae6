"""Quantization (simple): calibrate, then simulate int8 activations around every Linear.

1. Calibration: an Interpreter subclass records the min/max of each Linear's input while sample
   batches run through the graph.
2. Rewrite: before each Linear, insert a fake-quantize node (round to the int8 grid chosen from
   the observed range and back), so the model computes with int8-representable activations.
The quantized model stays close to the float one.
"""

import torch
import torch.nn as nn

import fxkit as fx


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 4)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class RangeObserver(fx.Interpreter):
    """Runs the graph and keeps the running min/max of every Linear's input."""

    def __init__(self, module):
        super().__init__(module)
        self.ranges = {}

    def call_module(self, target, args, kwargs):
        if isinstance(self.fetch_attr(target), nn.Linear):
            low, high = self.ranges.get(target, (float("inf"), float("-inf")))
            self.ranges[target] = (min(low, args[0].min().item()), max(high, args[0].max().item()))
        return super().call_module(target, args, kwargs)


def int8_params(low: float, high: float):
    scale = max(high - low, 1e-8) / 255.0
    zero_point = int(round(-low / scale)) - 128
    return scale, max(-128, min(127, zero_point))


def quantize_activations(traced: fx.GraphModule, ranges) -> fx.GraphModule:
    for node in list(traced.graph.nodes):
        if node.op == "call_module" and node.target in ranges:
            scale, zero_point = int8_params(*ranges[node.target])
            with traced.graph.inserting_before(node):
                fake_quant = traced.graph.call_function(
                    torch.fake_quantize_per_tensor_affine, (node.args[0], scale, zero_point, -128, 127)
                )
            node.replace_input_with(node.args[0], fake_quant)
    traced.recompile()
    return traced


if __name__ == "__main__":
    torch.manual_seed(0)
    model = MLP().eval()
    traced = fx.symbolic_trace(model)
    observer = RangeObserver(traced)
    for _ in range(8):
        observer.run(torch.randn(32, 16))
    quantized = quantize_activations(traced, observer.ranges)
    print(quantized.code)
    x = torch.randn(64, 16)
    with torch.no_grad():
        error = (quantized(x) - model(x)).abs().max().item()
    assert error < 0.1, error
    print(f"int8-simulated activations: max abs error {error:.4f}")
