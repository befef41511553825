"""Which tickers and partitions a trainer member owns, learnt from the consumer's rebalances. No I/O."""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, Message, TopicPartition

from services.trainer.forecaster.core import Forecaster

logger = logging.getLogger(__name__)


class Assignment:
    """Which tickers this member owns, learnt from the partitions its bars come from."""

    def __init__(self, forecaster: Forecaster) -> None:
        self.forecaster = forecaster
        self.partition_of: dict[str, int] = {}
        self.partitions: set[int] = set()

    def on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.partitions.update(p.partition for p in partitions)  # cooperative: these are added
        logger.info("assigned partitions %s", sorted(p.partition for p in partitions))

    def every_partition(self, messages: list[Message]) -> bool:
        """Whether ``messages`` hold one from every partition this member owns: a live minute is in."""
        return self.partitions <= {m.partition() for m in messages}

    def on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = {p.partition for p in partitions}
        self.partitions -= lost
        tickers = [t for t, p in self.partition_of.items() if p in lost]
        for t in tickers:
            del self.partition_of[t]
        self.forecaster.forget(tickers)
        logger.info("revoked partitions %s: dropped %d tickers", sorted(lost), len(tickers))
