"""Every setting of every service, one small model per concern.

Read from the environment and from a ``.env`` file in the working directory. Each field names its
variable (``validation_alias``); the variables are the ones the project has always read
(``PORTFOLIO_KAFKA_BOOTSTRAP_SERVERS``, ``PORTFOLIO_LSTM_LAYERS``, ``PORTFOLIO_BATCH_SIZE``, ...), while the
field drops what its group already says (``settings.kafka.bootstrap_servers``, ``settings.trainer.layers``).
:func:`variables` lists every variable with its group and field.

Build a :class:`Settings` once at start with :func:`load_settings` and pass it down; there is no module-level
instance, so tests build their own (overrides by group: ``load_settings(producer={"source": "replay"})``).
The coming dashboard adds its own group here; today it has no settings of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PREFIX = "PORTFOLIO_"
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


def _empty_path_is_none(value: Any) -> Any:
    # PORTFOLIO_LOG_FILE= (empty) means "no file", not the current directory.
    return None if isinstance(value, str) and not value.strip() else value


def _check_placeholder(name: str, secret: SecretStr | None) -> None:
    if secret is not None and secret.get_secret_value() in PLACEHOLDER_SECRETS:
        raise ValueError(f"{name}: still the placeholder from .env.example; set a real secret")


class SettingsError(ValueError):
    """A setting has a bad value. The message names the setting (its variable, in lower case, and in full)."""


class Group(BaseSettings):
    """One concern's settings. Each field is read from the variable its ``validation_alias`` names.

    Settings errors name a setting by its variable without the prefix, in lower case (``trainer_mode``),
    then in full (``PORTFOLIO_TRAINER_MODE``), whatever the field is called in its group.
    """

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        # Every group reads the same environment and .env: the other groups' variables are not errors.
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    # The attribute of Settings that holds this group.
    group: ClassVar[str]

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable that sets ``field``."""
        alias = cls.model_fields[field].validation_alias
        assert isinstance(alias, str), f"{cls.__name__}.{field} names no variable"
        return alias


class KafkaSettings(Group):
    """The broker, how to reach it, and the topics and messages every service shares."""

    group: ClassVar[str] = "kafka"

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", min_length=1, validation_alias="PORTFOLIO_KAFKA_BOOTSTRAP_SERVERS"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias="PORTFOLIO_KAFKA_SECURITY_PROTOCOL"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, validation_alias="PORTFOLIO_KAFKA_SASL_MECHANISM"
    )
    sasl_username: str | None = Field(None, validation_alias="PORTFOLIO_KAFKA_SASL_USERNAME")
    sasl_password: SecretStr | None = Field(None, validation_alias="PORTFOLIO_KAFKA_SASL_PASSWORD")
    ssl_ca_location: Path | None = Field(None, validation_alias="PORTFOLIO_KAFKA_SSL_CA_LOCATION")
    bars_topic: str = Field("bars.1m", min_length=1, validation_alias="PORTFOLIO_BARS_TOPIC")
    predictions_topic: str = Field(
        "predictions.1m", min_length=1, validation_alias="PORTFOLIO_PREDICTIONS_TOPIC"
    )
    dlq_topic: str = Field("bars.1m.dlq", min_length=1, validation_alias="PORTFOLIO_DLQ_TOPIC")
    # Kept short enough that a stalled consumer is noticed, long enough for a slow database write.
    max_poll_interval_ms: int = Field(
        300_000, ge=1_000, le=86_400_000, validation_alias="PORTFOLIO_KAFKA_MAX_POLL_INTERVAL_MS"
    )
    session_timeout_ms: int = Field(
        45_000, ge=1_000, le=3_600_000, validation_alias="PORTFOLIO_KAFKA_SESSION_TIMEOUT_MS"
    )
    # A bar is ~200 bytes; anything far larger is garbage or an attack (the sink sends it to the DLQ, the
    # trainer skips it). Here because both consumers read it.
    max_message_bytes: int = Field(16_384, ge=256, validation_alias="PORTFOLIO_MAX_MESSAGE_BYTES")

    _empty_ca_is_none = field_validator("ssl_ca_location", mode="before")(_empty_path_is_none)

    @model_validator(mode="after")
    def _check_combinations(self) -> KafkaSettings:
        if self.sasl_mechanism and not (self.sasl_username and self.sasl_password):
            raise ValueError("kafka_sasl_username: a SASL mechanism needs a username and a password")
        _check_placeholder("kafka_sasl_password", self.sasl_password)
        if self.max_poll_interval_ms < self.session_timeout_ms:
            raise ValueError(
                "kafka_max_poll_interval_ms: must be at least PORTFOLIO_KAFKA_SESSION_TIMEOUT_MS (librdkafka)"
            )
        if len(set(self.topics())) != 3:
            raise ValueError("bars_topic: the bars, predictions and dead-letter topics must differ")
        return self

    def topics(self) -> tuple[str, str, str]:
        return (self.bars_topic, self.predictions_topic, self.dlq_topic)


