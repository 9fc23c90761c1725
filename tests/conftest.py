"""Fixtures: a fresh journal per test, on memory, a temp SQLite file or a PostgreSQL schema."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from runjournal.adapters.clock import ManualClock

from runjournal import Journal

POSTGRES_URL = os.environ.get("RUNJOURNAL_TEST_POSTGRES_URL", "")
REQUIRE_POSTGRES = os.environ.get("RUNJOURNAL_REQUIRE_POSTGRES") == "1"
SKIP_POSTGRES = (
    "PostgreSQL tests skipped: set RUNJOURNAL_TEST_POSTGRES_URL=postgresql://user@host:5432/db "
    "(./dev test does this when a server answers on 127.0.0.1:5432)"
)


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when a test says so."""
    return ManualClock()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A fresh SQLite store file."""
    return f"sqlite:///{tmp_path / 'journal.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the test PostgreSQL server, dropped afterwards."""
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("RUNJOURNAL_REQUIRE_POSTGRES=1 but RUNJOURNAL_TEST_POSTGRES_URL is not set")
        pytest.skip(SKIP_POSTGRES)
    from bench.postgres import fresh_schema

    with fresh_schema(POSTGRES_URL.split("?", 1)[0], prefix="t_") as url:
        yield url


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request) -> str:
    """Each backend in turn: the journal contract holds on all of them."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store_url(request) -> str:
    """A store that two journals (or processes) can open at once."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def journal(clock) -> Iterator[Journal]:
    """An in-memory journal on a manual clock."""
    j = Journal.open("memory://", clock=clock)
    yield j
    j.close()


@pytest.fixture
def any_journal(store_url, clock) -> Iterator[Journal]:
    """A journal on each backend, on a manual clock."""
    j = Journal.open(store_url, clock=clock)
    yield j
    j.close()
