"""Benchmark: ingest throughput. FHIR NDJSON resources per second (``release load-fhir``,
1 and 2 worker processes) and screening CSV rows per second (``release load-screening``),
each with the peak RSS of its process.

A synthetic release of ``--persons`` persons is built and exported to FHIR NDJSON
(``release to-fhir``); a screening extract of ``--csv-rows`` rows with Korean headers is
written from its health_screening table (rows repeated with dates shifted, so each is
new). Every measured load runs as ``python -m workbench.cli ...`` under a fresh wrapper
process, so the peak RSS (the kernel's rusage of the wrapper's children) is that load's
alone. Both wall time and the child's CPU time are recorded: on a shared machine the wall
time includes waiting for a core.

    .venv/bin/python benchmarks/ingest.py --persons 2000 --csv-rows 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_WRAP = ("import json, resource, subprocess, sys, time\n"
         "t = time.perf_counter(); subprocess.run(sys.argv[1:], check=True, "
         "stdout=subprocess.DEVNULL)\n"
         "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
         "print(json.dumps({'seconds': time.perf_counter() - t, 'peak_rss_mb': "
         "u.ru_maxrss / 1024, 'cpu_seconds': u.ru_utime + u.ru_stime}))\n")


def measure(args: list[str]) -> dict:
    """Run ``workbench ARGS`` in a child of a fresh wrapper: wall s, CPU s, peak RSS."""
    cmd = [sys.executable, "-c", _WRAP, sys.executable, "-m", "workbench.cli", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def screening_csv(release: Path, path: Path, rows: int) -> int:
    """A screening extract with Korean headers from the release's health_screening."""
    import polars as pl

    from workbench.schema import table_file
    from workbench.screening_load import COLUMNS

    src = pl.read_parquet(release / table_file("health_screening"))
    header = {col: headers[0] for col, headers, _, _ in COLUMNS}
    reps = max(1, -(-rows // src.height))
    parts = [src.with_columns(pl.col("screening_date") + pl.duration(days=3650 + k))
             for k in range(reps)]
    df = pl.concat(parts).head(rows).with_columns(
        pl.col("screening_date").dt.strftime("%Y%m%d"))
    df.rename(header).write_csv(path)
    return df.height


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=2_000)
    ap.add_argument("--csv-rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--work", type=Path, default=HERE / "work" / "ingest")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    from workbench.fhir.export import release_to_fhir
    from workbench.synth.build import build_release

    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    release = work / "release"
    build_release(release, persons=args.persons, genotyped=0, variants=0, seed=args.seed,
                  progress=False)
    info = release_to_fhir(release, work / "fhir", progress=False)
    resources = sum(info["resources"].values())
    ndjson = work / "fhir" / "ndjson"
    ndjson_bytes = sum(p.stat().st_size for p in ndjson.iterdir())
    fhir_runs = {}
    for workers in (1, 2):
        r = measure(["release", "load-fhir", str(ndjson), "--out", str(work / f"fhir-{workers}"),
                     "--workers", str(workers)])
        r["resources_per_second"] = round(resources / r["seconds"])
        fhir_runs[workers] = {k: round(v, 2) if isinstance(v, float) else v
                              for k, v in r.items()}
    csv_path = work / "screening.csv"
    rows = screening_csv(release, csv_path, args.csv_rows)
    c = measure(["release", "load-screening", str(csv_path), "--base", str(release),
                 "--out", str(work / "release-v2")])
    manifest = json.loads((work / "release-v2" / "manifest.json").read_text())
    c["rows_per_second"] = round(rows / c["seconds"])
    load_avg = os.getloadavg()
    result = {
        "date": dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, load average "
                   f"{load_avg[0]:.1f} at the end (other jobs share the cores)",
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "fhir": {"resources": resources, "by_type": info["resources"],
                 "ndjson_mb": round(ndjson_bytes / 2**20, 1),
                 "runs": {f"workers_{w}": r for w, r in fhir_runs.items()}},
        "csv": {"rows": rows, "csv_mb": round(csv_path.stat().st_size / 2**20, 1),
                "loaded": manifest["source"]["loaded"],
                "rejected": manifest["source"]["rejected"],
                **{k: round(v, 2) if isinstance(v, float) else v for k, v in c.items()}},
    }
    res_dir = HERE / "results"
    res_dir.mkdir(exist_ok=True)
    stem = f"ingest_{args.persons}"
    (res_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (res_dir / f"{stem}.md").write_text(_markdown(result))
    print(_markdown(result))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def _markdown(r: dict) -> str:
    f, c = r["fhir"], r["csv"]
    lines = [
        f"# Ingest: FHIR NDJSON ({f['resources']:,} resources, {r['arguments']['persons']:,} "
        f"persons) and screening CSV ({c['rows']:,} rows)", "",
        f"Measured {r['date']} on {r['machine']}.", "",
        "| load | input | wall s | CPU s | throughput | peak RSS |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, run in f["runs"].items():
        lines.append(f"| load-fhir --{name.replace('_', ' ')} | {f['ndjson_mb']} MB NDJSON | "
                     f"{run['seconds']:,.1f} | {run['cpu_seconds']:,.1f} | "
                     f"{run['resources_per_second']:,} resources/s | "
                     f"{run['peak_rss_mb']:,.0f} MB |")
    lines.append(f"| load-screening (new version) | {c['csv_mb']} MB CSV | {c['seconds']:,.1f} | "
                 f"{c['cpu_seconds']:,.1f} | {c['rows_per_second']:,} rows/s | "
                 f"{c['peak_rss_mb']:,.0f} MB |")
    lines += ["", "FHIR resources by type: " + ", ".join(
        f"{k} {v:,}" for k, v in f["by_type"].items()) + ".",
        "The screening load time includes writing the whole new release version "
        "(every table of the parent copied, health_screening merged).",
        "CPU s is the load process's user + system time; wall time above it is waiting "
        "for a core or for I/O."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
