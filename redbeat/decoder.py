"""celery-redbeat 2.x's module name for the JSON codec, kept for code written for it.

The codec lives in :mod:`redbeat.codec` (it encodes as well as decodes);
``from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder`` and the
other names 2.x code imports from here keep working.
"""

from __future__ import annotations

from .codec import *  # noqa: F403  # the public names, as codec.__all__ lists them
from .codec import __all__ as _codec_all
from .codec import get_utcoffset_minutes

__all__ = [*_codec_all, 'get_utcoffset_minutes']
