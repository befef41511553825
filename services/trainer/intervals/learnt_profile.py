"""The intraday profile learnt from completed sessions (:mod:`range_recalibration`): each bucket's level is
the fitted one, weighing :data:`PRIOR_WEIGHT` observations, averaged with what completed sessions added.
No I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from services.trainer.intervals.horizon_ranges import BUCKET

PRIOR_WEIGHT = float(BUCKET)  # the fitted profile's weight, in observations per bucket


def bucket_levels(profile: np.ndarray) -> list[float]:
    """The per-minute profile's level per bucket."""
    return [float(np.mean(profile[b : b + BUCKET])) for b in range(0, len(profile), BUCKET)]


def profile_of(
    prior: Sequence[float], sums: Sequence[float], counts: Sequence[float], weight: float = PRIOR_WEIGHT
) -> list[float]:
    """The per-minute profile from the fitted bucket levels and what completed sessions added."""
    levels = [(weight * p + s) / (weight + n) for p, s, n in zip(prior, sums, counts, strict=True)]
    levels = [v if v > 0 and math.isfinite(v) else p for v, p in zip(levels, prior, strict=True)]
    return [v for v in levels for _ in range(BUCKET)]


def normalized(per_minute: list[float], minutes: int) -> list[float]:
    """The first ``minutes`` of a per-minute profile, scaled to mean 1."""
    per_minute = per_minute[:minutes]
    mean = sum(per_minute) / len(per_minute)
    return [v / mean for v in per_minute]


def cumulative(profile: Sequence[float]) -> list[float]:
    """``[0, p0, p0 + p1, ...]``: a window's sum of the profile is a difference of two."""
    out = [0.0]
    for v in profile:
        out.append(out[-1] + v)
    return out
