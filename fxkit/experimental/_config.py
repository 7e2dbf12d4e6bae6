"""Switches for experimental features, read and patched like torch's other config modules.

``fxkit.experimental._config.patch("name", value)`` works as a context manager or decorator.
"""

import sys

from torch.utils._config_module import install_config_module

# Attach FX node provenance to profiler events (only meaningful with compiled code on CUDA).
enrich_profiler_metadata: bool = False

install_config_module(sys.modules[__name__])
