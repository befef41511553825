"""``portfolio sink``: bars and predictions from Kafka into MongoDB."""

from __future__ import annotations

from collections.abc import Sequence

from services.sink.app import run
from shared.cli import run_service


def main(argv: Sequence[str] | None = None) -> int:
    return run_service(
        "sink", "write bars and predictions from Kafka into MongoDB (bars, portfolio, predictions)", argv, run
    )
