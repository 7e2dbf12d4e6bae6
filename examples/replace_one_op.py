"""Replace one op: turn every addition in a traced module into a multiplication.

Walk the graph, retarget the matching nodes, lint, recompile. Both spellings of "add" are
covered: the ``torch.add`` function and the ``+`` operator (``operator.add``).
"""

import operator

import torch

import fxkit as fx


class AddThings(torch.nn.Module):
    def forward(self, x, y):
        return torch.add(x, y) + y


def add_to_mul(module: torch.nn.Module) -> fx.GraphModule:
    traced = fx.symbolic_trace(module)
    replacements = {torch.add: torch.mul, operator.add: operator.mul}
    for node in traced.graph.nodes:
        if node.op == "call_function" and node.target in replacements:
            node.target = replacements[node.target]
    traced.graph.lint()
    traced.recompile()
    return traced


if __name__ == "__main__":
    transformed = add_to_mul(AddThings())
    print(transformed.code)
    x, y = torch.randn(3), torch.randn(3)
    assert torch.allclose(transformed(x, y), torch.mul(x, y) * y)
    print("add -> mul: outputs match x * y * y")
