"""Genotype criteria (carriers of variants) on a hand-written carrier table, no Hail.

A small hand-made release (persons, E11 diagnoses, consent with withdrawals and refusals
of genomic use, a sample link with an unlinked and a doubly-linked person) gets a
hand-written carrier table in the workbench cache, where the catalog finds it. Every
definition's members and attrition are compared with an independent Polars computation.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cohort import io
from cohort import model as m
from cohort.atlas import AtlasUnsupportedError, to_atlas
from cohort.builder import (
    age,
    all_of,
    any_of,
    carriers,
    cohort,
    condition,
    observation_period,
)
from cohort.describe import describe, diff
from cohort.engine import compile_for, run
from cohort.errors import DefinitionError
from workbench import catalog
from workbench.errors import ReleaseError
from workbench.manifest import sha256_file
from workbench.release_io import write_release
from workbench.schema import GENOTYPE_VCF
from workbench.synth.vocabulary import concept_id

N_PERSONS, N_LINKED = 300, 220
E11 = concept_id("KCD8", "E11.9")
# (contig, position, ref, alt); chr1:1500 is multi-allelic (two alt alleles)
SITES = [("chr1", 1000, "A", "G"), ("chr1", 1500, "C", "T"), ("chr1", 1500, "C", "G"),
         ("chr1", 5000, "G", "A"), ("chr2", 200, "T", "C"), ("chrX", 3_000_000, "A", "C")]
T2D = condition("KCD8", "E11")


class World:
    """The release, its tables as Polars frames, and the carrier calls."""

    def __init__(self, root: Path, rng: np.random.Generator) -> None:
        pids = np.arange(1, N_PERSONS + 1)
        self.person = pl.DataFrame({"person_id": pids, "gender_concept_id": 8507,
                                    "year_of_birth": rng.integers(1940, 2000, N_PERSONS),
                                    "location_id": 1})
        self.period = pl.DataFrame({"observation_period_id": pids, "person_id": pids,
                                    "observation_period_start_date": dt.date(2010, 1, 1),
                                    "observation_period_end_date": dt.date(2020, 12, 31)})
        diag = pids[rng.random(N_PERSONS) < 0.7]
        self.condition = pl.DataFrame({
            "condition_occurrence_id": np.arange(len(diag)), "person_id": diag,
            "condition_concept_id": E11,
            "condition_start_date": [dt.date(2012, 1, 1) + dt.timedelta(days=int(d))
                                     for d in rng.integers(0, 2000, len(diag))]})
        with_row = pids[: N_PERSONS - 15]                    # the last 15 have no consent row
        self.consent = pl.DataFrame({
            "person_id": with_row, "consent_date": dt.date(2009, 1, 1), "clinical": True,
            "public": True, "lifelog": False, "genomic": rng.random(len(with_row)) < 0.8,
            "withdrawal_date": [dt.date(2021, 3, 1) if w else None
                                for w in rng.random(len(with_row)) < 0.1]})
        linked = pids[:N_LINKED]
        self.link = pl.DataFrame({"person_id": [*linked, 5],
                                  "sample_id": [f"S{p:04d}" for p in linked] + ["S9005"]})
        samples = [*self.link["sample_id"], *[f"U{k:03d}" for k in range(10)]]   # + unlinked
        rows = []
        for contig, pos, ref, alt in SITES:
            for s in samples:
                if rng.random() < 0.3:
                    hom = rng.random() < 0.35 and contig != "chrX"
                    rows.append((s, contig, pos, ref, alt, 2 if hom else 1))
        self.carriers = pl.DataFrame(rows, schema={
            "sample_id": pl.String, "contig": pl.String, "position": pl.Int32, "ref": pl.String,
            "alt": pl.String, "n_alt": pl.Int8}, orient="row").sort(
            "contig", "position", "ref", "alt", "sample_id")
        self.root = root / "release"
        vcf = root / "variants.vcf.bgz"
        vcf.write_bytes(b"a stand-in: only its checksum keys the carrier table\n")
        write_release(self.root, {
            "person": self.person.to_arrow(), "observation_period": self.period.to_arrow(),
            "condition_occurrence": self.condition.to_arrow(), "consent": self.consent.to_arrow(),
            "sample_link": self.link.to_arrow()}, kind="fixture",
            extra={"files": {GENOTYPE_VCF: {"sha256": sha256_file(vcf),
                                            "bytes": vcf.stat().st_size}}})
        (self.root / GENOTYPE_VCF).parent.mkdir(parents=True)
        vcf.rename(self.root / GENOTYPE_VCF)

    def write_carriers(self) -> Path:
        path = catalog.carrier_table_path(catalog.load_manifest(self.root))
        path.parent.mkdir(parents=True, exist_ok=True)
        self.carriers.write_parquet(path)
        return path

    def withdrawn(self) -> set[int]:
        return set(self.consent.filter(pl.col("withdrawal_date").is_not_null())["person_id"])

    def scoped(self, rows: pl.DataFrame, scope: str) -> pl.DataFrame:
        """``rows`` of persons whose consent row has ``scope`` true and no withdrawal (the
        consent rule, by hand; a person without a consent row consented to nothing)."""
        ok = self.consent.filter(pl.col(scope) & pl.col("withdrawal_date").is_null())
        return rows.join(ok.select("person_id"), on="person_id", how="semi")

    def entry_persons(self) -> set[int]:
        """Persons with an E11 diagnosis (all inside observation) in a row they consented
        to: condition_occurrence needs clinical consent, not withdrawn (the last 15
        persons have no consent row, so none of their diagnoses is used)."""
        return set(self.scoped(self.condition, "clinical")["person_id"])

    def raw_carriers(self, c: m.GenotypeCriterion) -> pl.DataFrame:
        """Carrier calls matching the criterion, with their person (no consent filter)."""
        g = self.carriers
        if c.region is not None:
            contig, span = c.region.split(":")
            lo, hi = (int(x) for x in span.split("-"))
            g = g.filter((pl.col("contig") == contig) & pl.col("position").is_between(lo, hi))
        else:
            wanted = pl.DataFrame([v.split(":") for v in c.variants or []], orient="row",
                                  schema=["contig", "position", "ref", "alt"]).with_columns(
                pl.col("position").cast(pl.Int32))
            g = g.join(wanted, on=["contig", "position", "ref", "alt"], how="semi")
        g = g.filter(pl.col("n_alt") >= 1 if c.zygosity == "carrier" else pl.col("n_alt") == 2)
        return g.join(self.link, on="sample_id")

    def carrier_persons(self, c: m.GenotypeCriterion) -> set[int]:
        ok = self.consent.filter(pl.col("genomic") & pl.col("withdrawal_date").is_null())
        return set(self.raw_carriers(c).join(ok, on="person_id", how="semi")["person_id"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """The release with its carrier table, under a cache of this module's own."""
    root = tmp_path_factory.mktemp("genotype")
    before = os.environ["WORKBENCH_CACHE"]
    os.environ["WORKBENCH_CACHE"] = str(root / "cache")
    try:
        w = World(root, np.random.default_rng(11))
        w.write_carriers()
        yield w
    finally:
        os.environ["WORKBENCH_CACHE"] = before


