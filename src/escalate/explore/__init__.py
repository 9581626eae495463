"""The interactive explorer (a notebook widget and a served page), on Panel.

Panel is an optional extra (``pip install -e '.[explore]'``); importing this package without
it raises an error that says so. ``controls`` holds what is shown and computed, free of any
user interface; ``view`` the Panel view and the server.
"""

from __future__ import annotations

import sys
import types

from escalate.errors import EscalateError

try:
    import panel  # noqa: F401
except ImportError:  # pragma: no cover - the message is tested with panel hidden
    raise EscalateError(
        "the explorer needs Panel, an optional extra: pip install -e '.[explore]'"
    ) from None

from escalate.explore.controls import Explorable, Settings
from escalate.explore.view import Explorer, explore, serve

__all__ = ["Explorable", "Explorer", "Settings", "explore", "serve"]


class _Explore(types.ModuleType):
    """``escalate.explore`` is this package and the function at once: calling the package
    calls :func:`explore` (``escalate.explore(scenario)`` in a notebook)."""

    def __call__(self, scenario, **settings):
        return explore(scenario, **settings)


sys.modules[__name__].__class__ = _Explore
