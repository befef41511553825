"""A bar often settles because of a later bar of its ticker, so a replay never meets it again: its close
must be on the closes topic before ``latest`` forgets the bar, or a crash in between loses it for good
(its portfolio row would lack that ticker). Against the real database, through the repository."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from services.sink.batch import DecodedBatch
from services.sink.portfolio import decode_close
from services.sink.repository import SinkRepository
from shared.mongo import database, ensure_indexes, make_client
from shared.schemas import BarV1
from shared.settings import Settings
from testkit.bars import bar

pytestmark = pytest.mark.integration


class Killed(Exception):
    """The sink dies while the closes are on their way to the broker."""


def one_partition(bars: Sequence[BarV1]) -> DecodedBatch:
    return DecodedBatch(bars=list(bars), bar_partitions={b.ticker: 0 for b in bars})


def test_a_crash_while_closes_are_delivered_replays_them_even_for_bars_settled_by_a_later_bar(
    integration_settings: Settings,
) -> None:
    delivered: list[tuple[str, bytes]] = []

    def killed(closes: Sequence[tuple[str, bytes]]) -> None:
        raise Killed

    with make_client(integration_settings) as client:
        db = database(client, integration_settings)
        ensure_indexes(db)
        # Minutes 0-2 of X: written and committed, all still in progress.
        SinkRepository(db, delivered.extend).write(one_partition([bar("X", m) for m in range(3)]))
        assert delivered == []
        # Minute 3 settles minute 0; the sink dies delivering its close.
        with pytest.raises(Killed):
            SinkRepository(db, killed).write(one_partition([bar("X", 3)]))
        # The restarted sink replays only the uncommitted batch: minute 3, never minute 0 itself.
        SinkRepository(db, delivered.extend).write(one_partition([bar("X", 3)]))
    closes = [decode_close(value) for _key, value in delivered]
    assert [(c.ticker, c.ts, c.close) for c in closes] == [("X", bar("X", 0).ts, bar("X", 0).close)]
