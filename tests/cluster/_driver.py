"""The cluster side of test_standalone: a driver process on ``spark://...`` that runs the
jobs of a JSON file with the workbench's own API, as a user would on a cluster:

    python tests/cluster/_driver.py JOBS.json OUT/

- ``$WORKBENCH_SPARK_MASTER`` names the cluster, as a deployment sets it;
- each cohort job runs with ``cohort.engine.run(..., engine="spark")``: the first one
  starts Spark, through Hail (members to ``OUT/<k>.parquet``, attrition to
  ``OUT/result.json``);
- the GWAS job runs ``genomics.study.run_gwas(..., engine="spark")`` in the same Spark
  application (the report says which application each part ran in).

The test compares all of it with DuckDB and local Hail in its own process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(jobs_file: str, out_dir: str) -> None:
    jobs = json.loads(Path(jobs_file).read_text())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["WORKBENCH_SPARK_MASTER"] = jobs["master"]
    os.environ["WORKBENCH_HAIL_MEMORY"] = "2g"      # the driver's heap
    from cohort import io
    from cohort.backends import spark_for
    from cohort.engine import run
    from workbench import catalog

    report: dict = {"cohorts": []}
    for k, job in enumerate(jobs["cohorts"]):
        t = time.perf_counter()
        with catalog.open(job["release"]) as cat:
            res = run(io.loads(job["definition"]), cat, engine="spark")
            res.members.write_parquet(out / f"{k}.parquet")
            sc = spark_for(cat).spark.sparkContext
            report.setdefault("cohort_app_ids", []).append(sc.applicationId)
        report["cohorts"].append({"name": job["name"], "persons": res.step_persons,
                                  "steps": res.steps, "members": f"{k}.parquet",
                                  "s": round(time.perf_counter() - t, 2)})
    g = jobs.get("gwas")
    if g:
        from genomics.qc import QCParams
        from genomics.study import run_gwas

        t = time.perf_counter()
        with catalog.open(g["release"]) as cat:
            study = run_gwas(io.loads(g["definition"]), cat, trait=g["trait"],
                             covariates=g["covariates"], pcs=g["pcs"], out=out / "gwas",
                             qc_params=QCParams(**g["qc"]), engine="spark")
        study.result.results.write_parquet(out / "gwas.parquet")
        import hail as hl

        report["gwas"] = {"app_id": hl.spark_context().applicationId,
                          "lambda_gc": study.result.lambda_gc,
                          "n_samples": study.result.n_samples, "qc_steps": study.qc.steps,
                          "s": round(time.perf_counter() - t, 1)}
    import hail as hl

    from genomics import session

    sc = hl.spark_context()
    report.update(master=sc.master, app_id=sc.applicationId, hail_master=session.current().master)
    # executors that took part (the driver is listed too): proof the work left this JVM
    report["executors"] = sorted(f"{e.host()}:{e.port()}" for e in
                                 sc._jsc.sc().statusTracker().getExecutorInfos())
    (out / "result.json").write_text(json.dumps(report, indent=1, default=str))
    hl.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
