"""MongoDB access shared by the services: the client, the collection names and their indexes.

The collections (database ``PORTFOLIO_MONGODB_DB``):

* ``bars``: one document per settled (ticker, minute), ``_id`` ``"AAPL|2026-11-25T14:31Z"``; unique
  index on ``(ticker, ts)``.
* ``portfolio``: one document per minute (``_id`` the minute), ``close.<TICKER>`` for each ticker with a
  settled bar; unique ``ts``.
* ``predictions``: one document per settled (ticker, predicted minute, horizon), ``_id``
  ``"AAPL|2026-11-25T14:32Z|5m"`` (``"AAPL|2026-11-25T14:32Z"`` when stored before horizons, all 1-minute);
  unique index on ``(ticker, ts, horizon_min)``.
* ``bars_open``, ``predictions_open``, ``portfolio_open``: the items still in progress, one plain document
  each, keyed like history (``shared.layout``); ``latest``: the sink's bookkeeping per Kafka partition;
  ``replacing``: the sink's redo log while it replaces history documents (empty between writes);
  ``late_<kind>_<partition>``: late items gathered until applied (``services.sink.late``; dropped then).
* ``metrics``: the trainer's walk-forward scores against the naive forecast.

Only what FerretDB and MongoDB both support is used (no partial/TTL indexes, no transactions).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Any

from bson.errors import InvalidBSON, InvalidDocument, InvalidStringData
from pymongo import ASCENDING, DESCENDING, IndexModel, MongoClient
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    OperationFailure,
    PyMongoError,
    WriteError,
)

from shared.retry import retry
from shared.settings import Settings, SettingsError

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
        IndexModel(
            [("ticker", ASCENDING), ("ts", ASCENDING), ("horizon_min", ASCENDING)],
            unique=True,
            name="ticker_ts_horizon",
        ),
    ],
    LATEST: [],
    # Small collections, read whole by the sink and the readers: no index to keep up.
    f"{BARS}_open": [],
    f"{PREDICTIONS}_open": [],
    f"{PORTFOLIO}_open": [],
    METRICS: [IndexModel([("ticker", ASCENDING), ("model_version", ASCENDING)], name="ticker_version")],
}


def make_client(settings: Settings, **overrides: Any) -> MongoClient[dict[str, Any]]:
    """A client for ``PORTFOLIO_MONGODB_URI``; credentials from the settings when given separately.

    Every call is bounded: without a socket timeout a call to a stuck server never returns (a sink was
    seen hung for 20 minutes, deaf to SIGTERM). ``PORTFOLIO_MONGODB_TIMEOUT_S`` bounds finding and
    connecting to a server, ``PORTFOLIO_MONGODB_SOCKET_TIMEOUT_S`` any one call.
    """
    timeout_ms = int(settings.mongo.timeout_s * 1000)
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": timeout_ms,
        "connectTimeoutMS": timeout_ms,
        "socketTimeoutMS": int(settings.mongo.socket_timeout_s * 1000),
        "tz_aware": True,
        "appname": "portfolio",
    }
    if settings.mongo.username:
        options["username"] = settings.mongo.username
    if settings.mongo.password:
        options["password"] = settings.mongo.password.get_secret_value()
    return MongoClient(settings.mongo.uri, **(options | overrides))


# Server error codes (src/mongo/base/error_codes.yml) that mean "try again later", not "this data is bad".
_TRANSIENT_CODES = frozenset(
    {6, 7, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 50, 24, 251, 46, 63, 150}
)
# AuthenticationFailed, Unauthorized, and Atlas's "bad auth": a setting is wrong, retrying cannot help.
_AUTH_CODES = frozenset({18, 13, 8000})


class ErrorKind(enum.Enum):
    OUTAGE = "outage"  # wait and retry the same write
    DOCUMENT = "document"  # a message in the batch cannot be stored: find it and dead-letter it
    AUTH = "auth"  # credentials or permissions: stop and say so
    OTHER = "other"  # a bug: let it surface


def classify_error(error: BaseException) -> ErrorKind:  # noqa: PLR0911 (one return per kind of error)
    """What a failed database write means for the caller (see :class:`ErrorKind`)."""
    if isinstance(
        error, OverflowError | InvalidDocument | InvalidStringData | InvalidBSON | DocumentTooLarge
    ):
        return ErrorKind.DOCUMENT  # raised while encoding, before anything is sent
    if isinstance(error, ConnectionFailure):
        return ErrorKind.OUTAGE  # includes timeouts and server selection
    if isinstance(error, BulkWriteError):
        details = error.details or {}
        if details.get("writeConcernErrors"):
            return ErrorKind.OUTAGE
        codes = {e.get("code") for e in details.get("writeErrors", [])}
        if codes and not codes & _TRANSIENT_CODES:
            return ErrorKind.DOCUMENT
        return ErrorKind.OUTAGE
    if isinstance(error, WriteError):
        return ErrorKind.OUTAGE if error.code in _TRANSIENT_CODES else ErrorKind.DOCUMENT
    if isinstance(error, OperationFailure):
        if error.code in _AUTH_CODES:
            return ErrorKind.AUTH
        # Anything else the server answers for a whole command (not one document) is retried: splitting
        # the batch cannot fix it, and dead-lettering good messages for it would lose them.
        return ErrorKind.OUTAGE
    if isinstance(error, PyMongoError):
        return ErrorKind.OUTAGE  # the sink's own write-conflict signal among them
    return ErrorKind.OTHER


def authentication_error(error: BaseException) -> SettingsError:
    """The exit message for a refused login: names authentication and the settings to check."""
    return SettingsError(
        f"MongoDB authentication failed ({str(error)[:200]}): check PORTFOLIO_MONGODB_USERNAME, "
        "PORTFOLIO_MONGODB_PASSWORD and the credentials in PORTFOLIO_MONGODB_URI"
    )


def database(client: MongoClient[dict[str, Any]], settings: Settings) -> Database[dict[str, Any]]:
    return client[settings.mongo.db]


# Indexes of earlier versions that would refuse what is stored now: dropped by ensure_indexes. Predictions
# were unique per (ticker, ts) before horizons came (issue 18); now per (ticker, ts, horizon_min).
RETIRED_INDEXES: dict[str, list[str]] = {PREDICTIONS: ["ticker_ts"]}


def ensure_indexes(db: Database[dict[str, Any]], collections: tuple[str, ...] = tuple(INDEXES)) -> None:
    """Create the collections' indexes (idempotent: an existing identical index is left as it is) and drop
    the retired ones."""
    for name in collections:
        retired = set(RETIRED_INDEXES.get(name, [])) & set(db[name].index_information())
        for index_name in sorted(retired):
            db[name].drop_index(index_name)
        # One index per command: FerretDB 1.24 drops the connection (a server-side panic) when a single
        # createIndexes names several indexes that all exist already.
        for index in INDEXES[name]:
            db[name].create_indexes([index])


def wait_for_mongodb(
    client: MongoClient[dict[str, Any]], stop: Callable[[], bool], timeout: float | None = None
) -> bool:
    """Block until the server answers ``ping`` (True) or ``stop()``/``timeout`` (False).

    A refused login raises :class:`SettingsError` at once: retrying with the same credentials is pointless.
    """
    # With credentials the client logs in before the first command: a bad password fails here.
    return retry(
        "reaching MongoDB",
        lambda: client.admin.command("ping"),
        retry_on=(PyMongoError,),
        stop=stop,
        timeout=timeout,
        fatal=_refused_login,
    ).ok


def _refused_login(exc: BaseException) -> BaseException | None:
    if isinstance(exc, PyMongoError) and classify_error(exc) is ErrorKind.AUTH:
        return authentication_error(exc)
    return None
