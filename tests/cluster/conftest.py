"""A Spark standalone cluster on this machine: a master and one worker, started from the
scripts pyspark ships (``bin/spark-class``), stopped at the end of the session."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

WORKER_CORES = 2
WORKER_MEMORY = "4g"


@dataclass(frozen=True)
class Cluster:
    master: str          # spark://127.0.0.1:PORT
    ui: str              # the master's web UI (JSON at /json/)
    logs: Path

    def state(self) -> dict:
        with urllib.request.urlopen(f"{self.ui}/json/", timeout=10) as r:
            return json.load(r)


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cls: str, args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_LOG_DIR": str(log.parent), "SPARK_DAEMON_MEMORY": "512m"}
    with log.open("w") as out:
        return subprocess.Popen([str(spark_home() / "bin" / "spark-class"), cls, *args],
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A master and a worker (2 cores, 4 GiB) on 127.0.0.1, ready to take applications."""
    work = tmp_path_factory.mktemp("spark-cluster")
    port, ui_port = free_port(), free_port()
    cluster = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}", work)
    procs = [_start("org.apache.spark.deploy.master.Master",
                    ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui_port)],
                    work / "master.log")]
    try:
        procs.append(_start("org.apache.spark.deploy.worker.Worker",
                            ["--host", "127.0.0.1", "--cores", str(WORKER_CORES), "--memory",
                             WORKER_MEMORY, "--webui-port", str(free_port()), "--work-dir",
                             str(work / "worker"), cluster.master], work / "worker.log"))
        deadline = time.monotonic() + 120
        while True:
            try:
                state = cluster.state()
                if state.get("status") == "ALIVE" and state.get("aliveworkers") == 1:
                    break
            except OSError:
                pass
            dead = [p for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f.read_text()[-2000:] for f in sorted(work.glob("*.log")))
                pytest.fail(f"the standalone cluster did not start:\n{logs}")
            time.sleep(0.5)
        yield cluster
    finally:
        for p in reversed(procs):
            _stop(p)
