"""The optional e3nn dependency of the equivariant family, imported on first use."""

from __future__ import annotations

from types import ModuleType

from geounet.errors import GeounetError


def require_e3nn() -> ModuleType:
    """The ``e3nn`` package with its ``o3``, ``nn`` and ``math`` modules loaded, or a GeounetError
    naming the extra that installs it."""
    try:
        import e3nn
        import e3nn.math
        import e3nn.nn
        import e3nn.o3
    except ImportError as error:
        raise GeounetError("the equivariant models need e3nn, which is not installed; install the extra with "
                           "pip install 'geounet[equivariant]'") from error
    return e3nn
