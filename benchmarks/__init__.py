"""fxkit's benchmarks against torch.fx: ``python3 -m benchmarks --compare torch.fx``."""
