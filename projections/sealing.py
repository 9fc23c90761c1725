"""Sealed view columns: with the store's cipher, the views file holds payloads encrypted.

When the store is encrypted (``RUNJOURNAL_CIPHER_KEY``), the runner hands the
store's own cipher (eventsourcing's AES-GCM ``AESCipher``, the same key) to
every projection as ``projection.cipher``. The built-in views name their
payload columns in ``sealed`` (outputs, errors, messages, tool arguments,
edits, checkpoints, resume payloads); those are encrypted when written and
decrypted when read. Ids, states, counts and times stay readable, so queries
still filter and sort on them. Without a key, ``seal`` and ``unseal`` return
values as they are: plaintext views are unchanged.

The views file also records which key (if any) wrote it: a token sealed with
the key in ``_views_key``. A file written with another key, with a key when
none is given, or without a key when one is given is wiped and rebuilt from
the log (it is a cache), never read as garbage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import Cipher

if TYPE_CHECKING:  # sqlite-utils is imported where the views are opened, not by every reader
    from sqlite_utils import Database

KEY_TABLE = "_views_key"
_TOKEN = b"runjournal views key check"


class ViewCipher:
    """Seals text for the views file with the store's cipher; without one, values pass through."""

    def __init__(self, cipher: Cipher | None = None) -> None:
        self.cipher = cipher

    @property
    def enabled(self) -> bool:
        """True when values are sealed (the store has a cipher key)."""
        return self.cipher is not None

    def seal(self, value: str | None) -> str | bytes | None:
        """The stored form of a text value: AES-GCM bytes with a key, the text itself without."""
        if value is None or self.cipher is None:
            return value
        return self.cipher.encrypt(value.encode("utf-8"))

    def unseal(self, value: Any) -> Any:
        """The text a sealed value holds (``ValueError`` if another key sealed it)."""
        if value is None or self.cipher is None:
            return value
        return self.cipher.decrypt(bytes(value)).decode("utf-8")

    def matches(self, db: Database) -> bool:
        """Whether the views file was written with this cipher's key (or, without one, with none)."""
        if KEY_TABLE not in db.table_names():
            return self.cipher is None
        row = db.execute(f"SELECT token FROM {KEY_TABLE}").fetchone()
        if row is None or self.cipher is None:
            return row is None and self.cipher is None
        try:
            return bool(self.unseal(row[0]) == _TOKEN.decode())
        except ValueError:  # another key
            return False

    def mark(self, db: Database) -> None:
        """Record in the views file which key writes it (no table at all without a key)."""
        db.execute(f"DROP TABLE IF EXISTS {KEY_TABLE}")
        if self.cipher is not None:
            db.execute(f"CREATE TABLE {KEY_TABLE} (token BLOB NOT NULL)")
            db.execute(f"INSERT INTO {KEY_TABLE} (token) VALUES (?)", [self.seal(_TOKEN.decode())])


PLAINTEXT = ViewCipher()
