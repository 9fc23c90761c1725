"""Encryption at rest: with a key, stored events hold no plaintext; a wrong or missing key is a clear error."""

from __future__ import annotations

import sqlite3

import pytest
from eventsourcing.cryptography import AESCipher

from runjournal import Journal, StoreError

SECRET = "launch-code-7741"


def _write(url: str) -> str:
    with Journal.open(url) as j:
        run = j.submit(agent_id="a", input={"message": SECRET})
        claim = j.claim_next(worker_id="w")
        j.start(claim)
        j.complete(claim, output={"text": SECRET})
        return run.run_id


def test_events_are_stored_encrypted_and_read_back_with_the_key(sqlite_url, monkeypatch) -> None:
    monkeypatch.setenv("RUNJOURNAL_CIPHER_KEY", AESCipher.create_key(num_bytes=32))
    run_id = _write(sqlite_url)
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        blobs = [bytes(r[0]) for r in db.execute("SELECT state FROM stored_events")]
    assert blobs and not any(SECRET.encode() in b for b in blobs)
    assert not any(b"message" in b for b in blobs)
    with Journal.open(sqlite_url) as j:
        assert j.get_run(run_id).output == {"text": SECRET}
        assert j.verify().ok
        assert [m.content for m in j.messages(j.get_run(run_id).thread_id)] == [SECRET, SECRET]


def test_a_wrong_key_is_a_clear_error(sqlite_url, monkeypatch) -> None:
    monkeypatch.setenv("RUNJOURNAL_CIPHER_KEY", AESCipher.create_key(num_bytes=32))
    _write(sqlite_url)
    monkeypatch.setenv("RUNJOURNAL_CIPHER_KEY", AESCipher.create_key(num_bytes=32))
    with pytest.raises(StoreError, match="RUNJOURNAL_CIPHER_KEY is wrong"):
        Journal.open(sqlite_url)


def test_a_missing_key_is_a_clear_error(sqlite_url, monkeypatch) -> None:
    monkeypatch.setenv("RUNJOURNAL_CIPHER_KEY", AESCipher.create_key(num_bytes=32))
    _write(sqlite_url)
    monkeypatch.delenv("RUNJOURNAL_CIPHER_KEY")
    with pytest.raises(StoreError, match="set RUNJOURNAL_CIPHER_KEY"):
        Journal.open(sqlite_url)
