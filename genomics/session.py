"""One Hail session per process: defaults from the machine, quiet, files under the cache.

``init()`` starts Hail once (later calls return the running session). Local by default,
on every core with half the memory for the driver; temp files and logs go under the
workbench cache (``$WORKBENCH_CACHE/hail``). To use an existing Spark cluster, pass
``master=`` or set ``$WORKBENCH_SPARK_MASTER`` (``spark://host:7077``, ``yarn``; on
Dataproc, where Hail comes installed, ``yarn``), and put ``tmp_dir`` on storage every
worker can read (``$WORKBENCH_HAIL_TMP``, e.g. ``hdfs:///tmp/hail`` or ``gs://bucket/tmp``).

>>> import genomics.session as s
>>> s.default_master({"WORKBENCH_SPARK_MASTER": "yarn"}, cores=8)
'yarn'
>>> s.default_master({}, cores=2)
'local[2]'
"""

from __future__ import annotations

import atexit
import os
import shutil
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from workbench.catalog import cache_dir
from workbench.errors import EnvironmentProblem


@dataclass(frozen=True)
class Session:
    """What ``init`` started: the Spark master, driver memory, cores and where files go."""

    master: str
    cores: int
    driver_memory: str
    tmp_dir: str
    log: Path


_SESSION: Session | None = None


def default_master(env: Mapping[str, str], *, cores: int) -> str:
    """$WORKBENCH_SPARK_MASTER, else ``local[cores]``."""
    return env.get("WORKBENCH_SPARK_MASTER") or f"local[{cores}]"


def default_driver_memory(total_bytes: int) -> str:
    """Half the machine's memory for the (local) driver, between 2 and 64 GiB.

    >>> default_driver_memory(24 * 2**30)
    '12g'
    """
    gib = total_bytes // 2**30
    return f"{max(2, min(64, gib // 2))}g"


def init(*, master: str | None = None, cores: int | None = None,
         driver_memory: str | None = None, tmp_dir: str | None = None,
         progress: bool = False, seed: int = 42,
         spark_conf: Mapping[str, str] | None = None) -> Session:
    """Start Hail (once per process) and return the session.

    A second call returns the running session; asking it for another master is an error
    (Hail cannot restart its JVM in one process). ``spark_conf`` adds to (or overrides)
    the Spark settings, e.g. ``{"spark.executor.memory": "8g"}`` on a cluster.
    """
    global _SESSION
    if _SESSION is not None:
        if master is not None and master != _SESSION.master:
            raise EnvironmentProblem(
                f"Hail is already running on {_SESSION.master} in this process; it cannot "
                f"switch to {master}", hint="restart the Python process (kernel) first")
        return _SESSION
    _check_java()
    import psutil

    env = os.environ
    cores = cores or int(env.get("WORKBENCH_HAIL_CORES", 0)) or os.cpu_count() or 1
    master = master or default_master(env, cores=cores)
    driver_memory = driver_memory or env.get("WORKBENCH_HAIL_MEMORY") or \
        default_driver_memory(psutil.virtual_memory().total)
    root = cache_dir() / "hail"
    # this process's own temp dir (checkpoints of QC and PCA), removed when it exits
    local_tmp = root / "tmp" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    local_tmp.mkdir(parents=True, exist_ok=True)
    atexit.register(shutil.rmtree, local_tmp, True)
    tmp_dir = tmp_dir or env.get("WORKBENCH_HAIL_TMP") or str(local_tmp)
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"hail-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    conf = {"spark.driver.memory": driver_memory, "spark.ui.enabled": "false",
            "spark.sql.session.timeZone": "UTC", "spark.sql.shuffle.partitions": str(
                max(4, 2 * cores)), "spark.local.dir": str(local_tmp), **(spark_conf or {})}
    import hail as hl
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:   # someone started Spark first
        raise EnvironmentProblem(
            "a Spark context without Hail is already running in this process",
            hint="call genomics.session.init() before creating any SparkSession; "
                 "SparkSession.builder.getOrCreate() then reuses Hail's")
    with warnings.catch_warnings():
        # Debian ships Java 17; Hail 0.2.1xx runs on it though it was "built with 11"
        warnings.filterwarnings("ignore", message="Hail was built and tested with Java 11")
        hl.init(master=master, spark_conf=conf, tmp_dir=tmp_dir, local_tmpdir=str(local_tmp),
                log=str(log), quiet=True, show_progress=progress, global_seed=seed,
                app_name="biobank-workbench")
    hl.default_reference("GRCh38")
    hl.spark_context().setLogLevel("ERROR")
    _SESSION = Session(master, cores, driver_memory, tmp_dir, log)
    return _SESSION


def current() -> Session | None:
    """The running session, if ``init`` was called in this process."""
    return _SESSION


def _check_java() -> None:
    from workbench.doctor import java_version

    v = java_version()
    if v is None:
        raise EnvironmentProblem(
            "Hail needs Java, and none was found (JAVA_HOME or java on PATH)",
            hint="apt-get install -y openjdk-17-jre-headless (make test does this as root)")
    if v not in ("11", "17"):
        raise EnvironmentProblem(
            f"Hail needs Java 11 or 17; found Java {v}",
            hint="install openjdk-17-jre-headless and set JAVA_HOME to it")
