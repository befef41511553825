"""What every settings group is made of: the variables' prefix, the field helpers, the base class and the
error that names a bad setting. No settings here."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "PORTFOLIO_"
DEFAULT_TICKERS = ("AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "JPM", "XOM")

# The values .env.example ships with: refused, so a copied example never reaches production.
PLACEHOLDER_SECRETS = frozenset({"change-me", "changeme"})

# Tickers become MongoDB field names (``close.<TICKER>``) and Kafka keys: no '.', no '$', no spaces.
TICKER_PATTERN = re.compile(r"^[A-Z0-9^=\-]{1,15}$")
# The portfolio's value, forecast and scored as one more series beside the tickers (issue 18): the one name
# a series may have that no ticker can take (the leading '_' is outside TICKER_PATTERN). Only prediction
# messages may carry it (SERIES_PATTERN); a bar carrying it is refused like any bad ticker.
PORTFOLIO_SERIES = "_PORTFOLIO"
SERIES_PATTERN = re.compile(rf"^(?:[A-Z0-9^=\-]{{1,15}}|{PORTFOLIO_SERIES})$")


DAY_S = 86_400.0


def seconds_field(default: float, *, low: float = 0.0, high: float = DAY_S, **kwargs: Any) -> Any:
    """A duration setting: finite (``inf``/``nan`` refused) and within ``(low, high]`` seconds.

    An infinite period or timeout silently turns a loop off or a wait into a hang, so every duration
    has a range that a mistyped unit (milliseconds for seconds) also falls outside of.
    """
    return Field(default, gt=low, le=high, allow_inf_nan=False, **kwargs)


def comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def comma_pairs(value: str, form: str, example: str) -> dict[str, str]:
    """``"a=1,b=2"`` -> ``{"a": "1", "b": "2"}``; a ValueError naming the ``form`` (``KEY=VALUE``) and an
    example otherwise."""
    pairs = [item.split("=", 1) for item in comma_list(value)]
    if any(len(pair) != 2 or not pair[0].strip() or not pair[1].strip() for pair in pairs):
        raise ValueError(f"{form} pairs separated by commas, e.g. {example}")
    return {name.strip(): item.strip() for name, item in pairs}


def empty_path_is_none(value: Any) -> Any:
    # PORTFOLIO_LOG_FILE= (empty) means "no file", not the current directory.
    return None if isinstance(value, str) and not value.strip() else value


def check_placeholder(name: str, secret: SecretStr | None) -> None:
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


def http_port_field(default: int, variable: str) -> Any:
    # /healthz and /metrics, one port per service; 0 picks a free port (logged at start).
    return Field(default, ge=0, le=65535, validation_alias=variable)
