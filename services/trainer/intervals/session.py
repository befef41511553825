"""The trainer's name for the session clock, which lives in :mod:`shared.session` so the scorer can use it
without importing the trainer."""

from shared.session import (
    NEW_YORK,
    SESSION_MINUTES,
    SESSION_OPEN_MINUTE,
    SESSION_TZ,
    session_minutes,
    session_minutes_fast,
    utc_offset_minutes,
)

__all__ = [
    "NEW_YORK",
    "SESSION_MINUTES",
    "SESSION_OPEN_MINUTE",
    "SESSION_TZ",
    "session_minutes",
    "session_minutes_fast",
    "utc_offset_minutes",
]
