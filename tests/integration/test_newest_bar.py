"""The newest bar's minute, read from the sink's small collections (``latest``'s recent entries and
``bars_open``) rather than by a sorted query of ``bars``, which FerretDB answers with a scan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo import monitoring

from shared.layout import dump_json, latest_id, newest_bar_time, open_collection
from shared.mongo import BARS, LATEST, database, make_client
from shared.settings import Settings

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


class Finds(monitoring.CommandListener):
    def __init__(self) -> None:
        self.collections: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.collections.append(str(event.command["find"]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _recent(ticker: str, minute: int) -> dict[str, object]:
    ts = T0 + timedelta(minutes=minute)
    return {"ticker": ticker, "ts": ts, "horizon": 0, "rank": 0, "fingerprint": 1}


def test_the_newest_bar_comes_from_the_sinks_bookkeeping_without_reading_bars(
    integration_settings: Settings,
) -> None:
    finds = Finds()
    with make_client(integration_settings, event_listeners=[finds]) as client:
        db = database(client, integration_settings)
        # A database without the sink's bookkeeping (another writer filled it): one sorted query of bars.
        db[BARS].insert_many([{"ticker": t, "ts": T0 + timedelta(minutes=m)} for t in "AB" for m in (1, 2)])
        db[BARS].insert_one({"ticker": "C", "ts": T0 + timedelta(minutes=9)})
        assert newest_bar_time(db) == T0 + timedelta(minutes=9)
        assert newest_bar_time(db, ["A", "B"]) == T0 + timedelta(minutes=2)
        assert BARS in finds.collections
        # The sink's latest documents know each ticker's last settled bars; bars_open the minute in progress.
        recent = [_recent("A", 5), _recent("A", 6), _recent("B", 7)]
        db[LATEST].insert_one(
            {"_id": latest_id(BARS, 0), "kind": BARS, "partition": 0, "recent": dump_json(recent)}
        )
        db[open_collection(BARS)].insert_one(
            {"_id": "B|x", "ticker": "B", "ts": T0 + timedelta(minutes=8), "partition": 0}
        )
        finds.collections.clear()
        assert newest_bar_time(db, ["A"]) == T0 + timedelta(minutes=6)
        assert newest_bar_time(db, ["A", "B"]) == T0 + timedelta(minutes=8)
        assert newest_bar_time(db, ["A", "B"], in_progress=False) == T0 + timedelta(minutes=7)
        assert BARS not in finds.collections  # never the history collection
