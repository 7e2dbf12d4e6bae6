"""Conv/BatchNorm fusion: fold each eval-mode BatchNorm into the convolution before it.

In eval mode a BatchNorm is an affine map per channel, so it can be merged into the conv's
weight and bias; the graph then loses one node per pair. Written out here with the Graph API,
then checked against the library version ``fxkit.experimental.optimization.fuse``.
"""

import copy

import torch
import torch.nn as nn

import fxkit as fx
from fxkit.experimental.optimization import fuse


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(x)))


def fold_bn_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv computing bn(conv(x)) with bn's running statistics."""
    fused = copy.deepcopy(conv)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.weight = nn.Parameter((conv.weight * scale.reshape(-1, 1, 1, 1)).detach())
    fused.bias = nn.Parameter(((conv_bias - bn.running_mean) * scale + bn.bias).detach())
    return fused


def fuse_by_hand(model: nn.Module) -> fx.GraphModule:
    traced = fx.symbolic_trace(copy.deepcopy(model))
    modules = dict(traced.named_modules())
    for node in list(traced.graph.nodes):
        is_bn = node.op == "call_module" and isinstance(modules[node.target], nn.BatchNorm2d)
        producer = node.args[0] if node.args else None
        if not is_bn or not isinstance(producer, fx.Node) or producer.op != "call_module":
            continue
        conv = modules[producer.target]
        if not isinstance(conv, nn.Conv2d) or len(producer.users) != 1:
            continue
        setattr(traced, producer.target, fold_bn_into_conv(conv, modules[node.target]))
        node.replace_all_uses_with(producer)
        traced.graph.erase_node(node)
    traced.delete_all_unused_submodules()
    traced.recompile()
    return traced


if __name__ == "__main__":
    model = ConvNet()
    for bn in (model.bn1, model.bn2):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2.0)
    model.eval()
    by_hand = fuse_by_hand(model)
    library = fuse(model)
    print(by_hand.code)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(by_hand(x), expected, atol=1e-5)
        assert torch.allclose(library(x), expected, atol=1e-5)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in by_hand.modules()) == 0
    print("fused model matches the original in eval mode")
