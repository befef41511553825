"""When gathered late items are due: half the settle bound after the oldest, or, where the last application
took longer than that (a scan of a long history on FerretDB), as long as it took."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from services.sink import late
from services.sink.late import LateItems
from shared.mongo import BARS, PORTFOLIO
from testkit.bars import T0

IDLE = timedelta(seconds=30)


class Collections:
    """The one database call ``clear`` makes: drop the applied partitions' collections."""

    def __init__(self) -> None:
        self.dropped: list[str] = []

    def drop_collection(self, name: str) -> None:
        self.dropped.append(name)


def gathered(items: LateItems, kind: str, partition: int, seconds: float) -> None:
    items.held.setdefault((kind, partition), []).append({"ts": T0})
    items.oldest.setdefault((kind, partition), T0 + timedelta(seconds=seconds))


def test_applications_are_spaced_by_the_bound_or_by_the_last_ones_own_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = Collections()
    items = LateItems(cast("Any", db), IDLE)
    clock = [1_000.0]
    monkeypatch.setattr(late, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    gathered(items, BARS, 0, 0)
    assert items.due(BARS, T0 + IDLE - timedelta(seconds=1), apply_now=False) == []
    assert items.due(BARS, T0 + IDLE, apply_now=False) == [0]
    clock[0] += 100.0  # the application (find, delete, insert) took 100 s
    items.clear(BARS, [0])
    assert db.dropped == ["late_bars_0"]

    gathered(items, BARS, 0, 200)
    assert items.due(BARS, T0 + timedelta(seconds=200) + IDLE, apply_now=False) == []
    assert items.due(BARS, T0 + timedelta(seconds=300), apply_now=False) == [0]
    # Caught up or stopping, they go at once; another kind keeps its own pace.
    assert items.due(BARS, T0 + timedelta(seconds=201), apply_now=True) == [0]
    gathered(items, PORTFOLIO, 1, 200)
    assert items.due(PORTFOLIO, T0 + timedelta(seconds=200) + IDLE, apply_now=False) == [1]

    clock[0] += 5.0  # a quick one: back to the bound
    items.clear(BARS, [0])
    gathered(items, BARS, 0, 400)
    assert items.due(BARS, T0 + timedelta(seconds=400) + IDLE, apply_now=False) == [0]
