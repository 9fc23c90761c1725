"""Run and thread ids are UUIDv7: time-ordered by the journal's clock, unique within a millisecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from runjournal import Journal
from runjournal.adapters.clock import ManualClock
from runjournal.app.ids import time_ordered_id

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)),
       st.binary(min_size=10, max_size=10))
def test_an_id_is_a_version_7_uuid_carrying_its_millisecond(now: datetime, entropy: bytes) -> None:
    made = time_ordered_id(now, lambda n: entropy[:n])
    assert made.version == 7 and made.variant == "specified in RFC 4122"
    assert made.int >> 80 == int(now.timestamp() * 1000)
    assert UUID(str(made)) == made


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=2, max_size=30))
def test_ids_sort_by_the_time_they_were_made(offsets_ms: list[int]) -> None:
    made = [(ms, time_ordered_id(T0 + timedelta(milliseconds=ms))) for ms in offsets_ms]
    by_id = [ms for ms, _ in sorted(made, key=lambda pair: str(pair[1]))]
    assert by_id == sorted(offsets_ms)


def test_ids_made_in_one_millisecond_differ() -> None:
    assert len({time_ordered_id(T0) for _ in range(10_000)}) == 10_000


def test_submitted_runs_and_their_default_threads_get_time_ordered_ids() -> None:
    clock = ManualClock(T0)
    with Journal.open("memory://", clock=clock) as j:
        first = j.submit(agent_id="a", input={})
        clock.advance(1.0)
        second, third = j.submit_many([{"agent_id": "a", "input": {}}, {"agent_id": "a", "input": {}}])
        keyed = j.submit(agent_id="a", input={}, idempotency_key="order-7")
    for snapshot in (first, second, third):
        assert UUID(snapshot.run_id).version == 7 and UUID(snapshot.thread_id).version == 7
    assert first.run_id < second.run_id and first.run_id < third.run_id
    assert UUID(first.run_id).int >> 80 == int(T0.timestamp() * 1000)
    assert UUID(keyed.run_id).version == 5  # an idempotency key names its run, as before
