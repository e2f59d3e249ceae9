"""The carrier table built with Hail from the small release, checked against an independent
parse of its VCF; then carriers of the planted variants counted through the cohort library
(no Hail) and checked against the VCF restricted to consented, non-withdrawn persons."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from cohort.builder import carriers, cohort, observation_period
from cohort.engine import run
from workbench import catalog
from workbench.cli import app
from workbench.schema import GENOTYPE_VCF

sys.path.insert(0, str(Path(__file__).parent))
from _vcf import read_gt  # noqa: E402

pytestmark = pytest.mark.java
SORT = ["contig", "position", "ref", "alt", "sample_id"]


@pytest.fixture(scope="module")
def vcf_calls(small_release) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return read_gt(small_release / GENOTYPE_VCF)


@pytest.fixture(scope="module")
def built(hail_session, small_release):
    """The carrier table, built while a catalog opened before it stays open (the shared
    DuckDB instance is locked already), and a catalog opened after."""
    from genomics.carriers import build_carriers, carrier_path

    early = catalog.open(small_release)
    assert not early.has("genotype_carrier") and not carrier_path(early).exists()
    t0 = time.perf_counter()
    path = build_carriers(early)
    seconds = time.perf_counter() - t0
    print(f"build_carriers on the small release: {seconds:.1f} s")
    late = catalog.open(small_release)
    yield path, late
    late.close()
    early.close()


def test_carrier_table_equals_the_vcf(built, vcf_calls):
    path, cat = built
    ids, samples, g = vcf_calls
    v, s = np.nonzero(g > 0)
    want = (pl.DataFrame({"id": ids[v], "sample_id": samples[s], "n_alt": g[v, s]})
            .with_columns(pl.col("id").str.split_exact(":", 3).struct.rename_fields(
                ["contig", "position", "ref", "alt"])).unnest("id")
            .with_columns(pl.col("position").cast(pl.Int32))
            .select("sample_id", "contig", "position", "ref", "alt", "n_alt").sort(SORT))
    got = pl.read_parquet(path)
    assert got.height == want.height > 10_000
    assert got.equals(got.sort(SORT)), "the table is sorted"
    assert_frame_equal(got, want)
    assert cat.scalar("select count(*) from genotype_carrier") == want.height
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_second_build_reuses_the_table_and_the_cli_reports_it(built, small_release):
    from genomics.carriers import build_carriers

    path, cat = built
    stamp = path.stat().st_mtime_ns
    assert build_carriers(cat) == path and path.stat().st_mtime_ns == stamp
    out = CliRunner().invoke(app, ["genomics", "carriers", "--release", str(small_release)])
    assert out.exit_code == 0, out.output
    n = pl.scan_parquet(path).select(pl.len()).collect().item()
    assert out.stdout.strip() == f"{n:,} carrier calls: {path}"


def _eligible(small_release: Path) -> pl.DataFrame:
    """sample_id -> person_id of persons with genomic consent, never withdrawn, and an
    observation period (the entry event of the definitions below)."""
    read = lambda name: pl.read_parquet(small_release / catalog.load_manifest(  # noqa: E731
        small_release)["tables"][name]["path"])
    ok = read("consent").filter(pl.col("genomic") & pl.col("withdrawal_date").is_null())
    return (read("sample_link").join(ok.select("person_id"), on="person_id", how="semi")
            .join(read("observation_period").select("person_id").unique(), on="person_id",
                  how="semi"))


def test_carriers_of_planted_variants_counted_by_the_cohort_library(built, small_release,
                                                                    vcf_calls):
    _, cat = built
    ids, samples, g = vcf_calls
    link = _eligible(small_release)
    truth = cat.manifest["truth"]
    planted = [v["id"] for v in truth["ldl_cholesterol"]["variants"] + truth["t2d"]["variants"]]
    row = {vid: k for k, vid in enumerate(ids)}
    matched, checked = 0, 0
    for vid in planted:
        for zygosity, calls in (("carrier", g[row[vid]] >= 1), ("homozygous_alt",
                                                                 g[row[vid]] == 2)):
            want = set(link.filter(pl.col("sample_id").is_in(list(samples[calls])))
                       ["person_id"])
            d = (cohort(f"{vid} {zygosity}").entry(observation_period())
                 .require("carries", carriers(vid, zygosity=zygosity)).build())
            got = set(run(d, cat).members["subject_id"])
            checked += 1
            matched += got == want
            assert got == want, (vid, zygosity, len(got), len(want))
    print(f"carrier counts matched {matched} of {checked}")
    assert checked == 2 * len(planted) == 30


def test_a_region_around_a_planted_variant(built, small_release, vcf_calls, spark):
    _, cat = built
    ids, samples, g = vcf_calls
    v = cat.manifest["truth"]["t2d"]["variants"][0]
    contig, pos = v["id"].split(":")[0], int(v["id"].split(":")[1])
    lo, hi = pos - 2_000_000, pos + 2_000_000
    inside = [k for k, vid in enumerate(ids)
              if vid.split(":")[0] == contig and lo <= int(vid.split(":")[1]) <= hi]
    assert len(inside) > 1
    carrying = (g[inside] >= 1).any(axis=0)
    want = set(_eligible(small_release).filter(pl.col("sample_id").is_in(
        list(samples[carrying])))["person_id"])
    d = (cohort("region").entry(observation_period())
         .require("carries", carriers(region=f"{contig.removeprefix('chr')}:{lo}-{hi}"))
         .build())
    assert set(run(d, cat).members["subject_id"]) == want and want
    # Spark reads the same carrier table (registered by cohort.backends)
    assert set(run(d, cat, engine="spark", spark=spark).members["subject_id"]) == want