class MongoSettings(Group):
    """The database and how to reach it."""

    group: ClassVar[str] = "mongo"

    # May carry a password: kept out of repr(); Settings.redacted() masks it for logs.
    uri: str = Field("mongodb://127.0.0.1:27017", repr=False, validation_alias="PORTFOLIO_MONGODB_URI")
    db: str = Field("portfolio", min_length=1, max_length=63, validation_alias="PORTFOLIO_MONGODB_DB")
    username: str | None = Field(None, validation_alias="PORTFOLIO_MONGODB_USERNAME")
    password: SecretStr | None = Field(None, validation_alias="PORTFOLIO_MONGODB_PASSWORD")
    # Server selection and connection: how long a call waits for a server that is away.
    timeout_s: float = seconds_field(10.0, high=600.0, validation_alias="PORTFOLIO_MONGODB_TIMEOUT_S")
    # The longest one database call may take before it is abandoned and retried: above the slowest
    # legitimate batch write, far below "forever" (without it a stuck call never returns).
    socket_timeout_s: float = seconds_field(
        120.0, high=3_600.0, validation_alias="PORTFOLIO_MONGODB_SOCKET_TIMEOUT_S"
    )

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, value: str) -> str:
        if not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @model_validator(mode="after")
    def _check_password(self) -> MongoSettings:
        _check_placeholder("mongodb_password", self.password)
        return self

    def redacted_uri(self) -> str:
        """The URI with its password (if any) masked."""
        return re.sub(r"//([^:@/]+):[^@/]*@", r"//\1:***@", self.uri)


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

    _empty_log_file_is_none = field_validator("log_file", mode="before")(_empty_path_is_none)

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


def _http_port(default: int, variable: str) -> Any:
    # /healthz and /metrics, one port per service; 0 picks a free port (logged at start).
    return Field(default, ge=0, le=65535, validation_alias=variable)


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
    http_port: int = _http_port(9101, "PORTFOLIO_PRODUCER_HTTP_PORT")

    _empty_replay_file_is_none = field_validator("replay_file", mode="before")(_empty_path_is_none)

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
    http_port: int = _http_port(9102, "PORTFOLIO_SINK_HTTP_PORT")


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
    torch_threads: int = Field(1, ge=0, validation_alias="PORTFOLIO_TORCH_THREADS")
    http_port: int = _http_port(9103, "PORTFOLIO_TRAINER_HTTP_PORT")


# In the order they are built, checked and listed. The dashboard's group joins when it has settings.
GROUPS: tuple[type[Group], ...] = (
    CommonSettings,
    KafkaSettings,
    MongoSettings,
    ProducerSettings,
    SinkSettings,
    TrainerSettings,
)


class Settings(BaseModel):
    """The settings of the whole pipeline: one group per concern (``settings.kafka.bootstrap_servers``).

    Build it with :func:`load_settings`; ``Settings()`` reads every group from the environment too, but
    raises pydantic's error rather than :class:`SettingsError`.
    """

    model_config = ConfigDict(frozen=True)

    common: CommonSettings = Field(default_factory=CommonSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    sink: SinkSettings = Field(default_factory=SinkSettings)
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)

    # --- Derived values ----------------------------------------------------------------------------
    def shard_tickers(self) -> list[str]:
        """The tickers this replica owns: a stable, disjoint slice of ``tickers`` (by position)."""
        index, count = self.producer.shard_index_count()
        return self.common.tickers[index - 1 :: count]

    def redacted(self) -> dict[str, Any]:
        """The settings as they may be logged, by group: secrets masked, a password in the MongoDB URI too."""
        values = self.model_dump(mode="json")
        values["mongo"]["uri"] = self.mongo.redacted_uri()
        for group, name in (("kafka", "sasl_password"), ("mongo", "password")):
            if values[group].get(name):
                values[group][name] = "***"
        return values


def variables() -> dict[str, tuple[str, str]]:
    """Every ``PORTFOLIO_*`` variable the settings read, mapped to its ``(group, field)``.

    In declaration order: ``variables()["PORTFOLIO_LSTM_LAYERS"] == ("trainer", "layers")``; iterating
    gives the variable names.
    """
    return {group.variable(name): (group.group, name) for group in GROUPS for name in group.model_fields}


def _setting_name(group: type[Group], loc: str) -> str:
    """The name an error gives a setting: its variable without the prefix, in lower case."""
    variable = loc if loc.upper().startswith(PREFIX) else group.variable(loc)
    return variable.upper().removeprefix(PREFIX).lower()


def _describe(group: type[Group], error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["loc"]:
            name = _setting_name(group, str(item["loc"][0]))
        elif ":" in message:
            name, message = (part.strip() for part in message.split(":", 1))
        else:
            name = group.group
        lines.append(f"{name} ({PREFIX}{name.upper()}): {message}")
    return lines


def load_settings(**overrides: Mapping[str, Any]) -> Settings:
    """Build the settings from the environment and ``.env``; ``overrides`` win, by group and field.

    ``load_settings(common={"log_file": None}, trainer={"layers": 2})``. Raise :class:`SettingsError`
    naming every bad setting (of all groups at once).
    """
    by_name = {group.group: group for group in GROUPS}
    unknown = [name for name in overrides if name not in by_name]
    unknown += [
        f"{name}.{field}" for name, values in overrides.items() if name in by_name
        for field in values if field not in by_name[name].model_fields
    ]  # fmt: skip
    if unknown:
        raise TypeError(f"no such setting: {', '.join(unknown)}")
    built: dict[str, Group] = {}
    problems: list[str] = []
    for group in GROUPS:
        try:
            built[group.group] = group(**overrides.get(group.group, {}))
        except ValidationError as error:
            problems += _describe(group, error)
    if problems:
        raise SettingsError("invalid settings: " + "; ".join(problems))
    return Settings.model_validate(built)
