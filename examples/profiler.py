"""Performance Profiler: time every node of a model with a small Interpreter subclass.

``TimingInterpreter`` shows the pattern in a few lines; ``fxkit.passes.profiler`` has the full
version with per-node and per-operation tables.
"""

import time

import torch

import fxkit as fx
from fxkit import zoo
from fxkit.passes.profiler import ProfilingInterpreter


class TimingInterpreter(fx.Interpreter):
    def __init__(self, module):
        super().__init__(module)
        self.seconds = {}

    def run_node(self, n):
        start = time.perf_counter()
        result = super().run_node(n)
        self.seconds[n.name] = self.seconds.get(n.name, 0.0) + time.perf_counter() - start
        return result


if __name__ == "__main__":
    model = zoo.get_model("resnet").eval()
    inputs = zoo.example_inputs("resnet")
    traced = fx.symbolic_trace(model)

    timing = TimingInterpreter(traced)
    with torch.no_grad():
        assert torch.allclose(timing.run(*inputs), model(*inputs))
    slowest = sorted(timing.seconds.items(), key=lambda item: item[1], reverse=True)[:5]
    print("slowest nodes:", ", ".join(f"{name} {seconds * 1e3:.2f} ms" for name, seconds in slowest))

    profiler = ProfilingInterpreter(traced)
    with torch.no_grad():
        for _ in range(3):
            profiler.run(*inputs)
    print(profiler.summary(should_sort=True))
