"""The ``dispatch`` decorator of the unification package, registering into its own namespace."""

from functools import partial

from .multipledispatch import dispatch as _dispatch

namespace: dict = {}

dispatch = partial(_dispatch, namespace=namespace)
