"""Training stage: trainer, optimizer/schedule, callbacks.

`kiln.train` is both this package and the API function `kiln.train(...)`: importing a submodule
binds the package over the function on `kiln`, so the package itself is made callable and forwards
to `kiln.api.train`.
"""

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from kiln.api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
