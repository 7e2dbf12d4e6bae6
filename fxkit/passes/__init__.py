"""Graph passes with torch.fx's module paths (``fxkit.passes.shape_prop``, ``fxkit.passes.split_module`` ...)."""
