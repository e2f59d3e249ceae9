"""``workbench doctor``: what the machine has, and what to do about what it lacks.

Each check returns (ok, what was found, what to do if not ok).

>>> ok, found, todo = check_python()
>>> ok
True
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

Check = tuple[bool, str, str]


def check_python() -> Check:
    v = sys.version_info
    return (v[:2] == (3, 11), platform.python_version(),
            "use Python 3.11: run `make test` or env/bootstrap.sh to create .venv")


def java_version() -> str | None:
    """Major version of the `java` on PATH (JAVA_HOME first), or None."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True,
                             timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    return m.group(2) if m.group(1) == "1" else m.group(1)


def check_java() -> Check:
    v = java_version()
    return (v in ("11", "17"), f"Java {v}" if v else "not found",
            "Hail needs Java 11 or 17: apt-get install -y openjdk-17-jre-headless "
            "(or set JAVA_HOME)")


def check_package(name: str, todo: str) -> Check:
    try:
        return True, md.version(name), todo
    except md.PackageNotFoundError:
        return False, "not installed", todo


def check_resources() -> Check:
    import psutil

    cores = os.cpu_count() or 1
    mem = psutil.virtual_memory().total / 2**30
    return (mem >= 4, f"{cores} cores, {mem:.1f} GiB memory",
            "Hail and the synthetic build want at least 4 GiB of memory")


def check_release(release: Path) -> Check:
    from workbench import catalog
    from workbench.errors import WorkbenchError

    if not (release / "manifest.json").exists():
        return (False, f"no release at {release}",
                "build one with `make demo` or `workbench release synth --out DIR`")
    try:
        with catalog.open(release) as cat:
            n = cat.manifest["tables"]["person"]["rows"]
            return True, f"{cat.release_id} at {release} ({n:,} persons)", ""
    except WorkbenchError as e:
        return False, f"release at {release} fails its checks: {e.message}", e.hint or ""


_HAIL_SMOKE = ("import hail as hl; hl.init(quiet=True, master='local[1]', "
               "spark_conf={'spark.ui.enabled': 'false'}); "
               "print(hl.utils.range_table(10).aggregate(hl.agg.count())); hl.stop()")


def check_hail_smoke(timeout: int = 240) -> Check:
    """Start Hail in a subprocess on one core and count a 10-row table."""
    try:
        p = subprocess.run([sys.executable, "-c", _HAIL_SMOKE], capture_output=True, text=True,
                           timeout=timeout, cwd=os.environ.get("TMPDIR", "/tmp"))
    except subprocess.TimeoutExpired:
        return False, f"hl.init did not finish in {timeout}s", "check Java and memory"
    ok = p.returncode == 0 and p.stdout.strip().endswith("10")
    last = (p.stderr.strip().splitlines() or ["no output"])[-1][:200]
    return (ok, "hl.init + range_table(10) ok" if ok else f"failed: {last}",
            "install Java 17 and the genomics extra (`make test` sets both up)")


def run_checks(release: Path, *, hail: bool = True, echo: Callable[[str], None] = print) -> bool:
    """Run every check, print one line each, return True when all pass."""
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("python", check_python), ("java", check_java), ("resources", check_resources),
        ("duckdb", lambda: check_package("duckdb", "pip install duckdb")),
        ("polars", lambda: check_package("polars", "pip install polars")),
        ("hail", lambda: check_package("hail", "install the genomics extra: "
                                               "pip install 'biobank-workbench[genomics]'")),
        ("spark", lambda: check_package("pyspark", "comes with hail (genomics extra)")),
        ("release", lambda: check_release(release)),
    ]
    if hail:
        checks.append(("hail smoke", check_hail_smoke))
    all_ok = True
    for name, fn in checks:
        ok, found, todo = fn()
        all_ok &= ok or name == "release"   # a missing release is reported, not fatal
        echo(f"{'ok ' if ok else 'FAIL'} {name:<11} {found}")
        if not ok and todo:
            echo(f"     {'':<11} -> {todo}")
    return all_ok