@pytest.fixture(scope="module")
def cat(world: World):
    with catalog.open(world.root) as c:
        yield c


def crit(req) -> m.GenotypeCriterion:
    return req.criterion


ONE = carriers("chr1:1000:A:G")
LIST = carriers("2:200:t:c", "chr1:5000:G:A", "chr3:1:A:C")        # chr3 is nowhere
MULTI = carriers("chr1:1500:C:G")                                     # second alt allele
REGION = carriers(region="chr1:1-1,500")                              # 1000, 1500 (both)
REGION_X = carriers(region="X:2,999,000-3,000,000")
HOM = carriers("chr1:1000:A:G", "chr1:5000:G:A", zygosity="homozygous_alt")
HOM_REGION = carriers(region="chr1:1-10000", zygosity="homozygous_alt")


def _members(res) -> list[int]:
    return res.members["subject_id"].unique().sort().to_list()


CASES = {
    "one variant": (lambda b: b.require("carrier", ONE),
                    lambda w, base: base & w.carrier_persons(crit(ONE))),
    "a list (contig and case normalised, one absent)": (
        lambda b: b.require("carrier", LIST),
        lambda w, base: base & w.carrier_persons(crit(LIST))),
    "the second alt allele of a multi-allelic site": (
        lambda b: b.require("carrier", MULTI),
        lambda w, base: base & w.carrier_persons(crit(MULTI))),
    "a region": (lambda b: b.require("in region", REGION),
                 lambda w, base: base & w.carrier_persons(crit(REGION))),
    "a region on chrX (haploid-style calls)": (
        lambda b: b.require("in region", REGION_X),
        lambda w, base: base & w.carrier_persons(crit(REGION_X))),
    "homozygous alt, a list": (lambda b: b.require("hom", HOM),
                               lambda w, base: base & w.carrier_persons(crit(HOM))),
    "homozygous alt, a region": (lambda b: b.require("hom", HOM_REGION),
                                 lambda w, base: base & w.carrier_persons(crit(HOM_REGION))),
    "exclusion: not a carrier": (lambda b: b.exclude("not carrier", ONE),
                                 lambda w, base: base - w.carrier_persons(crit(ONE))),
    "any of two criteria": (
        lambda b: b.require_any("either", ONE, MULTI),
        lambda w, base: base & (w.carrier_persons(crit(ONE)) | w.carrier_persons(crit(MULTI)))),
    "all of two criteria with age, in a nested group": (
        lambda b: b.require("both", all_of(ONE, any_of(LIST, age(None, 55)))),
        None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_members_and_attrition_match_polars(world: World, cat, name: str):
    rule, expected = CASES[name]
    base = world.entry_persons()
    if expected is None:   # the nested case: carriers of ONE and (LIST or aged <= 55)
        age_at = (world.scoped(world.condition, "clinical").join(world.person, on="person_id")
                  .group_by("person_id").agg(pl.col("condition_start_date").min(),
                                             pl.col("year_of_birth").first())
                  .filter(pl.col("condition_start_date").dt.year() - pl.col("year_of_birth")
                          <= 55))
        young = set(age_at["person_id"])
        want = base & world.carrier_persons(crit(ONE)) & (
            world.carrier_persons(crit(LIST)) | young)
    else:
        want = expected(world, base)
    assert 0 < len(want) < len(base), "a case that cannot tell right from wrong"
    res = run(rule(cohort(name).entry(T2D)).build(), cat)
    assert _members(res) == sorted(want)
    assert res.step_persons == [len(base), len(want)]


def test_consent_and_withdrawal_keep_carriers_out(world: World, cat):
    """Carriers without genomic consent, or withdrawn, are never counted; the data has
    both kinds among the carriers (else this test could not fail)."""
    c = crit(REGION)
    raw = set(world.raw_carriers(c)["person_id"])
    refused = set(world.consent.filter(~pl.col("genomic"))["person_id"])
    no_row = set(world.person["person_id"]) - set(world.consent["person_id"])
    assert raw & refused and raw & world.withdrawn()
    d = cohort("all carriers").entry(condition("KCD8", "E11")).require("c", REGION).build()
    got = set(_members(run(d, cat)))
    assert got and not got & (refused | world.withdrawn() | no_row)
    assert got == world.entry_persons() & raw - refused - no_row


def test_a_person_with_two_samples_carries_what_either_carries(world: World, cat):
    second = world.carriers.filter(pl.col("sample_id") == "S9005")
    first = world.carriers.filter(pl.col("sample_id") == "S0005")
    only_second = second.join(first, on=["contig", "position", "ref", "alt"], how="anti")
    assert only_second.height, "seed gives person 5's second sample a variant of its own"
    v = only_second.row(0, named=True)
    d = (cohort("p5").entry(condition("KCD8", "E11"))
         .require("c", carriers(f"{v['contig']}:{v['position']}:{v['ref']}:{v['alt']}")).build())
    got = set(_members(run(d, cat)))
    assert (5 in got) == (5 in world.entry_persons() and 5 in world.carrier_persons(
        crit(carriers(f"{v['contig']}:{v['position']}:{v['ref']}:{v['alt']}"))))


def test_the_view_is_derived_and_the_lock_still_holds(world: World, cat, tmp_path):
    assert cat.has("genotype_carrier") and "genotype_carrier" not in cat.tables
    assert cat.scalar("select count(*) from genotype_carrier") == world.carriers.height
    other = tmp_path / "other.parquet"
    world.carriers.write_parquet(other)
    with pytest.raises(Exception, match="(?i)permission|not allowed"):
        cat.sql(f"select count(*) from read_parquet('{other}')").fetchall()


def test_sql_renders_for_every_dialect(cat):
    d = cohort("x").entry(T2D).require("c", LIST).require("r", REGION).build()
    for dialect in ("duckdb", "spark", "postgres"):
        sql = compile_for(d, cat, dialect).sql()
        assert "genotype_carrier" in sql and "'chr2'" in sql


# --- the table missing or damaged -------------------------------------------------------

def test_missing_carrier_table_says_what_to_run(world: World, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "empty-cache"))
    d = cohort("x").entry(T2D).require("carrier", ONE).build()
    with catalog.open(world.root) as c, pytest.raises(DefinitionError) as err:
        assert not c.has("genotype_carrier")
        run(d, c, cache="refresh")   # (its result is cached from the tests above)
    assert err.value.path == "inclusion_rules[0].group.items[0].criterion"
    assert ("genotype criteria need the carrier table: run `workbench genomics carriers "
            "--release DIR` (once per release)") in err.value.message


def test_release_without_genotypes_has_no_carrier_table(tmp_path):
    write_release(tmp_path / "r", {"person": [{"person_id": 1}], "observation_period": [
        {"observation_period_id": 1, "person_id": 1,
         "observation_period_start_date": "2010-01-01",
         "observation_period_end_date": "2020-12-31"}]}, kind="fixture")
    with catalog.open(tmp_path / "r") as c:
        assert catalog.carrier_table_path(c.manifest) is None
        with pytest.raises(DefinitionError, match="need the carrier table"):
            run(cohort("x").entry(observation_period()).require("c", ONE).build(), c)


def test_damaged_carrier_table_is_a_release_error(world: World, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    path = catalog.carrier_table_path(catalog.load_manifest(world.root))
    path.parent.mkdir(parents=True)
    world.carriers.drop("n_alt").write_parquet(path)
    with pytest.raises(ReleaseError, match="carrier table .* expected") as err:
        catalog.open(world.root)
    assert "--refresh" in str(err.value)
    path.write_bytes(b"not parquet")
    with pytest.raises(ReleaseError, match="not a readable Parquet"):
        catalog.open(world.root)


# --- the model, words, builder, ATLAS -------------------------------------------------

RULE = "inclusion_rules[0].group.items[0].criterion"


@pytest.mark.parametrize(("criterion", "path", "message"), [
    ({"variants": ["chr1:100:A"]}, "variants[0]", "is not chrom:pos:ref:alt"),
    ({"variants": ["chr1:100:A:G", "chr1:0:A:G"]}, "variants[1]", "whole number >= 1"),
    ({"variants": ["chr1:100:A:Z"]}, "variants[0]", "alt allele 'Z'"),
    ({"variants": ["chr1:100:A:a"]}, "variants[0]", "equals the ref"),
    ({"variants": ["chr 1:100:A:G"]}, "variants[0]", "not a contig name"),
    ({"variants": []}, "variants", "at least one variant"),
    ({"region": "chr1:2000-1000"}, "region", "start 2000 is after end 1000"),
    ({"region": "chr1"}, "region", "is not chrom:start-end"),
    ({"region": "chr1:0-5"}, "region", "whole numbers >= 1"),
    ({}, "", "exactly one of variants"),
    ({"variants": ["1:1:A:G"], "region": "1:1-2"}, "", "exactly one of variants"),
    ({"variants": ["1:1:A:G"], "zygosity": "het"}, "zygosity", "'carrier' or 'homozygous_alt'"),
])
def test_bad_criteria_name_their_json_path(criterion, path, message):
    data = {"name": "x", "entry": {"criteria": [{"kind": "death"}]}, "inclusion_rules": [
        {"name": "r", "group": {"items": [{"kind": "requirement", "criterion": {
            "kind": "genotype", **criterion}}]}}]}
    with pytest.raises(DefinitionError) as err:
        io.from_data(data)
    assert err.value.path == (f"{RULE}.{path}" if path else RULE)
    assert message in err.value.message


def test_normalised_form_round_trips():
    c = m.GenotypeCriterion(variants=["1:1000:a:g", "CHRX:5:C:T", "MT:7:A:G"])
    assert c.variants == ["chr1:1000:A:G", "chrX:5:C:T", "chrM:7:A:G"]
    assert m.GenotypeCriterion(region="x:1,000-2,000").region == "chrX:1000-2000"
    d = cohort("x").entry(T2D).require("c", carriers("1:1:A:G")).exclude("h", HOM).build()
    back = io.loads(io.dumps(d))
    assert back == d and back.content_hash() == d.content_hash()


def test_builder_and_describe():
    d = (cohort("carriers").entry(T2D).require("APOE e4", carriers("chr19:44908684:T:C"))
         .require("two", carriers("chr1:1000:A:G", "2:5:C:T"))
         .require("hom", carriers(region="chr1:1000-2000", zygosity="homozygous_alt"))
         .exclude("no LoF", carriers(*[f"chr1:{p}:A:G" for p in range(1, 8)])).build())
    rules = [r.group.items[0].criterion for r in d.inclusion_rules]
    assert rules[2] == m.GenotypeCriterion(region="chr1:1000-2000", zygosity="homozygous_alt")
    text = describe(d)
    assert "1. APOE e4: carries chr19:44908684:T:C" in text
    assert "2. two: carries any of 2 variants (chr1:1000:A:G, chr2:5:C:T)" in text
    assert ("3. hom: is homozygous for the alternate allele of a variant in chr1:1000-2000"
            in text)
    assert ("4. no LoF: not (carries any of 7 variants (chr1:1:A:G, chr1:2:A:G, chr1:3:A:G, "
            "chr1:4:A:G, chr1:5:A:G, and 2 more))") in text
    assert describe(cohort("h").entry(T2D).require("h", carriers(
        "chr1:1:A:G", zygosity="homozygous_alt")).build()).endswith(
        "is homozygous for the alternate allele of chr1:1:A:G\n"
        "Exit: at the end of the observation period.")
    with pytest.raises(ValueError, match="exactly one of"):
        carriers()
    with pytest.raises(ValueError, match="exactly one of"):
        carriers("chr1:1:A:G", region="chr1:1-2")


def test_diff_ignores_variant_order_only():
    a = cohort("a").entry(T2D).require("c", carriers("chr1:1:A:G", "chr2:2:C:T")).build()
    b = cohort("b").entry(T2D).require("c", carriers("2:2:C:T", "1:1:A:G")).build()
    assert diff(a, b) == []
    c = cohort("c").entry(T2D).require("c", carriers("chr1:1:A:G", "chr2:2:C:T",
                                                     zygosity="homozygous_alt")).build()
    assert diff(a, c) == [f"{RULE.replace('criterion', 'criterion.zygosity')}: "
                          "'carrier' -> 'homozygous_alt'"]


def test_atlas_export_refuses_genotype_criteria():
    d = cohort("x").entry(T2D).require("adult", age(18)).require("c", ONE).build()
    with pytest.raises(AtlasUnsupportedError) as err:
        to_atlas(d)
    assert err.value.path == "inclusion_rules[1].group.items[0].criterion"
    assert "genotype criteria (variant carriers) have no Circe equivalent" in str(err.value)
