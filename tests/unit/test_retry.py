"""The one retry loop: what it retries, when it gives up, what it raises at once."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from shared.retry import Backoff, retry


class Outage(Exception):
    pass


class Refused(Exception):
    pass


def flaky(failures: int, value: str = "done") -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise Outage(f"try {len(calls)}")
        return value

    return calls, action


def test_an_outage_is_waited_out_with_growing_delays() -> None:
    calls, action = flaky(3)
    waits: list[float] = []
    result = retry("a call", action, retry_on=(Outage,), wait=waits.append, backoff=Backoff(base=1, cap=8))
    assert result.ok and result.value == "done"
    assert len(calls) == 4
    assert len(waits) == 3
    for attempt, wait in enumerate(waits):
        ceiling = min(8, 2**attempt)
        assert ceiling / 2 <= wait <= ceiling


def test_gives_up_after_the_attempts_it_was_given() -> None:
    calls, action = flaky(10)
    result = retry("a call", action, retry_on=(Outage,), wait=lambda _: None, attempts=3)
    assert not result.ok and result.value is None
    assert len(calls) == 3


def test_a_stop_ends_the_wait_without_another_try() -> None:
    calls, action = flaky(10)
    stopped: list[bool] = []
    result = retry(
        "a call", action, retry_on=(Outage,), stop=lambda: bool(stopped),
        wait=lambda _: stopped.append(True),
    )  # fmt: skip
    assert not result.ok
    assert len(calls) == 1


def test_a_fatal_error_is_raised_at_once_in_its_own_words() -> None:
    calls, action = flaky(10)

    def fatal(exc: BaseException) -> BaseException | None:
        return Refused("login refused") if "try 1" in str(exc) else None

    with pytest.raises(Refused, match="login refused"):
        retry("a call", action, retry_on=(Outage,), wait=lambda _: None, fatal=fatal)
    assert len(calls) == 1


def test_an_error_it_does_not_retry_propagates() -> None:
    def action() -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        retry("a call", action, retry_on=(Outage,), wait=lambda _: None)


def test_a_result_that_is_not_done_yet_is_tried_again() -> None:
    answers = iter([False, False, True])
    result = retry("a call", lambda: next(answers), retry_on=(Outage,), wait=lambda _: None, done=bool)
    assert result.ok and result.value is True


def test_half_jitter_stays_in_the_upper_half_of_each_ceiling() -> None:
    backoff = Backoff(base=0.5, cap=4.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [min(4.0, 0.5 * 2**n) for n in range(8)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert backoff.next_delay() <= 0.5
