"""The digest of a stored LangGraph checkpoint: what a run's log records of it, and what ``verify`` recomputes.

Plain hashing, no LangGraph import: the store's checker uses it without the extra installed.
"""

from __future__ import annotations

import hashlib


def checkpoint_digest(checkpoint_type: str, checkpoint: bytes, metadata_type: str, metadata: bytes) -> str:
    """``sha256:`` and the hex SHA-256 of a checkpoint's stored value and metadata, each part length-prefixed."""
    h = hashlib.sha256()
    for part in (checkpoint_type.encode(), bytes(checkpoint), metadata_type.encode(), bytes(metadata)):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return f"sha256:{h.hexdigest()}"
