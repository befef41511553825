"""Dashboard: API latency with every ticker live, event latency to a connected client, and memory.

* API: one ticker's last 390 minutes of bars and its forecasts (``/api/bars`` + ``/api/predictions``, the
  two requests a panel makes) from ``portfolio dashboard`` with bars and forecasts of every ticker
  published each second meanwhile; beside it, the same answer read from the database (history plus the
  in-progress items, as the API's older-span path and every other reader do), in the same run.
* Events: a forecast produced to Kafka -> its event, twice: read from ``/api/stream`` by a raw HTTP client,
  and handled by the page's JavaScript in headless Chromium (the page's own ``batch`` listener has returned;
  the chart redraw that follows is batched every 250 ms). Publish and arrival are wall-clock times of one
  machine: ``time.time()`` here, ``performance.timeOrigin + performance.now()`` in the page.
* Memory: the dashboard process's resident size after its fill, and the in-memory window alone at
  500 tickers x 3,000 minutes with a forecast of every default horizon (1, 5, 15, 30) at every minute.

Run: ``python -m bench.bench_dashboard [--quick]`` against the local stack (``make stack-up``); the browser
figure needs Debian's ``chromium`` and ``chromium-driver`` (skipped, with the reason printed, without them).
"""

from __future__ import annotations

import argparse
import gc
import json
import socket
import statistics
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.dashboard.stored_reads import read_bars, read_predictions
from services.dashboard.window import Window
from services.sink.writes import bar_document, prediction_document
from shared.kafka import ReliableProducer, ensure_topics
from shared.layout import item_id
from shared.mongo import BARS, PREDICTIONS, database, ensure_indexes, make_client
from shared.schemas import BarV1, PredictionV1, encode
from shared.settings import Settings, load_settings
from testkit.bars import synthetic_bar
from testkit.browser import chromium, missing_browser
from testkit.ports import free_port
from testkit.services import service_process
from testkit.waiting import poll_until, wait_until

T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
HORIZONS = (1, 5, 15, 30)
SPAN = 390
# Each database read of the baseline scans every stored document on FerretDB: minutes at 1M bars.
SOCKET_TIMEOUT_S = 1_800


def ticker(i: int) -> str:
    return f"T{i:03d}"


def bar(i: int, minute: int, final: bool = True) -> BarV1:
    price = 50.0 + i + (minute % 17) / 10
    return synthetic_bar(ticker(i), T0 + timedelta(minutes=minute), price, final=final, spread=0.5)


def prediction(i: int, based_on: int, horizon: int, version: str = "bench-model.0") -> PredictionV1:
    price = 50.0 + i
    return PredictionV1(
        ticker=ticker(i),
        ts=T0 + timedelta(minutes=based_on + horizon),
        yhat=price,
        horizon_min=horizon,
        based_on_ts=T0 + timedelta(minutes=based_on),
        model_version=version,
        trained_at=T0,
        target="return",
        q10=price - 1,
        q90=price + 1,
    )


def store(settings: Settings, tickers: int, minutes: int, forecast_minutes: int) -> None:
    with make_client(settings) as client:
        db = database(client, settings)
        ensure_indexes(db)
        # The sink's new key is (ticker, ts, horizon_min); the unique index of old is on (ticker, ts).
        db[PREDICTIONS].drop_indexes()
        db[PREDICTIONS].create_index([("ticker", 1), ("ts", 1), ("horizon_min", 1)], unique=True)
        for minute in range(minutes):
            ts = T0 + timedelta(minutes=minute)
            docs = [
                {"_id": item_id(ticker(i), ts)} | bar_document(bar(i, minute), None) for i in range(tickers)
            ]
            db[BARS].insert_many(docs, ordered=False)
        for minute in range(minutes - forecast_minutes, minutes):
            docs = [
                prediction_document(prediction(i, minute, h), None) for i in range(tickers) for h in HORIZONS
            ]
            db[PREDICTIONS].insert_many(docs, ordered=False)


def live_load(settings: Settings, tickers: int, start: int, stop: threading.Event) -> None:
    """Every second, one new minute of every ticker (in progress, then final) and its forecasts."""
    producer = ReliableProducer(settings, client_id="bench-live")
    minute = start
    while not stop.wait(1.0):
        for i in range(tickers):
            producer.produce(settings.kafka.bars_topic, encode(bar(i, minute, final=True)), key=ticker(i))
            producer.produce(
                settings.kafka.predictions_topic, encode(prediction(i, minute, 1)), key=ticker(i)
            )
        producer.poll(0)
        minute += 1
    producer.flush()


def timed(call: Any, repeat: int) -> list[float]:
    def once() -> float:
        started = time.perf_counter()
        call()
        return (time.perf_counter() - started) * 1000

    return [once() for _ in range(repeat)]


def pct(values: list[float], q: float) -> float:
    return round(sorted(values)[min(len(values) - 1, int(q * len(values)))], 2)


