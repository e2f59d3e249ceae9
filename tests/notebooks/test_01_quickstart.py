"""01_quickstart on the small release: its counts against the Polars reference."""

from __future__ import annotations

from _nbrun import outputs_text
from reference.polars_cohort import evaluate

from cohort.builder import age, cohort, condition, drug
from workbench import catalog


def _definition():
    """The notebook's cohort, rebuilt here (the recorded hash proves it is the same)."""
    return (cohort("T2D starting metformin")
            .entry(condition("KCD8", "E11").first(), prior_observation=365)
            .require("aged 40-79 at diagnosis", age(40, 79))
            .require("metformin within 90 days", drug("ATC", "A10BA02").within(0, 90))
            .exclude("no insulin before", drug("ATC", "A10A").within(None, -1))
            .build())


def test_quickstart_counts_match_the_polars_reference(published_quickstart, small_release):
    path, rec = published_quickstart
    d = _definition()
    assert rec.definitions == {d.name: d.content_hash()}
    with catalog.open(small_release) as cat:
        members, steps = evaluate(d, small_release, cat)
        assert rec.release["release_id"] == cat.release_id
    assert rec.results["persons"]["value"] == members["subject_id"].n_unique() > 20
    rows = rec.results["attrition"]["rows"]
    assert [r[0] for r in rows] == ["entry events", *[r.name for r in d.inclusion_rules]]
    assert [int(r[1].replace(",", "")) for r in rows] == steps
    shown = outputs_text(path)
    assert f"{members['subject_id'].n_unique()} persons" in shown


def test_quickstart_records_the_environment_and_release(published_quickstart):
    _, rec = published_quickstart
    env = rec.environment
    assert len(env["lock_sha256"]) == 64 and env["python"].startswith("3.11")
    assert rec.release["checksums"]["table:person"] and rec.release["seed"] == 7
    age = rec.results["age_mean"]
    assert 40 <= age["value"] <= 79 and age["tolerance"] == 1e-6
