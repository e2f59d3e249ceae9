"""Realism invariants of the default synthetic release, checked by SQL with tolerances.

Each test states a property a study relies on (events inside observation, drugs after
diagnoses, labs agreeing with disease, ...) and measures it on the 20,000-person release.
"""

from __future__ import annotations

import pytest
from sqlglot import exp

from workbench import catalog
from workbench.schema import table_file


@pytest.fixture(scope="module")
def cat(default_release):
    with catalog.open(default_release) as c:
        yield c


def one(cat, sql: str):
    return cat.sql(sql).fetchall()[0]


def raw(cat, table: str) -> str:
    """The release's own file of ``table`` as a FROM item: every person's rows, as the
    generator wrote them (the catalog's view of a table of a consent scope holds only the
    rows of persons who consented to it and did not withdraw)."""
    path = exp.Literal.string(str(cat.path / table_file(table)))
    return exp.func("read_parquet", path).sql("duckdb")


def _first(code_like: str) -> str:
    return (f"select person_id, min(condition_start_date) d from condition_occurrence "
            f"where condition_source_value like '{code_like}' group by 1")


EVENTS = [
    ("visit_occurrence", "visit_start_date"), ("visit_occurrence", "visit_end_date"),
    ("condition_occurrence", "condition_start_date"),
    ("condition_occurrence", "condition_end_date"),
    ("drug_exposure", "drug_exposure_start_date"), ("drug_exposure", "drug_exposure_end_date"),
    ("measurement", "measurement_date"), ("procedure_occurrence", "procedure_date"),
    ("death", "death_date"), ("health_screening", "screening_date"), ("wearable_daily", "date"),
]


@pytest.mark.parametrize(("table", "column"), EVENTS)
def test_every_event_lies_inside_an_observation_period(cat, table, column):
    outside, total = one(cat, f"""
        select count(*) filter (where not exists (
                   select 1 from observation_period o where o.person_id = e.person_id
                   and e.{column} between o.observation_period_start_date
                                      and o.observation_period_end_date)),
               count(*)
        from {table} e where e.{column} is not null""")
    assert total > 0
    assert outside == 0


@pytest.mark.parametrize("table", ["condition_occurrence", "drug_exposure", "measurement",
                                   "procedure_occurrence"])
def test_every_clinical_event_has_a_visit_of_the_same_person_and_day(cat, table):
    date_col = {"condition_occurrence": "condition_start_date",
                "drug_exposure": "drug_exposure_start_date",
                "measurement": "measurement_date", "procedure_occurrence": "procedure_date"}[table]
    orphans = one(cat, f"""select count(*) from {table} e left join visit_occurrence v
        on v.visit_occurrence_id = e.visit_occurrence_id and v.person_id = e.person_id
        and v.visit_start_date = e.{date_col} where v.visit_occurrence_id is null""")[0]
    assert orphans == 0


def test_observation_periods_do_not_overlap_and_end_at_death(cat):
    overlaps = one(cat, """select count(*) from observation_period a join observation_period b
        on a.person_id = b.person_id and a.observation_period_id < b.observation_period_id
        and b.observation_period_start_date <= a.observation_period_end_date""")[0]
    assert overlaps == 0
    after_death = one(cat, """select count(*) from observation_period o join death d
        using (person_id) where o.observation_period_end_date > d.death_date""")[0]
    assert after_death == 0
    gaps = one(cat, "select count(*) - count(distinct person_id) from observation_period")[0]
    assert 0.02 * 20_000 < gaps < 0.08 * 20_000     # ~5% have a second period


def test_incidence_depends_on_age_and_sex(cat):
    prev = dict(cat.sql(f"""
        with t2d as ({_first('E11%')}),
        p as (select person_id, 2024 - year_of_birth age from person)
        select case when age between 30 and 39 then 'young' when age between 60 and 69
               then 'old' end band, avg((t2d.person_id is not null)::int)
        from p left join t2d using (person_id) where age between 30 and 39
             or age between 60 and 69 group by 1""").fetchall())
    assert prev["old"] > 3 * prev["young"]
    mi = dict(cat.sql(f"""with mi as ({_first('I21%')})
        select gender_concept_id, avg((mi.person_id is not null)::int) from person
        left join mi using (person_id) where 2024 - year_of_birth >= 40 group by 1""").fetchall())
    assert mi[8507] > 1.5 * mi[8532]       # men more than women
    breast = one(cat, f"""select count(*) from ({_first('C50%')}) c join person using (person_id)
        where gender_concept_id = 8507""")[0]
    assert breast == 0


