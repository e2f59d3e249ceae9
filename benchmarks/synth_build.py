"""Benchmark: build a synthetic release at national scale; time, peak RSS, rows per table.

Runs ``workbench release synth`` in a child process (peak RSS read from the kernel's
rusage of children), then, as the peer in the same run, times DuckDB rewriting every table
of the built release to zstd Parquet (a read-and-write floor for the same bytes), and
reports generation time as a ratio of that floor.

    .venv/bin/python benchmarks/synth_build.py --persons 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
TARGET_SECONDS, TARGET_RSS_GB = 15 * 60, 6.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=1_000_000)
    ap.add_argument("--genotyped", type=int, default=5_000)
    ap.add_argument("--variants", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--work", type=Path, default=HERE / "work")
    ap.add_argument("--keep", action="store_true", help="keep the built release")
    args = ap.parse_args()
    out = args.work / f"synth-{args.persons}"
    cmd = [sys.executable, "-m", "workbench.cli", "release", "synth", "--out", str(out),
           "--persons", str(args.persons), "--genotyped", str(args.genotyped),
           "--variants", str(args.variants), "--seed", str(args.seed), "--force", "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    build_s = time.perf_counter() - t0
    rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    manifest = json.loads((out / "manifest.json").read_text())
    peer_s = _duckdb_rewrite(out, manifest)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    result = {
        "date": dt.date.today().isoformat(), "machine": f"{os.cpu_count()} cores, "
        f"{platform.machine()}", "arguments": vars(args) | {"work": str(args.work)},
        "build_seconds": round(build_s, 1), "peak_rss_gb": round(rss_gb, 2),
        "release_bytes": size, "duckdb_rewrite_seconds": round(peer_s, 1),
        "ratio_build_to_duckdb_rewrite": round(build_s / peer_s, 2),
        "rows": {k: v["rows"] for k, v in manifest["tables"].items()},
        "within_targets": build_s < TARGET_SECONDS and rss_gb < TARGET_RSS_GB,
    }
    res_dir = HERE / "results"
    res_dir.mkdir(exist_ok=True)
    stem = f"synth_build_{args.persons}"
    (res_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (res_dir / f"{stem}.md").write_text(_markdown(result))
    print(_markdown(result))
    if not args.keep:
        shutil.rmtree(out)


def _duckdb_rewrite(release: Path, manifest: dict) -> float:
    """Peer: DuckDB (2 threads) reads every table and writes it back as zstd Parquet."""
    tmp = release.parent / (release.name + "-duckdb-rewrite")
    tmp.mkdir(exist_ok=True)
    con = duckdb.connect()
    t0 = time.perf_counter()
    for name, t in manifest["tables"].items():
        src = str(release / t["path"]).replace("'", "''")
        dst = str(tmp / f"{name}.parquet").replace("'", "''")
        con.execute(f"COPY (SELECT * FROM read_parquet('{src}')) TO '{dst}' "
                    "(FORMAT parquet, COMPRESSION zstd)")
    elapsed = time.perf_counter() - t0
    shutil.rmtree(tmp)
    return elapsed


def _markdown(r: dict) -> str:
    a = r["arguments"]
    lines = [
        f"# Synthetic release build: {a['persons']:,} persons, {a['genotyped']:,} genomes, "
        f"{a['variants']:,} variants", "",
        f"Measured {r['date']} on {r['machine']}.", "",
        "| measure | value | target |", "|---|---|---|",
        f"| build wall time | {r['build_seconds']:,.0f} s | < {TARGET_SECONDS} s |",
        f"| peak RSS | {r['peak_rss_gb']:.2f} GB | < {TARGET_RSS_GB} GB |",
        f"| release size | {r['release_bytes'] / 2**30:.2f} GiB | |",
        f"| peer: DuckDB rewrite of the same tables | {r['duckdb_rewrite_seconds']:,.0f} s | |",
        f"| build / DuckDB rewrite | {r['ratio_build_to_duckdb_rewrite']:.2f}x | |", "",
        "| table | rows |", "|---|---:|",
    ]
    lines += [f"| {k} | {v:,} |" for k, v in r["rows"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
