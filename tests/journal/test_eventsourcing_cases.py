"""eventsourcing's own recorder, factory and application test cases, run on runjournal's stores.

runjournal's recorders extend eventsourcing's (they also write the claim queue and
the leases): the library's own cases show the extension keeps every contract the
library tests for. Each case gets a fresh SQLite file, or a fresh PostgreSQL
schema (the ``postgres_url`` fixture), so none of them sees another test's tables;
the in-process store's run recorder (which replaces the library's POPO insert)
is run through the application recorder cases too.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import unittest
from collections.abc import Iterator
from typing import Any
from unittest import TestCase, mock

import pytest
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteProcessRecorder,
    SQLiteTrackingRecorder,
)
from eventsourcing.utils import Environment, get_topic
from runjournal.adapters.storage import sqlite
from runjournal.adapters.storage.urls import store_env


@contextlib.contextmanager
def _cryptography_as_cipher_module() -> Iterator[None]:
    """Let eventsourcing's test module import its ``AESCipher`` from the ``cryptography`` one.

    ``eventsourcing.tests.persistence`` imports ``eventsourcing.cipher`` (pycryptodome),
    which runjournal does not depend on; runjournal's stores use
    ``eventsourcing.cryptography:AESCipher``, which reads and writes the same format.
    The alias lasts only for the import.
    """
    try:
        importlib.import_module("eventsourcing.cipher")
    except ImportError:
        sys.modules["eventsourcing.cipher"] = importlib.import_module("eventsourcing.cryptography")
        try:
            yield
        finally:
            del sys.modules["eventsourcing.cipher"]
    else:
        yield


with _cryptography_as_cipher_module():
    # Modules, not classes: a base case bound to a name here would be collected as it is.
    from eventsourcing.tests import application as es_app
    from eventsourcing.tests import persistence as es

NO_PROCESS_RECORDER = (
    "runjournal has no process recorder of its own: its factories hand out eventsourcing's "
    "unchanged ProcessRecorder, which eventsourcing's own suite covers"
)
NO_TRACKING_RECORDER = (
    "runjournal keeps no tracking records in the event store (the projection runner keeps "
    "its positions in the views file): its factories hand out eventsourcing's unchanged "
    "TrackingRecorder, which eventsourcing's own suite covers"
)
CIPHER_DEFAULT_TOPIC = (
    "this case sets CIPHER_KEY without CIPHER_TOPIC, which falls back to eventsourcing.cipher "
    "(pycryptodome), not a runjournal dependency; runjournal always sets "
    "CIPHER_TOPIC=eventsourcing.cryptography:AESCipher with the key (see urls.store_env)"
)


# -- where each case's store lives ---------------------------------------------------


def close_after_threads(case: TestCase, factory: Any) -> None:
    """Close ``factory`` once the threads the case started are done.

    Some cases (``test_concurrent_no_conflicts``) set a stop flag for their reader
    threads but do not join them, so a store closed at once can be closed under a
    running query (a segfault in sqlite3 on a loaded machine).
    """
    before = set(threading.enumerate())

    def close() -> None:
        for thread in set(threading.enumerate()) - before:
            if not thread.daemon:  # the case's own readers; a pool's daemon workers end with the pool
                thread.join(timeout=30)
        factory.close()

    case.addCleanup(close)


class OnSQLite(TestCase):
    """A fresh SQLite file per test, configured as runjournal configures its stores."""

    @pytest.fixture(autouse=True)
    def _store(self, tmp_path: Any) -> None:
        self.store_url = f"sqlite:///{tmp_path / 'cases.db'}"

    def store_settings(self) -> dict[str, str]:
        return store_env(self.store_url, environ={})

    def create_factory(self, name: str = "") -> Any:
        factory = sqlite.Factory(Environment(name, self.store_settings()))
        close_after_threads(self, factory)
        return factory


class OnMemory(TestCase):
    """The in-process store (its recorder keeps eventsourcing's POPO insert, with ids formatted once)."""

    def create_factory(self, name: str = "") -> Any:
        from runjournal.adapters.storage import memory

        return memory.Factory(Environment(name, {}))


@pytest.mark.postgres
class OnPostgres(TestCase):
    """A fresh PostgreSQL schema per test (skipped, like every PostgreSQL test, without a server)."""

    @pytest.fixture(autouse=True)
    def _store(self, postgres_url: str) -> None:
        self.store_url = postgres_url

    def store_settings(self) -> dict[str, str]:
        return store_env(self.store_url, environ={})

    def create_factory(self, name: str = "") -> Any:
        from runjournal.adapters.storage import postgres

        factory = postgres.Factory(Environment(name, self.store_settings()))
        close_after_threads(self, factory)
        return factory


class OnPostgresPoolOfOne(OnPostgres):
    """As above, on a pool of one connection and no overflow: how eventsourcing's own cases run."""

    def store_settings(self) -> dict[str, str]:
        return {**super().store_settings(), "POSTGRES_POOL_SIZE": "1", "POSTGRES_MAX_OVERFLOW": "0"}


# -- recorders ------------------------------------------------------------------------


class SnapshotRecorderCases(es.AggregateRecorderTestCase):
    """The factory's snapshot recorder (an aggregate recorder)."""

    def create_recorder(self) -> Any:
        return self.create_factory().aggregate_recorder("snapshots")  # type: ignore[attr-defined]


class RunRecorderCases(es.ApplicationRecorderTestCase):
    """The run recorder, as eventsourcing's application recorder."""

    def create_recorder(self) -> Any:
        return self.create_factory().application_recorder()  # type: ignore[attr-defined]


class NonInterleavingCases(es.NonInterleavingNotificationIDsBaseCase):
    """Two concurrent batches get notification ids that do not interleave."""

    def create_recorder(self) -> Any:
        return self.create_factory().application_recorder()  # type: ignore[attr-defined]


@unittest.skip(NO_PROCESS_RECORDER)
class ProcessRecorderCases(es.ProcessRecorderTestCase):
    def create_recorder(self) -> Any:
        raise NotImplementedError


@unittest.skip(NO_TRACKING_RECORDER)
class TrackingRecorderCases(es.TrackingRecorderTestCase):
    def create_recorder(self) -> Any:
        raise NotImplementedError


class TestMemoryRunRecorder(RunRecorderCases, OnMemory):
    pass


class TestSQLiteSnapshotRecorder(SnapshotRecorderCases, OnSQLite):
    pass


class TestSQLiteRunRecorder(RunRecorderCases, OnSQLite):
    pass


class TestSQLiteNonInterleavingNotificationIDs(NonInterleavingCases, OnSQLite):
    pass


class TestSQLiteProcessRecorder(ProcessRecorderCases, OnSQLite):
    pass


class TestSQLiteTrackingRecorder(TrackingRecorderCases, OnSQLite):
    pass


class TestPostgresSnapshotRecorder(SnapshotRecorderCases, OnPostgres):
    pass


class TestPostgresRunRecorder(RunRecorderCases, OnPostgres):
    # Notification ids come from a sequence: a failed insert leaves a permanent gap.
    EXPECT_CONTIGUOUS_NOTIFICATION_IDS = False


class TestPostgresNonInterleavingNotificationIDs(NonInterleavingCases, OnPostgres):
    pass


class TestPostgresPoolOfOneSnapshotRecorder(SnapshotRecorderCases, OnPostgresPoolOfOne):
    pass


class TestPostgresPoolOfOneRunRecorder(RunRecorderCases, OnPostgresPoolOfOne):
    EXPECT_CONTIGUOUS_NOTIFICATION_IDS = False


class TestPostgresPoolOfOneNonInterleavingNotificationIDs(
    NonInterleavingCases, OnPostgresPoolOfOne
):
    pass


class TestPostgresProcessRecorder(ProcessRecorderCases, OnPostgres):
    pass


class TestPostgresTrackingRecorder(TrackingRecorderCases, OnPostgres):
    pass


# -- factories ------------------------------------------------------------------------


class FactoryCases(es.InfrastructureFactoryTestCase[Any]):
    """The factory, constructed from its topic the way eventsourcing constructs one."""

    factory_class: type[Any]
    application_recorder_class: type[Any]
    aggregate_recorder_class: type[Any]
    tracking_recorder_class: type[Any]
    process_recorder_class: type[Any]

    def setUp(self) -> None:
        self.env = Environment("TestCase", self.store_settings())  # type: ignore[attr-defined]
        self.env[InfrastructureFactory.PERSISTENCE_MODULE] = get_topic(self.factory_class)
        super().setUp()

    def expected_factory_class(self) -> type[Any]:
        return self.factory_class

    def expected_aggregate_recorder_class(self) -> type[Any]:
        return self.aggregate_recorder_class

    def expected_application_recorder_class(self) -> type[Any]:
        return self.application_recorder_class

    def expected_tracking_recorder_class(self) -> type[Any]:
        return self.tracking_recorder_class

    def tracking_recorder_subclass(self) -> type[Any]:
        return _subclass_of(self.tracking_recorder_class)

    def expected_process_recorder_class(self) -> type[Any]:
        return self.process_recorder_class

    @unittest.skip(CIPHER_DEFAULT_TOPIC)
    def test_mapper_with_cipher(self) -> None:
        pass


_SUBCLASSES: dict[type[Any], type[Any]] = {}


def _subclass_of(cls: type[Any]) -> type[Any]:
    """One subclass per class, named in this module: a topic names one class for good."""
    if cls not in _SUBCLASSES:
        name = f"My{cls.__name__}"
        _SUBCLASSES[cls] = type(name, (cls,), {"__module__": __name__, "__qualname__": name})
    return _SUBCLASSES[cls]


class TestSQLiteFactory(FactoryCases, OnSQLite):
    factory_class = sqlite.Factory
    application_recorder_class = sqlite.SQLiteRunRecorder
    aggregate_recorder_class = SQLiteAggregateRecorder
    tracking_recorder_class = SQLiteTrackingRecorder
    process_recorder_class = SQLiteProcessRecorder


class TestPostgresFactory(FactoryCases, OnPostgres):
    def setUp(self) -> None:
        from eventsourcing.postgres import PostgresProcessRecorder, PostgresTrackingRecorder
        from runjournal.adapters.storage import postgres

        self.factory_class = postgres.Factory
        self.application_recorder_class = postgres.PostgresRunRecorder
        self.aggregate_recorder_class = postgres.PostgresSnapshotRecorder
        self.tracking_recorder_class = PostgresTrackingRecorder
        self.process_recorder_class = PostgresProcessRecorder
        super().setUp()


# -- applications ---------------------------------------------------------------------


class ApplicationEnv(TestCase):
    """eventsourcing applications configured, through os.environ as its own cases do, on our factory."""

    def setUp(self) -> None:
        settings = self.store_settings()  # type: ignore[attr-defined]
        patcher = mock.patch.dict(os.environ, {**settings, "CREATE_TABLE": "y"})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.expected_factory_topic = settings["PERSISTENCE_MODULE"]
        super().setUp()


class TestSQLiteApplication(es_app.ApplicationTestCase, ApplicationEnv, OnSQLite):
    pass


class TestSQLiteExampleApplication(es_app.ExampleApplicationTestCase, ApplicationEnv, OnSQLite):
    pass


class TestPostgresApplication(es_app.ApplicationTestCase, ApplicationEnv, OnPostgres):
    pass


class TestPostgresExampleApplication(es_app.ExampleApplicationTestCase, ApplicationEnv, OnPostgres):
    pass


# pytest collects every TestCase subclass bound in the module: keep only the concrete ones.
del OnSQLite, OnPostgres, OnPostgresPoolOfOne, ApplicationEnv, FactoryCases
del SnapshotRecorderCases, RunRecorderCases, NonInterleavingCases
del ProcessRecorderCases, TrackingRecorderCases