def test_t2d_raises_hypertension_and_ckd(cat):
    rows = dict(cat.sql(f"""
        with t as ({_first('E11%')}), h as ({_first('I10%')}), k as ({_first('N18%')})
        select t.person_id is not null, [avg((h.person_id is not null)::int),
                                        avg((k.person_id is not null)::int)]
        from person p left join t using (person_id) left join h using (person_id)
        left join k using (person_id) where 2024 - p.year_of_birth between 50 and 75
        group by 1""").fetchall())
    (htn_t2d, ckd_t2d), (htn_no, ckd_no) = rows[True], rows[False]
    assert htn_t2d > 1.4 * htn_no
    assert ckd_t2d > 2.0 * ckd_no


def test_drugs_follow_their_diagnoses(cat):
    # metformin only for T2D, never before the first T2D record; most T2D patients get it
    before, without_dx, users = one(cat, f"""with t as ({_first('E11%')}),
        m as (select person_id, min(drug_exposure_start_date) d from drug_exposure
              where drug_source_value = 'A10BA02' group by 1)
        select count(*) filter (where m.d < t.d), count(*) filter (where t.person_id is null),
               count(*) from m left join t using (person_id)""")
    t2d = one(cat, f"select count(*) from ({_first('E11%')})")[0]
    assert before == 0 and without_dx == 0
    assert users > 0.75 * t2d
    insulin = one(cat, "select count(distinct person_id) from drug_exposure "
                       "where drug_source_value like 'A10A%'")[0]
    assert 0.05 * t2d < insulin < 0.3 * t2d
    statin_no_indication = one(cat, f"""with ind as (
            {_first('E78%')} union all {_first('E11%')} union all {_first('I21%')})
        select count(distinct s.person_id) from drug_exposure s
        where s.drug_source_value like 'C10AA%' and not exists (select 1 from ind
              where ind.person_id = s.person_id and ind.d <= s.drug_exposure_start_date)""")[0]
    assert statin_no_indication == 0


def test_hba1c_is_high_mostly_in_diagnosed_diabetes(cat):
    share_dx, mean_dx, mean_no = one(cat, f"""with t as ({_first('E11%')})
        select avg((t.d is not null and m.measurement_date >= t.d)::int)
                   filter (where value_as_number >= 6.5),
               avg(value_as_number) filter (where m.measurement_date >= t.d),
               avg(value_as_number) filter (where t.d is null)
        from measurement m left join t using (person_id)
        where measurement_source_value = '4548-4'""")
    assert share_dx > 0.95
    assert mean_dx > 6.8 and mean_no < 5.8


def test_screening_values_agree_with_disease(cat):
    glucose_dx, glucose_no = one(cat, f"""with t as ({_first('E11%')})
        select avg(fasting_glucose) filter (where s.screening_date >= t.d),
               avg(fasting_glucose) filter (where t.d is null)
        from health_screening s left join t using (person_id)""")
    assert glucose_dx > glucose_no + 30
    egfr_ckd, egfr_no = one(cat, f"""with k as ({_first('N18%')})
        select avg(egfr) filter (where s.screening_date >= k.d),
               avg(egfr) filter (where k.d is null)
        from health_screening s left join k using (person_id)""")
    assert egfr_ckd < 60 < egfr_no
    ldl_lipid, ldl_no = one(cat, f"""with l as ({_first('E78%')})
        select avg(ldl_cholesterol) filter (where s.screening_date < l.d),
               avg(ldl_cholesterol) filter (where l.d is null)
        from health_screening s left join l using (person_id)""")
    assert ldl_lipid > ldl_no + 10


def test_statins_lower_ldl(cat):
    on, off = one(cat, """with s as (select person_id, min(drug_exposure_start_date) d
            from drug_exposure where drug_source_value like 'C10AA%' group by 1)
        select avg(ldl_cholesterol) filter (where h.screening_date >= s.d + 30),
               avg(ldl_cholesterol) filter (where h.screening_date < s.d)
        from health_screening h join s using (person_id)""")
    assert on < 0.8 * off


def test_fewer_steps_with_age_and_disease(cat):
    young, old = one(cat, """select avg(steps) filter (where age < 40),
            avg(steps) filter (where age >= 65)
        from (select steps, year(date) - year_of_birth age from wearable_daily
              join person using (person_id))""")
    assert young > 1.2 * old
    t2d, no = one(cat, f"""with t as ({_first('E11%')})
        select avg(steps) filter (where w.date >= t.d), avg(steps) filter (where t.d is null)
        from wearable_daily w left join t using (person_id)""")
    assert t2d < 0.95 * no


