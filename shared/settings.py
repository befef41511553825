"""Every setting of every service, in one place.

Read from the environment (prefix ``PORTFOLIO_``) and from a ``.env`` file in the working directory.
Build a :class:`Settings` once at start with :func:`load_settings` and pass it down; there is no module-level
instance, so tests build their own.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_TICKERS = ("AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "JPM", "XOM")

# The values .env.example ships with: refused, so a copied example never reaches production.
PLACEHOLDER_SECRETS = frozenset({"change-me", "changeme"})

# Tickers become MongoDB field names (``close.<TICKER>``) and Kafka keys: no '.', no '$', no spaces.
TICKER_PATTERN = re.compile(r"^[A-Z0-9^=\-]{1,15}$")


DAY_S = 86_400.0


def seconds_field(default: float, *, low: float = 0.0, high: float = DAY_S, **kwargs: Any) -> Any:
    """A duration setting: finite (``inf``/``nan`` refused) and within ``(low, high]`` seconds.

    An infinite period or timeout silently turns a loop off or a wait into a hang, so every duration
    has a range that a mistyped unit (milliseconds for seconds) also falls outside of.
    """
    return Field(default, gt=low, le=high, allow_inf_nan=False, **kwargs)


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class SettingsError(ValueError):
    """A setting has a bad value. The message names the setting (its field and its variable)."""


class Settings(BaseSettings):
    """The settings of the whole pipeline. Each field is read from ``PORTFOLIO_<FIELD NAME IN CAPITALS>``."""

    model_config = SettingsConfigDict(
        env_prefix="PORTFOLIO_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- Kafka -------------------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", min_length=1)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: Path | None = None
    bars_topic: str = Field("bars.1m", min_length=1)
    predictions_topic: str = Field("predictions.1m", min_length=1)
    dlq_topic: str = Field("bars.1m.dlq", min_length=1)
    # Kept short enough that a stalled consumer is noticed, long enough for a slow database write.
    kafka_max_poll_interval_ms: int = Field(300_000, ge=1_000, le=86_400_000)
    kafka_session_timeout_ms: int = Field(45_000, ge=1_000, le=3_600_000)

    # --- MongoDB -----------------------------------------------------------------------------------
    # May carry a password: kept out of repr(); redacted() masks it for logs.
    mongodb_uri: str = Field("mongodb://127.0.0.1:27017", repr=False)
    mongodb_db: str = Field("portfolio", min_length=1, max_length=63)
    mongodb_username: str | None = None
    mongodb_password: SecretStr | None = None
    # Server selection and connection: how long a call waits for a server that is away.
    mongodb_timeout_s: float = seconds_field(10.0, high=600.0)
    # The longest one database call may take before it is abandoned and retried: above the slowest
    # legitimate batch write, far below "forever" (without it a stuck call never returns).
    mongodb_socket_timeout_s: float = seconds_field(120.0, high=3_600.0)

    # --- The portfolio and the producer ------------------------------------------------------------
    tickers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_TICKERS))
    source: Literal["yfinance", "replay", "synthetic"] = "synthetic"
    download_period_s: float = seconds_field(10.0)
    # "i/n": this replica publishes the i-th of n disjoint slices of the tickers (1-based).
    shard: str = "1/1"
    # One trading day of 1-minute bars.
    backfill_minutes: int = Field(390, ge=0)
    replay_file: Path | None = None
    # 1.0 = real time, N = N times faster, 0 = as fast as possible.
    replay_speed: float = Field(1.0, ge=0, le=1e6, allow_inf_nan=False)
    synthetic_seed: int = 7
    # Skip polling while the exchange is closed (yfinance only; the offline sources have no hours).
    market_hours_only: bool = True
    exchange_calendar: str = "XNYS"
    fetch_backoff_max_s: float = seconds_field(300.0)

    # --- Sink --------------------------------------------------------------------------------------
    sink_group_id: str = Field("portfolio-sink", min_length=1)
    sink_batch_max: int = Field(5_000, ge=1)
    sink_batch_ms: int = Field(500, ge=1, le=600_000)
    # A batch write in flight longer than this marks the sink not ready on /healthz (it keeps trying).
    sink_write_stall_s: float = seconds_field(60.0, high=3_600.0)
    # A bar is ~200 bytes; anything far larger is garbage or an attack, and goes to the DLQ.
    max_message_bytes: int = Field(16_384, ge=256)

    # --- Trainer -----------------------------------------------------------------------------------
    trainer_group_id: str = Field("portfolio-trainer", min_length=1)
    trainer_mode: Literal["per_stock", "portfolio"] = "per_stock"
    trainer_target: Literal["return", "price"] = "return"
    lstm_layers: int = Field(4, ge=1)
    lstm_units: int = Field(50, ge=1)
    window_min: int = Field(60, ge=2)
    max_epochs: int = Field(100, ge=1)
    early_stopping_patience: int = Field(5, ge=1)
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(1e-3, gt=0, le=10, allow_inf_nan=False)
    # Warm-update optimizer steps (0: the net stays as its cold start left it). Off by default: on the shared
    # real recording, learning on the stream made the forecasts no better and skewed their direction (README).
    update_steps: int = Field(0, ge=0)
    # Data minutes between warm updates (each trains on the windows closed since the last one).
    update_every_min: int = Field(10, ge=1, le=1_440)
    # Data minutes between fresh cold starts on the history held (0: never after the first).
    retrain_every_min: int = Field(0, ge=0, le=525_600)
    # Gaps up to this many minutes are forward-filled; longer ones cut the series.
    ffill_max_minutes: int = Field(5, ge=0)
    history_minutes: int = Field(3_000, ge=10)
    checkpoint_store: Literal["gridfs", "volume"] = "gridfs"
    checkpoint_dir: Path = Path("checkpoints")
    checkpoint_interval_s: float = seconds_field(300.0)
    # Intra-op threads per torch call (0: one per core). 1 by default: the trainer calls torch from two
    # threads (forecasting, training) and its batches are small, so more threads mostly wait on each other;
    # on 2 shared cores the backtest took 30 s on one thread and 380 s on two (bench/bench_backtest.py).
    torch_threads: int = Field(1, ge=0)

    # --- Operations --------------------------------------------------------------------------------
    log_file: Path | None = Path("data.log")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # After SIGTERM a service exits within this, even with a database or broker call stuck: what it
    # could not finish stays uncommitted and is read again by the next run.
    stop_timeout_s: float = seconds_field(30.0, high=600.0)
    http_host: str = "127.0.0.1"
    # /healthz and /metrics, one port per service; 0 picks a free port (logged at start).
    producer_http_port: int = Field(9101, ge=0, le=65535)
    sink_http_port: int = Field(9102, ge=0, le=65535)
    trainer_http_port: int = Field(9103, ge=0, le=65535)

    # --- Trainer (added for honest evaluation) ------------------------------------------------------
    # The first cold start waits until every ticker with bars has enough history, or at most this many
    # minutes of data time after the first one had.
    trainer_cold_start_wait_min: int = Field(30, ge=0)

    @field_validator("log_file", "replay_file", "kafka_ssl_ca_location", mode="before")
    @classmethod
    def _empty_path_is_none(cls, value: Any) -> Any:
        # PORTFOLIO_LOG_FILE= (empty) means "no file", not the current directory.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("tickers", mode="before")
    @classmethod
    def _split_tickers(cls, value: Any) -> Any:
        return _comma_list(value)

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

    @field_validator("shard")
    @classmethod
    def _check_shard(cls, value: str) -> str:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise ValueError("must be i/n with 1 <= i <= n, e.g. 1/3")
        return f"{int(match[1])}/{int(match[2])}"

    @field_validator("mongodb_uri")
    @classmethod
    def _check_mongodb_uri(cls, value: str) -> str:
        if not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @field_validator("replay_file")
    @classmethod
    def _check_replay_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.source == "replay" and self.replay_file is None:
            raise ValueError("replay_file: PORTFOLIO_REPLAY_FILE is required when PORTFOLIO_SOURCE=replay")
        if self.kafka_sasl_mechanism and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError("kafka_sasl_username: a SASL mechanism needs a username and a password")
        for name in ("mongodb_password", "kafka_sasl_password"):
            secret = getattr(self, name)
            if secret is not None and secret.get_secret_value() in PLACEHOLDER_SECRETS:
                raise ValueError(f"{name}: still the placeholder from .env.example; set a real secret")
        if self.kafka_max_poll_interval_ms < self.kafka_session_timeout_ms:
            raise ValueError(
                "kafka_max_poll_interval_ms: must be at least PORTFOLIO_KAFKA_SESSION_TIMEOUT_MS (librdkafka)"
            )
        if len(set(self.topics())) != 3:
            raise ValueError("bars_topic: the bars, predictions and dead-letter topics must differ")
        return self

    # --- Derived values ----------------------------------------------------------------------------
    def topics(self) -> tuple[str, str, str]:
        return (self.bars_topic, self.predictions_topic, self.dlq_topic)

    def shard_index_count(self) -> tuple[int, int]:
        index, count = self.shard.split("/")
        return int(index), int(count)

    def shard_tickers(self) -> list[str]:
        """The tickers this replica owns: a stable, disjoint slice of ``tickers`` (by position)."""
        index, count = self.shard_index_count()
        return self.tickers[index - 1 :: count]

    def redacted(self) -> dict[str, Any]:
        """The settings as they may be logged: secrets masked, a password in the MongoDB URI too."""
        values = self.model_dump(mode="json")
        values["mongodb_uri"] = re.sub(r"//([^:@/]+):[^@/]*@", r"//\1:***@", self.mongodb_uri)
        for name in ("kafka_sasl_password", "mongodb_password"):
            if values.get(name):
                values[name] = "***"
        return values


def describe_error(error: ValidationError) -> str:
    """One line per bad setting, naming the field and its environment variable."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "settings"
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"] and ":" in message:
            field, message = (part.strip() for part in message.split(":", 1))
        lines.append(f"{field} (PORTFOLIO_{field.split('.')[0].upper()}): {message}")
    return "invalid settings: " + "; ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment and ``.env``.

    Raise :class:`SettingsError` naming the bad setting.
    """
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(describe_error(error)) from None
