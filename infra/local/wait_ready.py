"""Wait until Kafka answers a metadata request and the database answers ``ping``.

Used by ``stack.sh up`` so that ``make stack-up`` returns only when both accept real requests.
"""

from __future__ import annotations

import argparse
import sys
import time

from confluent_kafka.admin import AdminClient
from pymongo import MongoClient


def kafka_ready(bootstrap: str) -> str | None:
    # log_level 0: connection refusals are the expected answer until the broker is up.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=3)
    except Exception as exc:  # any failure only means "not yet"  # noqa: BLE001 (any failure means not ready yet)
        return str(exc)
    return None if metadata.brokers else "no brokers in metadata"


def mongodb_ready(uri: str) -> str | None:
    try:
        with MongoClient(uri, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000) as client:
            client.admin.command("ping")
    except Exception as exc:  # noqa: BLE001 (any failure means not ready yet)
        return str(exc)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kafka", required=True)
    parser.add_argument("--mongodb", required=True)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    pending = {"kafka": args.kafka, "mongodb": args.mongodb}
    checks = {"kafka": kafka_ready, "mongodb": mongodb_ready}
    errors: dict[str, str] = {}
    while pending and time.monotonic() < deadline:
        for name, target in list(pending.items()):
            error = checks[name](target)
            if error is None:
                print(f"stack: {name} ready at {target}", file=sys.stderr)
                del pending[name]
            else:
                errors[name] = error
        if pending:
            time.sleep(0.5)
    for name in pending:
        print(f"stack: {name} not ready after {args.timeout:.0f} s: {errors.get(name)}", file=sys.stderr)
    return 1 if pending else 0


if __name__ == "__main__":
    sys.exit(main())
