"""The producer's own work on one fetch, without I/O: validate -> detect new and revised bars -> encode.

Kept apart from the loop so the benchmark and the tests run exactly what the service runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from pydantic import ValidationError

from services.producer.revisions import RevisionTracker
from services.producer.validation import InvalidRow, split_valid
from shared.schemas import BarV1, encode


@dataclass
class Prepared:
    """Messages ready to produce (key = ticker, value = a v1 bar) and what the cycle log line counts."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    new: int = 0
    revisions: int = 0
    final: int = 0
    invalid: list[InvalidRow] = field(default_factory=list)


def prepare(bars: pd.DataFrame, closed_before: datetime, tracker: RevisionTracker, source: str) -> Prepared:
    valid, invalid = split_valid(bars)
    prepared = Prepared(invalid=invalid)
    for pub in tracker.changes(valid, closed_before):
        try:
            bar = BarV1(
                ticker=pub.ticker,
                ts=pub.ts,
                open=pub.open,
                high=pub.high,
                low=pub.low,
                close=pub.close,
                volume=pub.volume,
                source=source,
                rev=pub.rev,
                final=pub.final,
            )
        except ValidationError as error:
            # The vectorised checks cover the price rules; this catches what only the schema knows.
            reason = "schema: " + "; ".join(e["msg"] for e in error.errors())
            prepared.invalid.append(InvalidRow(pub.ticker, pub.ts, reason))
            continue
        prepared.messages.append((pub.ticker, encode(bar)))
        if pub.new:
            prepared.new += 1
        else:
            prepared.revisions += 1
        prepared.final += pub.final
    return prepared
