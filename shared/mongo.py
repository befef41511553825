"""MongoDB access shared by the services: the client, the collection names and their indexes.

The collections (database ``PORTFOLIO_MONGODB_DB``):

* ``bars``: one document per settled (ticker, minute), ``_id`` ``"AAPL|2026-11-25T14:31Z"``; unique
  index on ``(ticker, ts)``.
* ``portfolio``: one document per minute (``_id`` the minute), ``close.<TICKER>`` for each ticker with a
  settled bar; unique ``ts``.
* ``predictions``: one document per settled (ticker, predicted minute); unique index on ``(ticker, ts)``.
* ``latest``: the items still in progress, one small document per Kafka partition (``shared.layout``).
* ``metrics``: the trainer's walk-forward scores against the naive forecast.

Only what FerretDB and MongoDB both support is used (no partial/TTL indexes, no transactions).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError

from shared.settings import Settings

logger = logging.getLogger(__name__)

BARS = "bars"
PORTFOLIO = "portfolio"
PREDICTIONS = "predictions"
LATEST = "latest"
METRICS = "metrics"

INDEXES: dict[str, list[IndexModel]] = {
    BARS: [
        IndexModel([("ticker", ASCENDING), ("ts", ASCENDING)], unique=True, name="ticker_ts"),
        IndexModel([("ts", DESCENDING)], name="ts"),
    ],
    PORTFOLIO: [IndexModel([("ts", ASCENDING)], unique=True, name="ts")],
    PREDICTIONS: [
        IndexModel([("ticker", ASCENDING), ("ts", ASCENDING)], unique=True, name="ticker_ts"),
    ],
    LATEST: [],
    METRICS: [IndexModel([("ticker", ASCENDING), ("model_version", ASCENDING)], name="ticker_version")],
}


def make_client(settings: Settings, **overrides: Any) -> MongoClient[dict[str, Any]]:
    """A client for ``PORTFOLIO_MONGODB_URI``; credentials from the settings when given separately."""
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": 5_000,
        "connectTimeoutMS": 5_000,
        "tz_aware": True,
        "appname": "portfolio",
    }
    if settings.mongodb_username:
        options["username"] = settings.mongodb_username
    if settings.mongodb_password:
        options["password"] = settings.mongodb_password.get_secret_value()
    return MongoClient(settings.mongodb_uri, **(options | overrides))


def database(client: MongoClient[dict[str, Any]], settings: Settings) -> Database[dict[str, Any]]:
    return client[settings.mongodb_db]


def ensure_indexes(db: Database[dict[str, Any]], collections: tuple[str, ...] = tuple(INDEXES)) -> None:
    """Create the collections' indexes (idempotent: an existing identical index is left as it is)."""
    for name in collections:
        # One index per command: FerretDB 1.24 drops the connection (a server-side panic) when a single
        # createIndexes names several indexes that all exist already.
        for index in INDEXES[name]:
            db[name].create_indexes([index])


def wait_for_mongodb(
    client: MongoClient[dict[str, Any]], stop: Callable[[], bool], timeout: float | None = None
) -> bool:
    """Block until the server answers ``ping`` (True) or ``stop()``/``timeout`` (False)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.5
    while not stop():
        try:
            client.admin.command("ping")
            return True
        except PyMongoError as exc:
            logger.warning("MongoDB not reachable (%s); retrying", type(exc).__name__)
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 10.0)
    return False
