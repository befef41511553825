"""Every setting of every service, one small model per concern.

Read from the environment and from a ``.env`` file in the working directory. Each field names its
variable (``validation_alias``); the variables are the ones the project has always read
(``PORTFOLIO_KAFKA_BOOTSTRAP_SERVERS``, ``PORTFOLIO_LSTM_LAYERS``, ``PORTFOLIO_BATCH_SIZE``, ...), while the
field drops what its group already says (``settings.kafka.bootstrap_servers``, ``settings.trainer.layers``).
:func:`variables` lists every variable with its group and field.

Build a :class:`Settings` once at start with :func:`load_settings` and pass it down; there is no module-level
instance, so tests build their own (overrides by group: ``load_settings(producer={"source": "replay"})``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.settings.base import (
    DEFAULT_TICKERS,
    PORTFOLIO_SERIES,
    PREFIX,
    SERIES_PATTERN,
    TICKER_PATTERN,
    Group,
    SettingsError,
)
from shared.settings.connections import KafkaSettings, MongoSettings
from shared.settings.services import (
    SESSION_LENGTH_MIN,
    CommonSettings,
    DashboardSettings,
    ProducerSettings,
    SinkSettings,
    TrainerSettings,
)

__all__ = [
    "DEFAULT_TICKERS",
    "PORTFOLIO_SERIES",
    "SERIES_PATTERN",
    "TICKER_PATTERN",
    "CommonSettings",
    "DashboardSettings",
    "KafkaSettings",
    "MongoSettings",
    "ProducerSettings",
    "Settings",
    "SettingsError",
    "SinkSettings",
    "TrainerSettings",
    "load_settings",
    "variables",
]

# In the order they are built, checked and listed.
GROUPS: tuple[type[Group], ...] = (
    CommonSettings,
    KafkaSettings,
    MongoSettings,
    ProducerSettings,
    SinkSettings,
    TrainerSettings,
    DashboardSettings,
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
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)

    # --- Derived values ----------------------------------------------------------------------------
    def shard_tickers(self) -> list[str]:
        """The tickers this replica owns: a stable, disjoint slice of ``tickers`` (by position)."""
        index, count = self.producer.shard_index_count()
        return self.common.tickers[index - 1 :: count]

    def session(self) -> str:
        """The ``PORTFOLIO_SESSION`` in force: as set, else the session of the producer's source (the
        synthetic market trades around the clock: "24h"; yfinance and a replayed recording: "XNYS")."""
        return self.common.session or ("24h" if self.producer.source == "synthetic" else "XNYS")

    def problems(self) -> list[str]:
        """What no single group can check: settings that contradict each other."""
        length = SESSION_LENGTH_MIN[self.session()]
        if any(h >= length for h in self.trainer.horizons):
            name = TrainerSettings.variable("horizons")
            problem = f"horizons are 1 to {length - 1} minutes with the {self.session()} session"
            return [f"{name.removeprefix(PREFIX).lower()} ({name}): {problem} (PORTFOLIO_SESSION)"]
        return []

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
    settings = None if problems else Settings.model_validate(built)
    problems += settings.problems() if settings else []
    if problems or settings is None:
        raise SettingsError("invalid settings: " + "; ".join(problems))
    return settings
