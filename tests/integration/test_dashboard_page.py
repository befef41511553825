"""The dashboard's page in headless Chromium: a panel per ticker and the portfolio, charts drawn, updates from
the event stream without a reload, search and pages for many tickers, and no console errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.schemas import format_ts
from shared.settings import PORTFOLIO_SERIES
from testkit.bars import T0, bar_at, forecast, synthetic_bar
from testkit.browser import chromium, console_errors, missing_browser, screenshot
from testkit.waiting import wait_until
from tests.integration.dashboard_support import DashboardCase

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(missing_browser() is not None, reason=f"no browser: {missing_browser()}"),
]

TICKERS = [f"T{i:02d}" for i in range(30)]
# How many pixels of a panel's canvas are painted: a chart with lines drawn has thousands.
PAINTED = """
const canvas = document.querySelector(`[data-ticker="${arguments[0]}"] canvas`);
if (!canvas) return 0;
const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
let painted = 0;
for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted += 1;
return painted;
"""


def _panels(driver: Any, attribute: str = "data-newest-ts") -> dict[str, str]:
    found = driver.find_elements("css selector", "[data-ticker]")
    return {p.get_attribute("data-ticker"): p.get_attribute(attribute) for p in found}


def test_the_page_shows_panels_with_charts_and_follows_the_stream(
    dashboard: DashboardCase, tmp_path: Path
) -> None:
    minutes = range(120)
    # Friday's session before Monday's 120 minutes: each panel draws the newest 390 trading minutes.
    friday = [T0 - timedelta(days=3) + timedelta(minutes=m) for m in range(390)]
    dashboard.store(
        [*(bar_at(t, m) for t in TICKERS for m in minutes),
         *(synthetic_bar(t, at, 100.0, final=True) for t in TICKERS[:13] for at in friday)],
        [*(forecast(t, m, h) for t in TICKERS[:3] for m in range(100, 119) for h in (1, 5, 15, 30)),
         *(forecast("AAA", m, h).model_copy(update={"ticker": PORTFOLIO_SERIES})
           for m in range(100, 120) for h in (1, 5, 15, 30))],
    )  # fmt: skip
    dashboard.start()
    with chromium() as driver:
        driver.get(dashboard.base + "/")
        driver.execute_script("window.notReloaded = true;")
        # One page: the portfolio and the first 12 tickers, each with the newest stored minute.
        expected = {"portfolio", *TICKERS[:12]}
        wait_until(lambda: set(_panels(driver)) == expected and all(_panels(driver).values()), 30, "panels")
        assert _panels(driver)["T00"] == format_ts(bar_at("T00", 119).ts)
        for ticker in ("portfolio", "T00", "T11"):
            assert driver.execute_script(PAINTED, ticker) > 500, f"{ticker}'s chart is blank"
        # The portfolio spans the sessions a ticker's panel does, and draws the trainer's forecasts of its
        # value (series _PORTFOLIO) ahead of its newest minute, 30 minutes out.
        oldest = _panels(driver, "data-oldest-ts")
        assert oldest["portfolio"] == oldest["T00"] == format_ts(friday[-270])
        assert _panels(driver, "data-ahead")["portfolio"] == "30"
        wait_until(lambda: "producer" in driver.find_element("id", "health").text, 15, "the health header")
        screenshot(driver, tmp_path / "dashboard.png")

        # New minutes arrive on the stream: the panels move on without a reload.
        dashboard.publish([bar_at("T00", 120, final=False)], [forecast("T00", 120, 5)])
        newest = format_ts(bar_at("T00", 120).ts)
        wait_until(lambda: _panels(driver)["T00"] == newest, 30, "T00's new minute")
        wait_until(lambda: _panels(driver)["portfolio"] == newest, 10, "the portfolio's new minute")
        assert driver.execute_script("return window.notReloaded === true;")

        # 30 tickers: three pages, and a search narrows them.
        driver.find_element("id", "search").send_keys("T2")
        wait_until(lambda: set(_panels(driver)) == {"portfolio", *TICKERS[20:30]}, 15, "the search's panels")
        assert "1 / 1 (10 of 30 tickers)" in driver.find_element("id", "pageinfo").text
        assert console_errors(driver) == []
