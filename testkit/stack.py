"""A Kafka broker and a FerretDB of a test's own, on free ports, that the test may kill, stop and restart.

Never the shared stack on 9092/27017: four engineers' tests run against that one. Same binaries as
``infra/local/stack.sh`` (Kafka jars and FerretDB in ``~/.cache/portfolio``), started as child processes
in their own session and always torn down by the context managers here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from testkit.ports import free_port
from testkit.services import stop_service
from testkit.waiting import wait_until

CACHE = Path(os.environ.get("PORTFOLIO_CACHE_DIR", Path.home() / ".cache/portfolio"))
KAFKA_HOME = CACHE / "kafka-4.1.1"
FERRETDB = CACHE / "ferretdb-v1.24.2/ferretdb"


class OwnProcess:
    """A server process that can be killed (-9), paused (SIGSTOP), resumed and started again."""

    def __init__(self, name: str, command: list[str], log: Path) -> None:
        self.name, self.command, self.log = name, command, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wait_ready(90)

    def wait_ready(self, timeout: float) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        """Kill -9: no shutdown, no flush."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM (resumed first, should it be paused); kill -9 if it is not gone in 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)
        stop_service(self.process, 20)


class OwnKafka(OwnProcess):
    """A single-node KRaft broker, configured like the local stack's."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.port = port or free_port(with_next=True)
        self.bootstrap = f"127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.port + 1}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.port + 1}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={directory}/data",
                    "num.partitions=6",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                ]
            )
            + "\n"
        )
        java = [
            "java",
            "-Xms128m",
            "-Xmx384m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            "-Dlog4j2.level=WARN",
            "-cp",
            f"{KAFKA_HOME}/libs/*",
        ]
        subprocess.run(
            [
                *java,
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                "-t",
                uuid.uuid4().hex[:22],
                "-c",
                str(config),
            ],
            check=True,
            capture_output=True,
        )
        super().__init__("kafka", [*java, "kafka.Kafka", str(config)], directory / "kafka.out")

    def wait_ready(self, timeout: float) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})

        def answers() -> bool:
            try:
                return bool(admin.list_topics(timeout=2).brokers)
            except KafkaException:
                return False

        wait_until(answers, timeout, f"our Kafka on {self.bootstrap}", every=0.2)


class OwnFerretDB(OwnProcess):
    """A FerretDB on SQLite files in ``directory``, like the local stack's."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(
            "ferretdb",
            [
                str(FERRETDB),
                "--handler=sqlite",
                f"--sqlite-url=file:{directory}/",
                f"--state-dir={directory}",
                f"--listen-addr=127.0.0.1:{self.port}",
                "--debug-addr=-",
                "--telemetry=disable",
                "--log-level=error",
            ],
            directory / "ferretdb.log",
        )

    def wait_ready(self, timeout: float) -> None:
        probe: MongoClient[dict[str, Any]]
        with MongoClient(self.uri, serverSelectionTimeoutMS=500) as probe:

            def pings() -> bool:
                try:
                    probe.admin.command("ping")
                    return True
                except PyMongoError:
                    return False

            wait_until(pings, timeout, f"our FerretDB on {self.uri}", every=0.2)


@contextmanager
def own_kafka(directory: Path) -> Iterator[OwnKafka]:
    """A Kafka broker on ``directory`` and free ports, stopped on the way out."""
    kafka = OwnKafka(directory)
    try:
        kafka.start()
        yield kafka
    finally:
        kafka.stop()


@contextmanager
def own_ferretdb(directory: Path, port: int | None = None) -> Iterator[OwnFerretDB]:
    """A FerretDB on ``directory`` (on ``port``, or a free one), stopped on the way out; started again on
    the same directory and port, it serves what it stored before."""
    ferret = OwnFerretDB(directory, port)
    try:
        ferret.start()
        yield ferret
    finally:
        ferret.stop()
