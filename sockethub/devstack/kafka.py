"""A single-node KRaft Kafka broker, run from its jars on Maven Central.

The jars are resolved once with Maven into a cache outside the repository
(``~/.cache/sockethub`` or ``SOCKETHUB_CACHE_DIR``); a second run downloads
nothing. The storage directory is formatted once and kept: it is the log.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from sockethub.devstack.errors import StackError
from sockethub.devstack.processes import LocalService, PidFile, require_free_port

KAFKA_VERSION = "4.1.1"
_COMPLETE = ".complete"

_LOG4J2 = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaServer
        level: INFO
"""


def cache_dir() -> Path:
    root = os.environ.get("SOCKETHUB_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sockethub"
    )
    return Path(root)


def _require_tool(name: str, what: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(f"{name} is missing: {what}")
    return path


def java_binary() -> str:
    return _require_tool(
        "java", "Kafka needs Java 17 or newer (Debian: apt-get install openjdk-17-jre-headless)"
    )


def ensure_kafka_libs(version: str = KAFKA_VERSION) -> Path:
    """The directory holding Kafka's runtime jars, downloading them on first use."""
    libs = cache_dir() / f"kafka-{version}" / "libs"
    if (libs / _COMPLETE).exists():
        return libs
    java_binary()
    mvn = _require_tool("mvn", "the first start resolves Kafka from Maven Central with Maven")
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    log = libs.parent / "maven.log"
    pom = files("sockethub.devstack").joinpath("kafka-pom.xml")
    with open(log, "wb") as out:
        result = subprocess.run(
            [
                mvn, "-q", "-B", "-f", str(pom), f"-Dkafka.version={version}",
                "dependency:copy-dependencies", "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            stdout=out, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    jars = list(staging.glob("*.jar"))
    if result.returncode != 0 or not any(j.name.startswith("kafka_2.13-") for j in jars):
        shutil.rmtree(staging, ignore_errors=True)
        raise StackError(
            f"Maven could not download Kafka {version} (exit {result.returncode}); "
            f"see {log}, check access to Maven Central, then run again"
        )
    (staging / _COMPLETE).write_text(version)
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


GC_FLAGS = ("-XX:+UseG1GC", "-XX:MaxTenuringThreshold=1")
"""Most objects the broker keeps past one young collection live for minutes. Promoting
them at their first collection stops copying them between survivor spaces up to 15
times, which shortens young pauses (measurements: docs/performance-history.md)."""


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64. Like Kafka's own, it never
    starts with '-', which the storage tool's argument parser would take for a flag."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class KafkaBroker(LocalService):
    """One combined broker+controller process on loopback."""

    name = "Kafka"
    stop_timeout = 30.0

    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    host: str = "127.0.0.1"
    heap: str = "512m"
    quick_start: bool = True
    """C1 JIT only: the broker is ready sooner and short runs (tests) cost less CPU;
    long runs (``sockethub dev``, benchmarks) want the full JIT, which costs less CPU
    per record once warm."""
    node_id: int = 1
    voters: str | None = None
    """``controller.quorum.voters`` of a multi-node cluster (``id@host:port,...``); every
    node is broker and controller. None: this node alone."""
    cluster_id: str | None = None
    """Shared by the nodes of one cluster; None: a new id when the storage is formatted."""
    internal_replication: int = 1
    """Replication factor of Kafka's own topics (consumer offsets, transaction state)."""
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def _pidfile(self) -> PidFile:
        return PidFile(self.data_dir / "kafka.pid", marker=str(self.data_dir / "server.properties"))

    def _write_config(self) -> Path:
        internal = str(self.internal_replication)
        internal_isr = str(min(2, self.internal_replication))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": (
                self.voters or f"{self.node_id}@{self.host}:{self.controller_port}"
            ),
            "listeners": (
                f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "data"),
            "num.partitions": "3",
            "offsets.topic.replication.factor": internal,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": internal,
            "transaction.state.log.min.isr": internal_isr,
            "unclean.leader.election.enable": "false",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
        }
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.data_dir / "log4j2.yaml").write_text(_LOG4J2)
        return path

    def _java(
        self, libs: Path, main: str, *args: str, heap: str = "256m", quick: bool = True
    ) -> list[str]:
        jit = ["-XX:TieredStopAtLevel=1"] if quick else []
        return [
            java_binary(), f"-Xmx{heap}", *GC_FLAGS, *jit,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.yaml'}",
            "-cp", f"{libs}/*", main, *args,
        ]  # fmt: skip

    def _format_once(self, libs: Path, config: Path) -> None:
        meta = self.data_dir / "data" / "meta.properties"
        if meta.exists():
            if "cluster.id" not in meta.read_text(errors="replace"):
                raise StackError(
                    f"Kafka data dir {self.data_dir / 'data'} is corrupt (meta.properties has no "
                    "cluster.id); move it away to start with an empty log"
                )
            return
        data = self.data_dir / "data"
        if data.exists() and any(data.iterdir()):
            raise StackError(
                f"Kafka data dir {data} is not empty but was never formatted; "
                "move it away to start with an empty log"
            )
        result = subprocess.run(
            self._java(libs, "kafka.tools.StorageTool", "format", "-t",
                       self.cluster_id or new_cluster_id(),
                       "-c", str(config)),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
            raise StackError(f"formatting Kafka storage in {data} failed: {last[0]}")

    def start(self, *, timeout: float = 90.0, wait: bool = True) -> None:
        """``wait=False`` returns once the process runs: the nodes of a cluster open their
        client port only once a quorum of them runs, so they start together and then
        :meth:`wait_ready` each."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._pidfile.reap_stale()
        hint = "stop it, or point SOCKETHUB_KAFKA_BOOTSTRAP at an existing broker"
        require_free_port(self.host, self.port, "Kafka", hint)
        require_free_port(self.host, self.controller_port, "Kafka controller", hint)
        libs = ensure_kafka_libs()
        config = self._write_config()
        self._format_once(libs, config)
        cmd = self._java(libs, "kafka.Kafka", str(config), heap=self.heap, quick=self.quick_start)
        self._launch(cmd, log=self.data_dir / "kafka.log", host=self.host, port=self.port,
                     timeout=timeout, wait=wait)  # fmt: skip

    def wait_ready(self, *, timeout: float = 90.0) -> None:
        self._await_port(log=self.data_dir / "kafka.log", host=self.host, port=self.port,
                         timeout=timeout)  # fmt: skip
