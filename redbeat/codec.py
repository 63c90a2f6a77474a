"""The JSON codec's public names, under the name that says it works both ways.

:mod:`redbeat.decoder` holds the code (it encodes too, despite its name);
this module re-exports its public API so new code can import
``redbeat.codec``.  When the code moves here, ``decoder`` becomes the
re-export, and imports of either name keep working.
"""

from __future__ import annotations

from .decoder import *  # noqa: F403  # the public names, as decoder.__all__ lists them
from .decoder import __all__ as __all__
