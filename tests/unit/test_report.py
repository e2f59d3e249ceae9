"""The release report: self-contained HTML, sections, numbers checked against Polars, privacy."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from plotly.offline import get_plotlyjs

from cohort.privacy import SmallCellPolicy, Suppressed
from workbench.errors import UsageError
from workbench.report import (
    DISEASES,
    MALE,
    bar_cells,
    count_cells,
    percent,
    write_release_report,
)
from workbench.synth.build import build_release

PERSONS = 1500
SECTION_TITLES = ("Release", "Contents", "Age and sex", "Disease prevalence",
                  "Health screening", "Lifelog", "Governance")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A small synthetic release without genotypes, built once for the module."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(root / "cache"))
        rel = root / "release"
        build_release(rel, persons=PERSONS, genotyped=0, variants=0, seed=11, progress=False)
        yield rel


@pytest.fixture(scope="module")
def report(release: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = write_release_report(release, tmp_path_factory.mktemp("out") / "report.html")
    assert out.name == "report.html" and out.is_file()
    return out.read_text(encoding="utf-8")


def _row(page: str, first_cell: str) -> list[str]:
    """The cells of the table row whose first cell is ``first_cell``."""
    match = re.search(rf"<tr><td>{re.escape(first_cell)}</td>.*?</tr>", page)
    assert match, f"no table row starting with {first_cell!r}"
    return re.findall(r"<td[^>]*>(.*?)</td>", match.group(0))


def _section(page: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">.*?</section>', page, re.S)
    assert match, f"no section {anchor!r}"
    return match.group(0)


def test_page_is_self_contained_with_plotly_inline_once(report: str) -> None:
    bundle = get_plotlyjs()
    assert report.count(bundle) == 1
    assert report.count("* plotly.js v") == 1
    rest = report.replace(bundle, "")
    assert not re.search(r"<script[^>]*\bsrc\s*=", report, re.I)
    assert "cdn.plot.ly" not in rest and "https://" not in rest
    assert rest.count("Plotly.newPlot(") == 5  # one call per figure
    assert len(report) < 8_000_000


def test_page_names_every_section_with_a_table_of_contents(report: str) -> None:
    nav = re.search(r"<nav>.*?</nav>", report, re.S).group(0)
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in report
        assert f">{title}</a>" in nav
    assert "not in this release" not in _section(report, "lifelog")


def test_row_counts_show_the_manifest(report: str, release: Path) -> None:
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["tables"]["person"]["rows"] == PERSONS
    assert _row(report, "clinical")[:3] == ["clinical", "person", f"{PERSONS:,}"]
    cells = _row(report, "vocabulary")
    assert cells[2] == f"{manifest['tables']['concept']['rows']:,}"
    assert manifest["release_id"] in report and str(manifest["seed"]) in report
    assert "No genotype files in this release." in report


def test_e11_prevalence_matches_polars(report: str, release: Path) -> None:
    """Persons with any E11 (or descendant) condition, withdrawn left out, by sex: the
    cases from condition rows under clinical consent (the report reads the catalog, whose
    condition_occurrence holds only those rows), the denominator all persons not
    withdrawn (person is an enrolment table, not scoped)."""
    person = pl.read_parquet(release / "clinical/person.parquet")
    cond = pl.read_parquet(release / "clinical/condition_occurrence.parquet")
    concept = pl.read_parquet(release / "vocabulary/concept.parquet")
    ancestor = pl.read_parquet(release / "vocabulary/concept_ancestor.parquet")
    consent = pl.read_parquet(release / "governance/consent.parquet")
    e11 = concept.filter((pl.col("vocabulary_id") == "KCD8") & (pl.col("concept_code") == "E11"))
    under = ancestor.filter(pl.col("ancestor_concept_id").is_in(e11["concept_id"].to_list()))
    ids = set(e11["concept_id"]) | set(under["descendant_concept_id"])
    withdrawn = consent.filter(pl.col("withdrawal_date").is_not_null())["person_id"].to_list()
    persons = person.filter(~pl.col("person_id").is_in(withdrawn))
    clinical = consent.filter(pl.col("clinical"), pl.col("withdrawal_date").is_null())
    cond = cond.join(clinical.select("person_id"), on="person_id", how="semi")
    cases = (cond.filter(pl.col("condition_concept_id").is_in(sorted(ids)))
             .select("person_id").unique().join(persons, on="person_id"))

    def cell(frame: pl.DataFrame, denom: pl.DataFrame) -> list[str]:
        assert frame.height >= 20  # large enough to be shown
        return [f"{frame.height:,}", f"{100 * frame.height / denom.height:.1f}%"]

    male, female = (pl.col("gender_concept_id") == MALE), (pl.col("gender_concept_id") == 8532)
    expected = (["E11", e11["concept_name"][0], e11["concept_name_ko"][0]]
                + cell(cases.filter(male), persons.filter(male))
                + cell(cases.filter(female), persons.filter(female))
                + cell(cases, persons))
    assert _row(report, "E11") == expected
    for code, _ in DISEASES:
        assert _row(report, code)


def test_small_counts_render_as_suppressed() -> None:
    policy = SmallCellPolicy(threshold=20)
    assert [label for _, label in count_cells(policy, [0, 7, 19, 20, 500])] == \
        ["0", "< 20", "< 20", "20", "500"]
    # one small cell: the smallest other non-zero cell is hidden too, labelled as such
    assert bar_cells(policy, [3, 40, 400]) == ([0, 0, 400], ["< 20", "suppressed", "400"])
    assert percent(Suppressed(20), 1000) == "suppressed"
    assert percent(50, 1000) == "5.0%"


def test_high_threshold_hides_every_person_count(release: Path, tmp_path: Path) -> None:
    """With k above the cohort size no person count, bar or bin reaches the page."""
    k = 10 * PERSONS
    page = write_release_report(release, tmp_path / "r.html",
                                policy=SmallCellPolicy(threshold=k)).read_text()
    cells = _row(page, "E11")
    assert cells[3:] == [f"&lt; {k}", "suppressed"] * 3
    assert f"&lt; {k}" in _section(page, "governance")
    assert _row(page, "clinical")[2] == f"{PERSONS:,}"  # table rows are not person counts
    figures = re.findall(r'Plotly\.newPlot\(\s*"fig-[\w-]+",\s*(\[.*?\]),\s*\{', page, re.S)
    assert len(figures) == 5
    for fig in figures:
        for trace in json.loads(fig):
            assert all(v == 0 for v in trace["x" if trace.get("orientation") == "h" else "y"])


@pytest.mark.parametrize("drop", [("lifelog",), ("lifelog", "public")])
def test_release_without_optional_domains_renders(release: Path, tmp_path: Path,
                                                  drop: tuple[str, ...]) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(release, partial)
    manifest = json.loads((partial / "manifest.json").read_text())
    for name, entry in list(manifest["tables"].items()):
        if entry["path"].split("/")[0] in drop:
            (partial / entry["path"]).unlink()
            del manifest["tables"][name]
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=2))
    page = write_release_report(partial, tmp_path / "partial.html").read_text()
    assert "wearable_daily: not in this release." in _section(page, "lifelog")
    screening = _section(page, "screening")
    assert ("not in this release" in screening) == ("public" in drop)
    assert _row(page, "lifelog")[2] == "not in this release"
    assert _row(page, "E11")


def test_write_is_atomic_and_refuses_a_directory(release: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("old")
    write_release_report(release, out)
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    with pytest.raises(UsageError, match="is a directory"):
        write_release_report(release, tmp_path)
