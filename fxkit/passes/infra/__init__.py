"""Pass infrastructure: a base class for passes and a manager that runs them in order."""

from . import pass_base, pass_manager
from .pass_base import PassBase, PassResult
from .pass_manager import PassManager

__all__ = ["PassBase", "PassManager", "PassResult", "pass_base", "pass_manager"]
