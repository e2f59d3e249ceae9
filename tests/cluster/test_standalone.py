"""The same cohorts and the same GWAS on a real Spark standalone cluster as on one machine.

A master and a worker run on this machine (``conftest.standalone_cluster``); a separate
driver process (``_driver.py``) starts Hail with ``master=spark://...`` and runs, through
the workbench's API, every definition of the cohort test-suite (the result cases of
``tests/unit/test_cohort_cases.py`` on their hand-written releases, and the realistic
definitions of ``tests/integration/test_engine_equality.py`` on the small release) with
``engine="spark"``, then a small GWAS (LDL, age + sex, 2 PCs) with the cohort on Spark.

Here, in the test process: each cohort's members and attrition must equal DuckDB's, the
GWAS must equal the same GWAS on local Hail, and the cluster's master must show that the
driver's application ran on its worker's executor.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cohort import io
from cohort.engine import run
from workbench import catalog
from workbench.release_io import write_release

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "unit"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from test_cohort_cases import CASES  # noqa: E402
from test_engine_equality import REALISTIC  # noqa: E402

pytestmark = pytest.mark.java
NAMES = [f"case: {c.name}" for c in CASES] + [f"realistic: {n}" for n in REALISTIC]
DRIVER_TIMEOUT = 1200      # seconds; about 2 min on an idle 2-core machine
LDL = ROOT / "examples" / "ldl_screened.json"


@pytest.fixture(scope="module")
def jobs(small_release, tmp_path_factory):
    """Every definition with the release it runs on: (name, release, definition)."""
    tmp = tmp_path_factory.mktemp("cluster-cases")
    out = []
    for k, c in enumerate(CASES):
        rel = tmp / f"case{k}"
        write_release(rel, c.prep, kind="fixture")
        out.append((f"case: {c.name}", rel, c.definition))
    out += [(f"realistic: {name}", small_release, d) for name, d in REALISTIC.items()]
    return out


@pytest.fixture(scope="module")
def on_cluster(standalone_cluster, jobs, small_release, small_ldl_gwas_settings,
               tmp_path_factory):
    """The driver's run on the cluster: (its report, its output folder)."""
    work = tmp_path_factory.mktemp("cluster-driver")
    spec = {"master": standalone_cluster.master,
            "cohorts": [{"name": n, "release": str(r), "definition": io.dumps(d)}
                        for n, r, d in jobs],
            "gwas": {"release": str(small_release), "definition": LDL.read_text(),
                     **small_ldl_gwas_settings}}
    (work / "jobs.json").write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, str(HERE / "_driver.py"), str(work / "jobs.json"),
                           str(work / "out")], capture_output=True, text=True,
                          timeout=DRIVER_TIMEOUT, cwd=ROOT)
    assert proc.returncode == 0, f"driver failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    report = json.loads((work / "out" / "result.json").read_text())
    print(f"cluster driver: cohorts {sum(c['s'] for c in report['cohorts']):.1f} s (first, "
          f"with the start: {report['cohorts'][0]['s']} s), GWAS {report['gwas']['s']} s")
    return report, work / "out"


def test_the_cluster_ran_the_work(standalone_cluster, on_cluster):
    report, _ = on_cluster
    assert report["master"] == report["hail_master"] == standalone_cluster.master
    # one Spark application: the cohorts started it (through Hail), the GWAS used it
    assert set(report["cohort_app_ids"]) == {report["gwas"]["app_id"]} == {report["app_id"]}
    assert len(report["executors"]) >= 2, report["executors"]   # the driver + an executor
    apps = {a["id"]: a for a in standalone_cluster.state()["completedapps"]}
    app = apps[report["app_id"]]           # the master ran the driver's application ...
    assert app["cores"] == 2 and app["state"] == "FINISHED"
    worker = standalone_cluster.logs / "worker"     # ... in an executor on its worker
    assert (worker / report["app_id"]).is_dir()


@pytest.fixture(scope="module")
def by_name(on_cluster):
    report, out = on_cluster
    return {c["name"]: (c, out / c["members"]) for c in report["cohorts"]}


@pytest.mark.parametrize("name", NAMES)
def test_cohort_on_cluster_equals_duckdb(jobs, by_name, name):
    rel, definition = {n: (r, d) for n, r, d in jobs}[name]
    got, members = by_name[name]
    with catalog.open(rel) as cat:
        duck = run(definition, cat, cache="refresh")
        assert got["persons"] == duck.step_persons, name
        assert got["steps"] == duck.steps
        assert_frame_equal(pl.read_parquet(members), duck.members, check_dtypes=False)


def test_gwas_on_cluster_equals_local_hail(small_ldl_gwas, on_cluster):
    """The same GWAS (tests/conftest.py: SMALL_LDL_GWAS) on local Hail."""
    report, out = on_cluster
    got = pl.read_parquet(out / "gwas.parquet")
    want = small_ldl_gwas.result.results
    assert want.height > 500
    assert report["gwas"]["n_samples"] == small_ldl_gwas.result.n_samples
    assert report["gwas"]["qc_steps"] == small_ldl_gwas.qc.steps
    keys = [c for c in want.columns if want[c].dtype in (pl.String, pl.Int32, pl.Int64)]
    assert_frame_equal(got.select(keys), want.select(keys))
    # the same arithmetic on other partitions: equal to rounding
    assert_frame_equal(got, want, check_exact=False, rel_tol=1e-6, abs_tol=1e-12)
    assert abs(report["gwas"]["lambda_gc"] - small_ldl_gwas.result.lambda_gc) < 1e-6