def api_latency(
    base: str, settings: Settings, newest: datetime, repeat: int, db_samples: int
) -> dict[str, float]:
    def over_api() -> None:
        for path in (f"/api/bars?ticker=T000&minutes={SPAN}", f"/api/predictions?ticker=T000&minutes={SPAN}"):
            with urllib.request.urlopen(base + path, timeout=10) as response:  # noqa: S310 (loopback URL)
                json.loads(response.read())

    with make_client(settings) as client:
        db = database(client, settings)
        since = newest - timedelta(minutes=SPAN - 1)

        def from_db() -> None:
            read_bars(db, ["T000"], since, newest)
            read_predictions(db, ["T000"], since, newest + timedelta(days=1))

        api = timed(over_api, repeat)
        # A few: on FerretDB each read scans the collections (seconds to minutes); the median of a few
        # samples gives its order of magnitude, no p99.
        stored = timed(from_db, db_samples)
    return {
        "api_p50_ms": pct(api, 0.5),
        "api_p99_ms": pct(api, 0.99),
        "api_requests": len(api),
        "database_median_ms": round(statistics.median(stored), 1),
        "database_samples": len(stored),
    }


def publish_probes(settings: Settings, count: int, prefix: str) -> dict[str, float]:
    """``count`` forecasts of T001 (on the page's first panels), 50 ms apart, produced with linger 0; the
    wall-clock millisecond each was handed to the producer, by model version (the probe's id)."""
    producer = ReliableProducer(settings, client_id=f"bench-{prefix}", config={"linger.ms": 0})
    sent: dict[str, float] = {}
    for n in range(count):
        version = f"{prefix}-{n}.0"
        sent[version] = time.time() * 1000
        producer.produce(
            settings.kafka.predictions_topic, encode(prediction(1, 10_000 + n, 1, version)), key="T001"
        )
        producer.poll(0)
        time.sleep(0.05)
    producer.flush()
    return sent


def latencies(sent: dict[str, float], got: dict[str, float], name: str) -> dict[str, float]:
    values = [got[v] - sent[v] for v in sent if v in got]
    if not values:
        return {f"{name}_received": 0}
    return {
        f"{name}_p50_ms": pct(values, 0.5),
        f"{name}_p99_ms": pct(values, 0.99),
        f"{name}_received": len(values),
    }


def event_latency(port: int, settings: Settings, count: int) -> dict[str, float]:
    """Probes published -> their SSE event read by a raw HTTP client."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /api/stream HTTP/1.1\r\nHost: bench\r\n\r\n")
    got: dict[str, float] = {}

    def read() -> None:
        buffer = b""
        while len(got) < count:
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                break
            now = time.time() * 1000
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"data: "):
                    for event in json.loads(line[6:])["events"]:
                        version = str(event.get("model_version", ""))
                        if version.startswith("probe-"):
                            got.setdefault(version, now)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.5)
    sent = publish_probes(settings, count, "probe")
    reader.join(30)
    sock.close()
    return latencies(sent, got, "event")


# Installed before the page's own script runs: each ``batch`` listener the page adds is wrapped, and once
# the page's handler has returned, the time is recorded for every probe id in the message.
BROWSER_PROBE = """
window.probeSeen = {};
const addListener = EventSource.prototype.addEventListener;
EventSource.prototype.addEventListener = function (type, listener, options) {
  if (type !== "batch") return addListener.call(this, type, listener, options);
  const timed = function (event) {
    const result = listener.call(this, event);
    const at = performance.timeOrigin + performance.now();
    for (const match of event.data.matchAll(/browser-[0-9]+[.]0/g)) {
      if (!(match[0] in window.probeSeen)) window.probeSeen[match[0]] = at;
    }
    return result;
  };
  return addListener.call(this, type, timed, options);
};
"""


def browser_event_latency(base: str, settings: Settings, count: int) -> dict[str, Any]:
    """Probes published -> their event handled by the page's JavaScript in headless Chromium."""
    reason = missing_browser()
    if reason is not None:
        print(f"browser event latency skipped: {reason}")
        return {"browser_event_skipped": reason}
    with chromium() as driver:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": BROWSER_PROBE})
        driver.get(base + "/")

        def loaded() -> bool:
            newest = driver.execute_script(
                "const p = document.querySelector('[data-ticker=\"T001\"]');"
                ' return p ? p.getAttribute("data-newest-ts") : "";'
            )
            return bool(newest)

        wait_until(loaded, 120, "the page's T001 panel")
        time.sleep(1)
        sent = publish_probes(settings, count, "browser")
        got: dict[str, float] = {}

        def all_seen() -> bool:
            got.update(driver.execute_script("return window.probeSeen;"))
            return len(got) >= count

        # A probe that never arrives is reported as fewer received, not as a failed run.
        poll_until(all_seen, 30, every=0.5)
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return latencies(sent, got, "browser_event") | {"browser_console_errors": len(errors)}


def rss_mib(pid: int | str) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return round(int(status.split("VmRSS:")[1].split()[0]) / 1024, 1)


