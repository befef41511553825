"""The connection settings every service shares: the Kafka broker with its topics, and MongoDB."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shared.settings.base import Group, check_placeholder, empty_path_is_none, seconds_field


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

    _empty_ca_is_none = field_validator("ssl_ca_location", mode="before")(empty_path_is_none)

    @model_validator(mode="after")
    def _check_combinations(self) -> KafkaSettings:
        if self.sasl_mechanism and not (self.sasl_username and self.sasl_password):
            raise ValueError("kafka_sasl_username: a SASL mechanism needs a username and a password")
        check_placeholder("kafka_sasl_password", self.sasl_password)
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
        check_placeholder("mongodb_password", self.password)
        return self

    def redacted_uri(self) -> str:
        """The URI with its password (if any) masked."""
        return re.sub(r"//([^:@/]+):[^@/]*@", r"//\1:***@", self.uri)
