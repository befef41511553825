"""``portfolio producer``: publish new and revised 1-minute bars to Kafka."""

from __future__ import annotations

from collections.abc import Sequence

from services.producer.app import run
from shared.cli import run_service


def main(argv: Sequence[str] | None = None) -> int:
    return run_service("producer", "publish new and revised 1-minute bars to Kafka", argv, run)
