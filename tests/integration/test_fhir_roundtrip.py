"""Round trip release -> FHIR (KR Core style) -> release: the same tables, table by table.

Every clinical table the FHIR feed carries comes back equal (Polars, after sorting by all
columns): person, observation_period, visit_occurrence, condition_occurrence,
drug_exposure, measurement, procedure_occurrence, death, consent, plus location and the
vocabulary (the workbench's own in both). Public-agency and lifelog tables (screening,
registries, wearables) and sample_link are not hospital FHIR data and are not exported.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from workbench.cli import app
from workbench.fhir.export import release_to_fhir
from workbench.fhir.load import REPORT_JSON, load_fhir
from workbench.schema import table_file
from workbench.synth.build import build_release

ROUND_TRIP = ("person", "observation_period", "visit_occurrence", "condition_occurrence",
              "drug_exposure", "measurement", "procedure_occurrence", "death", "consent",
              "location", "concept", "concept_ancestor", "concept_relationship")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fhir-rt")
    build_release(root / "release", persons=300, genotyped=0, variants=0, seed=1,
                  progress=False)
    release_to_fhir(root / "release", root / "fhir", bundle_size=60, progress=False)
    return root / "release", root / "fhir"


def _equal(got: pl.DataFrame, want: pl.DataFrame, name: str) -> None:
    try:
        assert_frame_equal(got, want)
    except AssertionError as e:
        raise AssertionError(f"table {name}: {e}") from e


def _table(release: Path, name: str) -> pl.DataFrame:
    df = pl.read_parquet(release / table_file(name))
    return df.sort(df.columns, nulls_last=True)


def test_ndjson_round_trip_gives_the_same_tables(exported: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    release, fhir = exported
    m = load_fhir(fhir / "ndjson", tmp_path / "back", progress=False)
    assert m["load"]["rejected"] == 0 and m["load"]["skipped"] == 0
    assert m["load"]["unmapped_codes"] == 0
    assert m["notes"] == []   # ids kept, every person has an EpisodeOfCare
    for name in ROUND_TRIP:
        _equal(_table(tmp_path / "back", name), _table(release, name), name)
    kcd7 = _table(tmp_path / "back", "condition_occurrence").filter(
        pl.col("condition_source_concept_id") != pl.col("condition_concept_id"))
    assert kcd7.height > 0   # KCD-7 source codes came back as KCD-7, mapped to KCD-8


def test_bundles_load_through_the_cli(exported: tuple[Path, Path], tmp_path: Path) -> None:
    """The first Bundle (persons 1-60) loaded with the CLI gives those persons' rows."""
    release, fhir = exported
    src = tmp_path / "one"
    src.mkdir()
    (src / "b1.json").write_bytes((fhir / "bundles" / "bundle-00001.json").read_bytes())
    info = json.loads((fhir / "export.json").read_text())
    assert info["persons"] == 300 and len([f for f in info["files"] if "bundles/" in f]) == 5
    result = CliRunner().invoke(app, ["release", "load-fhir", str(src), "--out",
                                      str(tmp_path / "back")])
    assert result.exit_code == 0, result.output
    assert "0 rejected" in result.output
    persons = _table(tmp_path / "back", "person")["person_id"]
    assert persons.len() == 60
    for name in ("person", "visit_occurrence", "measurement", "consent", "death"):
        want = _table(release, name).filter(pl.col("person_id").is_in(persons.implode()))
        _equal(_table(tmp_path / "back", name), want, name)
    report = json.loads((tmp_path / "back" / REPORT_JSON).read_text())
    assert report["rejected"] == []


def test_to_fhir_cli_and_errors(exported: tuple[Path, Path], tmp_path: Path) -> None:
    release, _ = exported
    bad = CliRunner().invoke(app, ["release", "to-fhir", str(tmp_path), "--out",
                                   str(tmp_path / "x")])
    assert bad.exit_code == 2 and "is not a release" in bad.output
    ok = CliRunner().invoke(app, ["release", "to-fhir", str(release), "--out",
                                  str(tmp_path / "f"), "--bundle-size", "1000"])
    assert ok.exit_code == 0, ok.output
    assert sorted(p.name for p in (tmp_path / "f" / "bundles").iterdir()) == [
        "bundle-00001.json"]
