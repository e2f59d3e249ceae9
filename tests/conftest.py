"""Shared fixtures: releases built once per test session, an isolated workbench cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench.synth.build import build_release


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Conftest files are plugins, not modules to search for doctests: collected as such
    (``--doctest-modules``), two of them in sibling folders without ``__init__.py``
    both import as ``conftest`` and pytest stops with "import file mismatch"."""
    return True if collection_path.name == "conftest.py" else None


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Checksum memo and catalog view files go to a per-session cache, not ~/.cache;
    the audit trail (workbench.audit) to a per-session file, not ~/.local/share."""
    os.environ["WORKBENCH_CACHE"] = str(tmp_path_factory.mktemp("wb-cache"))
    os.environ["WORKBENCH_AUDIT"] = str(tmp_path_factory.mktemp("wb-audit") / "audit.jsonl")


@pytest.fixture(scope="session")
def small_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 persons, 600 genomes, 2,000 variants (seed 7): fast, all tables non-empty.

    Treat as read-only; copy it (``shutil.copytree``) before corrupting anything.
    """
    out = tmp_path_factory.mktemp("small") / "release"
    build_release(out, persons=3_000, genotyped=600, variants=2_000, seed=7, progress=False)
    return out


@pytest.fixture(scope="session")
def default_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release `make demo` builds (20,000 persons, 5,000 genomes, 20,000 variants)."""
    out = tmp_path_factory.mktemp("default") / "release"
    build_release(out, progress=False)
    return out


@pytest.fixture(scope="session")
def postgres_dsn():
    """A PostgreSQL server started for the session (Debian's postgresql; `make test`
    installs it when run as root)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "integration"))
    from _pg import initdb_path, start_postgres

    if initdb_path() is None:
        pytest.skip("no PostgreSQL server installed (as root: apt-get install postgresql)")
    dsn, stop = start_postgres()
    yield dsn
    stop()


@pytest.fixture(scope="session")
def hail_session():
    """Hail on local[2], started once: every Hail and Spark test shares this one JVM."""
    from genomics.session import init

    return init(cores=2, driver_memory="6g")


@pytest.fixture(scope="session")
def spark(hail_session):
    """Spark SQL on Hail's Spark context (one JVM for the whole test session)."""
    from pyspark.sql import SparkSession

    s = SparkSession.builder.getOrCreate()
    s.conf.set("spark.sql.session.timeZone", "UTC")
    s.conf.set("spark.sql.shuffle.partitions", "4")
    return s


# A small GWAS on the small release: LDL in adults with a screening LDL, age + sex, 2 PCs,
# MAF >= 0.02. The GWAS widget's test and the cluster test compare against it.
SMALL_LDL_GWAS = {"trait": "ldl_cholesterol", "covariates": ["age", "female"], "pcs": 2,
                  "qc": {"min_maf": 0.02}}


@pytest.fixture(scope="session")
def small_ldl_gwas_settings() -> dict:
    return SMALL_LDL_GWAS


@pytest.fixture(scope="session")
def small_ldl_gwas(hail_session, small_release, tmp_path_factory):
    """``run_gwas`` with SMALL_LDL_GWAS on local Hail (the :class:`genomics.study.Study`)."""
    from cohort import io
    from genomics.qc import QCParams
    from genomics.study import run_gwas
    from workbench import catalog

    with catalog.open(small_release) as cat:
        return run_gwas(io.load(Path(__file__).parents[1] / "examples/ldl_screened.json"), cat,
                        trait=SMALL_LDL_GWAS["trait"], covariates=SMALL_LDL_GWAS["covariates"],
                        pcs=SMALL_LDL_GWAS["pcs"], out=tmp_path_factory.mktemp("ldl") / "ldl",
                        qc_params=QCParams(**SMALL_LDL_GWAS["qc"]))
