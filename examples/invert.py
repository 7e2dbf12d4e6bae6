"""Invert Transformation: build the inverse of a chain of invertible operations.

Each supported op has a known inverse. The inverse graph walks the original graph backwards,
applying the inverse of each node to the value flowing in from its user.
"""

import torch

import fxkit as fx

INVERSES = {
    torch.exp: torch.log,
    torch.log: torch.exp,
    torch.neg: torch.neg,
    torch.sinh: torch.asinh,
    torch.asinh: torch.sinh,
}


def invert(module) -> fx.GraphModule:
    traced = fx.symbolic_trace(module)
    graph = traced.graph
    inverse = fx.Graph()
    value = inverse.placeholder("y")
    output = next(node for node in reversed(graph.nodes) if node.op == "output")
    current = output.args[0]
    while current.op != "placeholder":
        if current.op != "call_function" or current.target not in INVERSES or len(current.args) != 1:
            raise ValueError(
                f"cannot invert node {current.format_node()}: only chains of {list(INVERSES)} work"
            )
        value = inverse.call_function(INVERSES[current.target], (value,))
        current = current.args[0]
    inverse.output(value)
    return fx.GraphModule(traced, inverse)


def forward(x):
    return torch.exp(torch.neg(torch.sinh(x)))


if __name__ == "__main__":
    inverse = invert(forward)
    print(inverse.code)
    x = torch.randn(5)
    assert torch.allclose(inverse(forward(x)), x, atol=1e-5)
    print("inverse(forward(x)) == x")
