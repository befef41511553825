"""The one poison builder: a good message's JSON with fields changed or left out, as raw bytes the
schema must refuse (or, for the sink, the database). No I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping

from shared.schemas import BarV1, PredictionV1, encode

Message = BarV1 | PredictionV1


def _fields(good: Message | Mapping[str, object]) -> dict[str, object]:
    if isinstance(good, BarV1 | PredictionV1):
        fields: dict[str, object] = json.loads(encode(good))
        return fields
    return dict(good)


def poison(good: Message | Mapping[str, object], **changes: object) -> bytes:
    """``good`` (a message model, or its wire fields) as JSON with ``changes`` applied."""
    return json.dumps(_fields(good) | changes).encode()


def without(good: Message | Mapping[str, object], *names: str) -> bytes:
    """``good`` as JSON without the fields ``names``."""
    return json.dumps({k: v for k, v in _fields(good).items() if k not in names}).encode()
