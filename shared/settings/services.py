"""Each service's own settings (producer, sink, trainer), and what several of them read (``common``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from shared.settings.base import (
    DEFAULT_TICKERS,
    TICKER_PATTERN,
    Group,
    comma_list,
    comma_pairs,
    empty_path_is_none,
    http_port_field,
    seconds_field,
)


class CommonSettings(Group):
    """What several services read: the portfolio, the pipeline's cadence, logging and operations.

    ``tickers`` are published by the producer and shown by the report and the live view; ``download_period_s``
    paces the producer's polls, the trainer's cycles and the live view's refresh; every service logs, serves
    /healthz on ``http_host`` and honours ``stop_timeout_s``. Each service's own port is in its own group.
    """

    group: ClassVar[str] = "common"

    tickers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_TICKERS), validation_alias="PORTFOLIO_TICKERS"
    )
    download_period_s: float = seconds_field(10.0, validation_alias="PORTFOLIO_DOWNLOAD_PERIOD_S")
    log_file: Path | None = Field(Path("data.log"), validation_alias="PORTFOLIO_LOG_FILE")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias="PORTFOLIO_LOG_LEVEL"
    )
    # After SIGTERM a service exits within this, even with a database or broker call stuck: what it
    # could not finish stays uncommitted and is read again by the next run.
    stop_timeout_s: float = seconds_field(30.0, high=600.0, validation_alias="PORTFOLIO_STOP_TIMEOUT_S")
    # Where /healthz and /metrics listen (each service on the port its group names).
    http_host: str = Field("127.0.0.1", validation_alias="PORTFOLIO_HTTP_HOST")
    # The trading session the trainer's ranges and the scorer's buckets follow (shared.session): "XNYS" (New
    # York's regular session) or "24h" (one per UTC day). Unset: the one the producer's source trades in
    # (Settings.session()).
    session: Literal["XNYS", "24h"] | None = Field(None, validation_alias="PORTFOLIO_SESSION")

    _empty_log_file_is_none = field_validator("log_file", mode="before")(empty_path_is_none)

    @field_validator("session", mode="before")
    @classmethod
    def _empty_session_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("tickers", mode="before")
    @classmethod
    def _split_tickers(cls, value: Any) -> Any:
        return comma_list(value)

    @field_validator("tickers")
    @classmethod
    def _check_tickers(cls, value: list[str]) -> list[str]:
        tickers = [t.upper() for t in value]
        if not tickers:
            raise ValueError("at least one ticker is needed")
        bad = [t for t in tickers if not TICKER_PATTERN.match(t)]
        if bad:
            raise ValueError(f"not a ticker symbol: {', '.join(bad)} (letters, digits, ^, = and - only)")
        return list(dict.fromkeys(tickers))


class ProducerSettings(Group):
    """Where bars come from and how this replica publishes them."""

    group: ClassVar[str] = "producer"

    source: Literal["yfinance", "replay", "synthetic"] = Field(
        "synthetic", validation_alias="PORTFOLIO_SOURCE"
    )
    # "i/n": this replica publishes the i-th of n disjoint slices of the tickers (1-based).
    shard: str = Field("1/1", validation_alias="PORTFOLIO_SHARD")
    # One trading day of 1-minute bars.
    backfill_minutes: int = Field(390, ge=0, validation_alias="PORTFOLIO_BACKFILL_MINUTES")
    replay_file: Path | None = Field(None, validation_alias="PORTFOLIO_REPLAY_FILE")
    # 1.0 = real time, N = N times faster, 0 = as fast as possible.
    replay_speed: float = Field(
        1.0, ge=0, le=1e6, allow_inf_nan=False, validation_alias="PORTFOLIO_REPLAY_SPEED"
    )
    synthetic_seed: int = Field(7, validation_alias="PORTFOLIO_SYNTHETIC_SEED")
    # Skip polling while the exchange is closed (yfinance only; the offline sources have no hours).
    market_hours_only: bool = Field(True, validation_alias="PORTFOLIO_MARKET_HOURS_ONLY")
    exchange_calendar: str = Field("XNYS", validation_alias="PORTFOLIO_EXCHANGE_CALENDAR")
    fetch_backoff_max_s: float = seconds_field(300.0, validation_alias="PORTFOLIO_FETCH_BACKOFF_MAX_S")
    http_port: int = http_port_field(9101, "PORTFOLIO_PRODUCER_HTTP_PORT")

    _empty_replay_file_is_none = field_validator("replay_file", mode="before")(empty_path_is_none)

    @field_validator("shard")
    @classmethod
    def _check_shard(cls, value: str) -> str:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise ValueError("must be i/n with 1 <= i <= n, e.g. 1/3")
        return f"{int(match[1])}/{int(match[2])}"

    @field_validator("replay_file")
    @classmethod
    def _check_replay_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> ProducerSettings:
        if self.source == "replay" and self.replay_file is None:
            raise ValueError("replay_file: PORTFOLIO_REPLAY_FILE is required when PORTFOLIO_SOURCE=replay")
        return self

    def shard_index_count(self) -> tuple[int, int]:
        index, count = self.shard.split("/")
        return int(index), int(count)


class SinkSettings(Group):
    """How the sink batches its writes and when it calls itself stalled."""

    group: ClassVar[str] = "sink"

    group_id: str = Field("portfolio-sink", min_length=1, validation_alias="PORTFOLIO_SINK_GROUP_ID")
    batch_max: int = Field(5_000, ge=1, validation_alias="PORTFOLIO_SINK_BATCH_MAX")
    batch_ms: int = Field(500, ge=1, le=600_000, validation_alias="PORTFOLIO_SINK_BATCH_MS")
    # A batch write in flight longer than this marks the sink not ready on /healthz (it keeps trying).
    write_stall_s: float = seconds_field(60.0, high=3_600.0, validation_alias="PORTFOLIO_SINK_WRITE_STALL_S")
    # Whatever a message changes is in its history collection this long (wall time) after the last message
    # touching it, newer data or not; at least 2 s, since the sink checks every quarter of it.
    settle_s: float = seconds_field(60.0, low=2.0, high=3_600.0, validation_alias="PORTFOLIO_SINK_SETTLE_S")
    http_port: int = http_port_field(9102, "PORTFOLIO_SINK_HTTP_PORT")


# Each PORTFOLIO_SESSION's length in minutes: shared.session's clocks (settings import nothing numeric; a
# unit test holds the two equal).
SESSION_LENGTH_MIN = {"XNYS": 390, "24h": 1440}


class TrainerSettings(Group):
    """The forecaster, its network and training, and where its checkpoints go.

    The model's fields carry the names of :class:`services.trainer.forecaster.records.Config`, which takes
    them as they are (``Config.from_settings``). Lengths and periods without a unit suffix count 1-minute
    bars (minutes of data time, not of the clock); wall-clock durations end in ``_s``.
    """

    group: ClassVar[str] = "trainer"

    group_id: str = Field("portfolio-trainer", min_length=1, validation_alias="PORTFOLIO_TRAINER_GROUP_ID")
    mode: Literal["per_stock", "portfolio"] = Field("per_stock", validation_alias="PORTFOLIO_TRAINER_MODE")
    target: Literal["return", "price"] = Field("return", validation_alias="PORTFOLIO_TRAINER_TARGET")
    layers: int = Field(4, ge=1, validation_alias="PORTFOLIO_LSTM_LAYERS")
    units: int = Field(50, ge=1, validation_alias="PORTFOLIO_LSTM_UNITS")
    window: int = Field(60, ge=2, validation_alias="PORTFOLIO_WINDOW_MIN")
    max_epochs: int = Field(100, ge=1, validation_alias="PORTFOLIO_MAX_EPOCHS")
    patience: int = Field(5, ge=1, validation_alias="PORTFOLIO_EARLY_STOPPING_PATIENCE")
    batch_size: int = Field(256, ge=1, validation_alias="PORTFOLIO_BATCH_SIZE")
    learning_rate: float = Field(
        1e-3, gt=0, le=10, allow_inf_nan=False, validation_alias="PORTFOLIO_LEARNING_RATE"
    )
    # Warm-update optimizer steps (0: the net stays as its cold start left it). Off by default: on the shared
    # real recording, learning on the stream made the forecasts no better and skewed their direction (README).
    update_steps: int = Field(0, ge=0, validation_alias="PORTFOLIO_UPDATE_STEPS")
    # Data minutes between warm updates (each trains on the windows closed since the last one).
    update_every: int = Field(10, ge=1, le=1_440, validation_alias="PORTFOLIO_UPDATE_EVERY_MIN")
    # Data minutes between fresh cold starts on the history held (0: never after the first).
    retrain_every: int = Field(0, ge=0, le=525_600, validation_alias="PORTFOLIO_RETRAIN_EVERY_MIN")
    # Gaps up to this many minutes are forward-filled; longer ones cut the series.
    ffill_max: int = Field(5, ge=0, validation_alias="PORTFOLIO_FFILL_MAX_MINUTES")
    history: int = Field(3_000, ge=10, validation_alias="PORTFOLIO_HISTORY_MINUTES")
    # The first cold start waits until every ticker with bars has enough history, or at most this many
    # minutes of data time after the first one had.
    cold_start_wait: int = Field(30, ge=0, validation_alias="PORTFOLIO_TRAINER_COLD_START_WAIT_MIN")
    checkpoint_store: Literal["gridfs", "volume"] = Field(
        "gridfs", validation_alias="PORTFOLIO_CHECKPOINT_STORE"
    )
    checkpoint_dir: Path = Field(Path("checkpoints"), validation_alias="PORTFOLIO_CHECKPOINT_DIR")
    checkpoint_interval_s: float = seconds_field(300.0, validation_alias="PORTFOLIO_CHECKPOINT_INTERVAL_S")
    # Intra-op threads per torch call (0: one per core). 1 by default: the trainer calls torch from two
    # threads (forecasting, training) and its batches are small, so more threads mostly wait on each other;
    # on 2 shared cores the backtest took 30 s on one thread and 380 s on two (bench/bench_backtest.py).
    # numpy's BLAS gets the same limit (its least-squares fits at a cold start took every core, issue 18).
    torch_threads: int = Field(1, ge=0, validation_alias="PORTFOLIO_TORCH_THREADS")
    http_port: int = http_port_field(9103, "PORTFOLIO_TRAINER_HTTP_PORT")
    # Minutes ahead forecast for every final bar (one prediction each; none past the session's close).
    horizons: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [1, 5, 15, 30], validation_alias="PORTFOLIO_HORIZONS_MIN"
    )
    # The portfolio's weights ("AAPL=0.3,MSFT=0.7"); empty: equal weights over the tickers.
    weights: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict, validation_alias="PORTFOLIO_WEIGHTS"
    )

    @field_validator("horizons", mode="before")
    @classmethod
    def _split_horizons(cls, value: Any) -> Any:
        return comma_list(value)

    @field_validator("horizons")
    @classmethod
    def _check_horizons(cls, value: list[int]) -> list[int]:
        # The session's own length is checked with the session known (Settings.problems).
        longest = max(SESSION_LENGTH_MIN.values())
        if not value or any(h < 1 or h >= longest for h in value):
            raise ValueError(f"horizons are 1 to {longest - 1} minutes, at least one")
        return sorted(set(value))

    @field_validator("weights", mode="before")
    @classmethod
    def _parse_weights(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return {t.upper(): w for t, w in comma_pairs(value, "TICKER=WEIGHT", "AAPL=0.3,MSFT=0.7").items()}

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, value: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in value.values()) or (value and sum(value.values()) <= 0):
            raise ValueError("weights are not negative and some weight is positive")
        return value


class DashboardSettings(Group):
    """Where the dashboard (the web page and its read API) listens, and its consumer group."""

    group: ClassVar[str] = "dashboard"

    # Loopback by default: the page and API have no login, so reaching them from elsewhere is a choice.
    host: str = Field("127.0.0.1", min_length=1, validation_alias="PORTFOLIO_DASHBOARD_HOST")
    # 0: any free port, logged at start (tests, several pipelines on one machine).
    port: int = Field(8050, ge=0, le=65535, validation_alias="PORTFOLIO_DASHBOARD_PORT")
    group_id: str = Field(
        "portfolio-dashboard", min_length=1, validation_alias="PORTFOLIO_DASHBOARD_GROUP_ID"
    )
    # Where the health header finds each service's /healthz: "sink=sink,trainer=trainer" in compose, where
    # every service is its own host; a service not named is asked on 127.0.0.1 (make run).
    service_hosts: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias="PORTFOLIO_DASHBOARD_SERVICE_HOSTS"
    )

    @field_validator("service_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return comma_pairs(value, "service=host", "sink=sink,trainer=trainer")

    @field_validator("service_hosts")
    @classmethod
    def _known_services(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - {"producer", "sink", "trainer"})
        if unknown:
            raise ValueError(f"no such service: {', '.join(unknown)} (producer, sink, trainer)")
        return value