def test_lifelog_and_consent_coverage(cat):
    # wearers and the intraday subset through the catalog: the share a study sees (persons
    # with lifelog consent, not withdrawn), both of the same scope, so the ratio is like
    # for like
    wearers = one(cat, "select count(distinct person_id) / 20000 from wearable_daily")[0]
    assert 0.2 < wearers < 0.4
    intraday = one(cat, "select count(distinct person_id) from wearable_intraday_hr")[0]
    assert 0 < intraday < 0.05 * wearers * 20_000
    # withdrawn persons with a sample in the generator's file: the catalog's sample_link
    # leaves every withdrawn person out by construction (it would always count 0), and
    # what downstream tests of genomic withdrawal need is such rows in the file to hide
    withdrawn, gen_withdrawn = one(cat, f"""select avg((withdrawal_date is not null)::int),
        count(*) filter (where withdrawal_date is not null and person_id in
                         (select person_id from {raw(cat, "sample_link")}))
        from consent""")
    assert 0.005 < withdrawn < 0.015
    assert gen_withdrawn > 0       # so genomic withdrawal can be tested downstream


def test_deaths_have_causes_in_the_vocabulary_and_match_the_registry(cat):
    # deaths and their causes through the catalog: what a study sees (clinical consent)
    n, unknown = one(cat, """select count(*), count(*) filter (where c.concept_id is null)
        from death d left join concept c on c.concept_id = d.cause_concept_id""")
    assert n > 0.05 * 20_000 and unknown == 0
    # death (clinical scope) and death_registry (public scope) in the generator's files:
    # the catalog's views hide different persons (clinical consent without public, or the
    # reverse), so only the files can agree row for row; the generator writes both from
    # the same death
    mismatch = one(cat, f"""select count(*) from {raw(cat, "death")} d
        full join {raw(cat, "death_registry")} r using (person_id)
        where d.death_date is distinct from r.death_date
        or d.cause_source_value is distinct from r.underlying_cause""")[0]
    assert mismatch == 0
    # measurement and death share the clinical scope, so the views keep or hide a person's
    # rows of both together: checked through the catalog, as a study sees them
    events_after = one(cat, """select count(*) from measurement m join death d using
        (person_id) where m.measurement_date > d.death_date""")[0]
    assert events_after == 0


def test_codes_resolve_in_the_vocabulary(cat):
    checks = {
        "condition_occurrence": ("condition_concept_id", "KCD8", "S"),
        "drug_exposure": ("drug_concept_id", "ATC", "S"),
        "measurement": ("measurement_concept_id", "LOINC", "S"),
        "procedure_occurrence": ("procedure_concept_id", "SNOMED", "S"),
    }
    for table, (col, vocab, std) in checks.items():
        bad = one(cat, f"""select count(*) from {table} e left join concept c
            on c.concept_id = e.{col} where c.vocabulary_id is distinct from '{vocab}'
            or c.standard_concept is distinct from '{std}'""")[0]
        assert bad == 0, table
    # before KCD-8 (2021), mappable codes carry a KCD-7 source concept that maps to KCD-8
    kcd7, mapped = one(cat, """select count(*), count(r.concept_id_2) from condition_occurrence co
        join concept s on s.concept_id = co.condition_source_concept_id and s.vocabulary_id = 'KCD7'
        left join concept_relationship r on r.concept_id_1 = s.concept_id
             and r.relationship_id = 'Maps to' and r.concept_id_2 = co.condition_concept_id""")
    assert kcd7 > 1000 and mapped == kcd7
    after = one(cat, """select count(*) from condition_occurrence co join concept s
        on s.concept_id = co.condition_source_concept_id and s.vocabulary_id = 'KCD7'
        where co.condition_start_date >= date '2021-01-01'""")[0]
    assert after == 0


def test_screening_follows_the_biennial_programme(cat):
    per_person_year = one(cat, """select max(n) from (select person_id, year(screening_date) y,
        count(*) n from health_screening group by 1, 2)""")[0]
    assert per_person_year == 1
    minors = one(cat, """select count(*) from health_screening join person using (person_id)
        where year(screening_date) - year_of_birth < 20""")[0]
    assert minors == 0
    ldl_missing = one(cat, "select avg((ldl_cholesterol is null)::int) from health_screening")[0]
    assert 0.25 < ldl_missing < 0.5
