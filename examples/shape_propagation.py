"""Shape Propagation: record the shape and dtype of every value in a traced model.

ShapeProp runs the graph with the Interpreter and stores a TensorMetadata on each node. With
inputs (and the model) on the ``meta`` device nothing is computed: only shapes flow.
"""

import fxkit as fx
from fxkit import zoo
from fxkit.passes.shape_prop import ShapeProp


def shapes(traced: fx.GraphModule):
    return {
        node.name: tuple(node.meta["tensor_meta"].shape)
        for node in traced.graph.nodes
        if hasattr(node.meta.get("tensor_meta"), "shape")
    }


if __name__ == "__main__":
    real = fx.symbolic_trace(zoo.get_model("resnet"))
    ShapeProp(real).propagate(*zoo.example_inputs("resnet"))
    for node in real.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if meta is not None and hasattr(meta, "shape"):
            print(f"{node.name:<20} {node.op:<14} {str(tuple(meta.shape)):<20} {meta.dtype}")

    on_meta = fx.symbolic_trace(zoo.get_model("resnet").to("meta"))
    ShapeProp(on_meta).propagate(*(t.to("meta") for t in zoo.example_inputs("resnet")))
    assert shapes(on_meta) == shapes(real)
    print("meta-device propagation gives the same shapes without computing anything")
