"""Run every benchmark in bench/ and write one summary: bench/results/summary.md and summary.json.

    python -m bench.run_all [--quick] [--only producer,sink]

Each ``bench/bench_<name>.py`` prints its own figures against a baseline measured in the same run and
returns them; this collects them with the machine and the date, so figures are compared like for like.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    try:
        with open("/proc/meminfo") as meminfo:
            info["memory_gib"] = round(int(meminfo.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def discover() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def render_markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# Benchmark summary",
        "",
        (
            f"Run {summary['date']} on {summary['machine']['platform']}, {summary['machine']['cpus']} CPUs"
            f"{' (quick mode)' if summary['quick'] else ''}. Reproduce with `make bench`."
        ),
        "",
    ]
    for result in summary["results"]:
        lines += [f"## {result['name']}", ""]
        if "error" in result:
            lines += [f"Failed: `{result['error']}`", ""]
            continue
        lines += ["| figure | value |", "| --- | --- |"]
        for group in ("figures", "baselines", "ratios"):
            for label, value in result.get(group, {}).items():
                shown = _number(value) if isinstance(value, int | float) else str(value)
                lines.append(f"| {group[:-1]}: {label} | {shown} |")
        if result.get("notes"):
            lines += ["", result["notes"]]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not figures to quote")
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [n for n in discover() if not args.only or n in args.only.split(",")]
    summary: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "quick": args.quick,
        "results": [],
    }
    failed = 0
    for name in names:
        print(f"\n=== bench {name} ===", flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            result = dict(module.main(["--quick"] if args.quick else []))
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            result = {"name": name, "error": f"{type(exc).__name__}: {exc}"}
            failed += 1
        result["wall_s"] = round(time.perf_counter() - started, 1)
        summary["results"].append(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    (args.out / "summary.md").write_text(render_markdown(summary))
    print(f"\nwrote {args.out / 'summary.md'} and summary.json")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
