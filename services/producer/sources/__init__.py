"""Where bars come from: ``PORTFOLIO_SOURCE`` picks one implementation of :class:`base.Source`."""

from __future__ import annotations

from services.producer.sources.base import Fetch, FetchError, Source
from shared.settings import Settings, SettingsError

__all__ = ["Fetch", "FetchError", "Source", "make_source"]


def make_source(settings: Settings, tickers: list[str]) -> Source:
    if settings.producer.source == "synthetic":
        from services.producer.sources.synthetic import SyntheticSource

        return SyntheticSource(tickers, seed=settings.producer.synthetic_seed)
    if settings.producer.source == "replay":
        from services.producer.sources.replay import ReplaySource

        assert settings.producer.replay_file is not None  # the settings refuse replay without a file
        try:
            return ReplaySource(settings.producer.replay_file, tickers, speed=settings.producer.replay_speed)
        except (ValueError, OSError) as error:
            raise SettingsError(f"replay_file (PORTFOLIO_REPLAY_FILE): cannot be replayed: {error}") from None
    from services.producer.market_hours import MarketHours
    from services.producer.sources.yfinance_source import YFinanceSource

    hours = MarketHours(settings.producer.exchange_calendar) if settings.producer.market_hours_only else None
    return YFinanceSource(tickers, hours=hours, period_s=settings.common.download_period_s)
