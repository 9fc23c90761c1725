"""New run and thread ids: time-ordered UUIDs (version 7, RFC 9562), not random ones.

Every table keyed by run id (the store's events, the inline queue, the views) is a
b-tree. A random id lands each new run on a random page, so as a table outgrows the
caches every commit rewrites about one page per new run; ids that grow with time put
new runs on the last pages. The first 48 bits are the milliseconds of the journal's
clock at submit, the other 74 (beside version and variant) are random, so two ids
made in the same millisecond still differ.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

_MS = (1 << 48) - 1
_RAND = (1 << 74) - 1
_RAND_B = (1 << 62) - 1


def time_ordered_id(now: datetime, entropy: Callable[[int], bytes] = os.urandom) -> UUID:
    """A UUIDv7 for ``now``: Unix milliseconds, version 7, 74 random bits from ``entropy``."""
    ms = int(now.timestamp() * 1000) & _MS
    rand = int.from_bytes(entropy(10), "big") & _RAND
    return UUID(int=ms << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62 | rand & _RAND_B)
