"""Multiple dispatch: functions with one implementation per signature of argument types."""

from . import conflict, core, dispatcher, utils, variadic  # noqa: F401
from .core import dispatch  # noqa: F401
from .dispatcher import Dispatcher, MDNotImplementedError, halt_ordering, restart_ordering  # noqa: F401