def window_memory(tickers: int, minutes: int) -> dict[str, float]:
    """The window alone, in this process: resident growth and the bytes its columns hold, with a bar and a
    forecast of each default horizon at every minute of every ticker."""
    gc.collect()
    before = rss_mib("self")
    window = Window(minutes)
    ohlc: dict[str, Any] = dict.fromkeys(("open", "high", "low", "close"), 1.0)
    forecast: dict[str, Any] = {"yhat": 1.0, "q10": 0.9, "q90": 1.1, "model_version": "m.0"}
    for minute in range(minutes):
        ts = T0 + timedelta(minutes=minute)
        for i in range(tickers):
            values: dict[str, Any] = {"ticker": ticker(i), "ts": ts}
            window.add_bar(BarV1.model_construct(**values, **ohlc, volume=1, rev=0, final=True))
            for horizon in HORIZONS:
                window.add_prediction(PredictionV1.model_construct(**values, **forecast, horizon_min=horizon))
    gc.collect()
    after = rss_mib("self")
    counts = window.counts()
    return {
        "window_bars": counts["bars"],
        "window_forecasts": counts["predictions"],
        "window_rss_growth_mib": round(after - before, 1),
        "window_column_mib": round(counts["bytes"] / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_dashboard", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="500 tickers x 400 minutes stored (2 minutes)")
    parser.add_argument(
        "--minutes", type=int, default=2_000, help="minutes stored per ticker (500 x 2,000 = 1M)"
    )
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument(
        "--db-samples", type=int, default=3, help="reads of the same answer from the database (each scans)"
    )
    args = parser.parse_args(argv)
    minutes = 400 if args.quick else args.minutes
    unique = uuid.uuid4().hex[:8]
    port = free_port()
    settings = load_settings(
        kafka={"bars_topic": f"bench-{unique}.bars", "predictions_topic": f"bench-{unique}.predictions",
               "dlq_topic": f"bench-{unique}.dlq"},
        mongo={"db": f"bench_{unique}", "socket_timeout_s": SOCKET_TIMEOUT_S},
        dashboard={"port": port, "group_id": f"bench-{unique}-dashboard"},
        common={"log_file": None, "log_level": "WARNING", "tickers": [ticker(i) for i in range(5)]},
        producer={"http_port": 0}, sink={"http_port": 0}, trainer={"http_port": 0},
    )  # fmt: skip
    ensure_topics(settings, settings.kafka.topics())
    started = time.monotonic()
    store(settings, args.tickers, minutes, forecast_minutes=SPAN if not args.quick else 60)
    stored_s = time.monotonic() - started
    log = Path(f"/tmp/bench-dashboard-{unique}.log")
    stop = threading.Event()
    try:
        # At 1M bars FerretDB's one sorted find (the newest bar) outlasts the default 120 s socket timeout on
        # a loaded machine: the bench measures the fill, whatever it takes.
        with service_process(
            "dashboard", settings, log, PORTFOLIO_MONGODB_SOCKET_TIMEOUT_S=str(SOCKET_TIMEOUT_S)
        ) as process:
            base = f"http://127.0.0.1:{port}"

            def ready() -> bool:
                try:
                    with urllib.request.urlopen(base + "/healthz", timeout=2):  # noqa: S310 (loopback URL)
                        return True
                except OSError:
                    return False

            started = time.monotonic()
            wait_until(ready, 3_600, "the dashboard's fill", every=0.5, process=process)
            fill_s = time.monotonic() - started
            rss = rss_mib(process.pid)
            load = threading.Thread(target=live_load, args=(settings, args.tickers, minutes, stop))
            load.start()
            time.sleep(3)
            newest = T0 + timedelta(minutes=minutes - 1)
            probes = 100 if args.quick else 300
            api = api_latency(base, settings, newest, 100 if args.quick else 300, args.db_samples)
            events = event_latency(port, settings, probes)
            browser = browser_event_latency(base, settings, probes)
            rss_live = rss_mib(process.pid)
            stop.set()
            load.join()
    finally:
        stop.set()
        with make_client(settings) as client:
            client.drop_database(settings.mongo.db)
    memory = window_memory(args.tickers, 3_000)
    result = {
        "name": "dashboard",
        "figures": {
            "tickers": args.tickers,
            "bars_stored": args.tickers * minutes,
            "store_s": round(stored_s, 1),
            "fill_s": round(fill_s, 1),
            "dashboard_rss_mib_after_fill": rss,
            "dashboard_rss_mib_at_end": rss_live,
            **api,
            **events,
            **browser,
            **memory,
        },
        "notes": (
            f"{'quick: ' if args.quick else ''}{args.tickers} tickers x {minutes} minutes stored, one run, "
            "the local stack (FerretDB). API: /api/bars + /api/predictions of one ticker's last 390 minutes, "
            "p50/p99 over sequential requests while every ticker gets a new bar and forecast each second; "
            f"database: the same answer read with pymongo (history + in-progress items), median of "
            f"{args.db_samples} (each read scans on FerretDB). Events: a forecast produced (linger 0) -> its "
            "SSE event read by a raw client, and -> handled by the page's JavaScript in headless Chromium "
            "(wall clock of one machine). Window memory: 500 x 3,000 bars and forecasts of horizons "
            "1, 5, 15, 30 at every minute, built in the bench's own process."
        ),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
