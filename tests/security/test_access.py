"""Access tiers and Open Lab project grants (issue 7, item 1).

Every gated function refuses a session below its tier with AccessDenied naming the tier
it needs, the session's tier and what to do, records the refusal, and works at its tier.
Sessions come from an explicit ``access.Session``, else the environment, else the default
(controlled on a synthetic release, public on any other). A project's grants restrict the
catalog's tables and columns and refuse, before running, a definition that reads more;
malformed project files are reported by file, field and problem.
"""

from __future__ import annotations

import json
import sys
import threading
import types
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from cohort import io
from cohort import model as m
from cohort.builder import (
    age,
    cohort,
    condition,
    consent,
    death,
    drug,
    has_genome,
    lifelog,
    measurement,
    member_of,
    observation_period,
    procedure,
    region,
    region_indicator,
    screening,
    sex,
    visit,
)
from cohort.characterize import compare, table1
from cohort.charview import age_sex, distribution
from cohort.dataset import build_dataset
from cohort.engine import run
from cohort.governance import needs
from cohort.widgets import CohortBuilder
from genomics.link import consented_samples, link, phenotypes
from workbench import access, audit, catalog
from workbench.access import Session
from workbench.cli import app
from workbench.errors import AccessDenied, ProjectError, ReleaseError, UsageError
from workbench.project import ALWAYS_VISIBLE, Project, load_project

HTN = cohort("hypertension").entry(condition("KCD8", "I10")).require(
    "adults", age(18, None)).build()
DRUG = cohort("statin users").entry(drug("ATC", "C10AA")).build()
TIERS = access.TIERS


class _Reached(Exception):
    """Raised by stand-ins just past the access check: the call got through."""


class _FakeMT:
    """A MatrixTable stand-in for link(): it is reached only after the access check."""

    @property
    def s(self):
        raise _Reached


def _persons(res) -> pl.DataFrame:
    return (res._members.group_by("subject_id").agg(pl.col("cohort_start_date").min())
            .rename({"subject_id": "person_id", "cohort_start_date": "index_date"}))


def _gwas(cat, res, tmp):
    from genomics.study import run_gwas

    return run_gwas(HTN, cat, trait="ldl_cholesterol", covariates=["age"], pcs=0,
                    out=tmp / "gwas")


def _run_on(cat, res, tmp):
    from cohort.backends import run_on

    class Backend:
        dialect = "duckdb"

        def query(self, sql):
            return cat.sql(sql).pl()

    return run_on(Backend(), HTN, cat)


def _genotypes(cat, res, tmp):
    from genomics.store import release_genotypes

    return release_genotypes(cat)


# name, tier needed, call(cat, result, tmp), what "works" means at the tier
GATED = {
    "CohortResult.members": ("controlled", lambda c, r, t: r.members, "frame"),
    "CohortResult.to_table": ("controlled", lambda c, r, t: r.to_table(), "value"),
    "characterize.table1": ("registered", lambda c, r, t: table1(r, c, top=3), "value"),
    "characterize.compare": ("registered", lambda c, r, t: compare(r, r, c, top=2), "value"),
    "charview.age_sex": ("registered", lambda c, r, t: age_sex(r, c), "value"),
    "charview.distribution": ("registered", lambda c, r, t: distribution(r, c, "bmi"),
                              "value"),
    "dataset.build_dataset": ("controlled", lambda c, r, t: build_dataset(
        c, r, {"person": ["person_id", "sex"]}), "value"),
    "genomics.link.consented_samples": ("controlled", lambda c, r, t: consented_samples(
        c, _persons(r)), "value"),
    "genomics.link.phenotypes": ("controlled", lambda c, r, t: phenotypes(
        c, _persons(r), ["age"]), "value"),
    "genomics.link.link": ("controlled", lambda c, r, t: link(r._members, c, _FakeMT()),
                           "reached"),
    "genomics.store.release_genotypes": ("controlled", _genotypes, "no-vcf"),
    "genomics.study.run_gwas": ("controlled", _gwas, "no-vcf"),
    "cohort.backends.run_on": ("controlled", _run_on, "value"),
}


@pytest.fixture(scope="module")
def cat(tiny_release):
    with catalog.open(tiny_release) as c:
        yield c


@pytest.fixture(scope="module")
def res(cat):
    with Session("setup", "public"):
        return run(HTN, cat)


def _denied(err: AccessDenied, need: str, have: str) -> None:
    text = str(err)
    assert f"needs the {need} tier" in text, text
    assert f"this session is {have}" in text, text
    assert "Hint:" in text and ("start the session at that tier" in text
                                or "project" in text), text


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("name", list(GATED))
def test_every_gated_function_refuses_below_its_tier_and_works_at_it(
        name, tier, cat, res, tmp_path, audit_log, monkeypatch):
    need, call, works = GATED[name]
    if works == "reached":      # link imports hail after its access check; not needed here
        monkeypatch.setitem(sys.modules, "hail", types.ModuleType("hail"))
    with Session("kim", tier):
        if access.rank(tier) < access.rank(need):
            with pytest.raises(AccessDenied) as e:
                call(cat, res, tmp_path)
            _denied(e.value, need, tier)
            last = audit.read(audit_log)[-1]
            assert last["action"] == "access.denied" and last["detail"]["needs"] == need
            assert last["user"] == "kim" and last["tier"] == tier
            assert audit.verify(audit_log).ok
            return
        if works == "frame":
            assert call(cat, res, tmp_path).height == res._members.height > 0
        elif works == "value":
            assert call(cat, res, tmp_path) is not None
        elif works == "reached":
            with pytest.raises(_Reached):
                call(cat, res, tmp_path)
        else:       # past the check, stopped by the release having no genomes
            with pytest.raises(ReleaseError, match="without genotypes"):
                call(cat, res, tmp_path)
    assert all(r["action"] != "access.denied" for r in audit.read(audit_log)) \
        if audit_log.exists() else True


def test_count_and_attrition_need_no_tier(cat):
    with Session("anon", "public"):
        res = run(HTN, cat, cache="refresh")
        assert isinstance(res.count, int) and res.count > 20
        assert res.attrition["persons"].to_list() == res.step_persons
        assert "subject_id" not in repr(res)      # no person ids in its printed form


def test_default_session_is_controlled_on_a_synthetic_release(tiny_release, audit_log):
    assert access.current({"kind": "synthetic"}).tier == "controlled"
    with catalog.open(tiny_release) as c:
        res = run(HTN, c)
        assert res.members.height > 0 and table1(res, c, top=1) is not None
    rec = audit.read(audit_log)[-1]
    assert rec["origin"] == "default" and rec["tier"] == "controlled"


def test_default_session_is_public_on_any_other_release(real_release, audit_log):
    with catalog.open(real_release) as c:
        res = run(HTN, c)
        assert isinstance(res.count, int) and res.release_kind == "national"
        with pytest.raises(AccessDenied) as e:
            table1(res, c)
        _denied(e.value, "registered", "public")
        assert "the default session" in str(e.value)
        with pytest.raises(AccessDenied):
            res.members   # noqa: B018
    assert [r["action"] for r in audit.read(audit_log)] == [
        "cohort.run", "access.denied", "access.denied"]


def test_session_from_the_environment(real_release, audit_log, monkeypatch):
    monkeypatch.setenv("WORKBENCH_USER", "env-user")
    monkeypatch.setenv("WORKBENCH_TIER", "registered")
    with catalog.open(real_release) as c:
        res = run(HTN, c)
        assert table1(res, c, top=1).persons
        with pytest.raises(AccessDenied, match="from WORKBENCH_") as e:
            res.to_table()
        _denied(e.value, "controlled", "registered")
        with Session("explicit", "controlled"):      # explicit beats the environment
            assert res.members.height > 0
    users = {(r["user"], r["origin"]) for r in audit.read(audit_log)}
    assert users == {("env-user", "environment"), ("explicit", "explicit")}


def test_bad_tier_in_the_environment_is_named(monkeypatch, tiny_release):
    monkeypatch.setenv("WORKBENCH_TIER", "admin")
    with pytest.raises(UsageError, match=r"\$WORKBENCH_TIER: unknown access tier 'admin'"):
        access.current()
    with pytest.raises(UsageError, match="unknown access tier"):
        Session("kim", "root")  # type: ignore[arg-type]


def test_use_and_nesting_restore_the_outer_session():
    outer = Session("outer", "registered")
    with outer:
        with access.use(Session("inner", "public")):
            assert access.current().user == "inner"
        assert access.current() is outer
        with Session("again", "controlled"):
            assert access.current().tier == "controlled"
        assert access.current() is outer
    assert access.current().origin == "default"


def test_worker_threads_of_the_widgets_keep_the_session(cat, res):
    seen = {}

    def spy(definition, wcat, policy=None):
        seen["cohort"] = access.current().user
        return res

    with Session("alice", "public"):
        w = CohortBuilder(cat, HTN, debounce=0, runner=spy)
        assert w.wait() and w.status == "done", w.count_label.value
        w.close()
        plain = threading.Thread(target=lambda: seen.setdefault("plain",
                                                                access.current().origin))
        plain.start()
        plain.join()
    assert seen == {"cohort": "alice", "plain": "default"}   # a bare thread would not


def test_gwas_widget_thread_keeps_the_session(cat):
    from genomics.widgets import GwasWidget

    seen = {}

    def spy(definition, wcat, **kw):
        seen["user"] = access.current().user
        raise _Reached

    with Session("bob", "controlled"):
        w = GwasWidget(cat, HTN, runner=spy)
        w.run()
        assert w.wait(30)
    assert seen == {"user": "bob"} and isinstance(w.error, _Reached)


def test_cli_members_export_needs_controlled(tiny_release, tmp_path, audit_log, monkeypatch):
    path = io.save(HTN, tmp_path / "htn.json")
    out = tmp_path / "members.parquet"
    args = ["cohort", "members", str(path), "--release", str(tiny_release), "-o", str(out)]
    monkeypatch.setenv("WORKBENCH_TIER", "registered")
    got = CliRunner().invoke(app, args)
    assert got.exit_code == 1 and not out.exists()
    assert "error: cohort members (row-level) needs the controlled tier" in got.output
    assert "this session is registered" in got.output and "hint:" in got.output
    monkeypatch.setenv("WORKBENCH_TIER", "controlled")
    got = CliRunner().invoke(app, args)
    assert got.exit_code == 0, got.output
    assert pl.read_parquet(out).height > 0
    actions = [r["action"] for r in audit.read(audit_log)]
    assert actions == ["cohort.run", "access.denied", "cohort.run", "cohort.members",
                       "export.members"]
    assert audit.read(audit_log)[-1]["detail"]["file"] == str(out.resolve())


# --- projects -----------------------------------------------------------------------------

GRANTS = """
name = "htn-open-lab"
tier = "registered"
users = ["kim", "lee"]

[tables]
person = ["person_id", "gender_concept_id", "year_of_birth"]
observation_period = "*"
condition_occurrence = "*"
health_screening = ["person_id", "screening_date", "ldl_cholesterol"]
"""


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "htn-lab"
    folder.mkdir()
    (folder / "project.toml").write_text(GRANTS)
    return folder


def test_project_catalog_has_only_granted_tables_and_columns(tiny_release, project):
    with Session("kim", "controlled", project=project), catalog.open(tiny_release) as c:
        assert c.project is not None and c.project.name == "htn-open-lab"
        assert set(c.tables) == {"person", "observation_period", "condition_occurrence",
                                 "health_screening", *ALWAYS_VISIBLE}
        assert c.sql("select * from person limit 1").columns == [
            "person_id", "gender_concept_id", "year_of_birth"]
        assert c.sql("select * from health_screening limit 1").columns == [
            "person_id", "screening_date", "ldl_cholesterol"]
        for table in ("drug_exposure", "death", "location", "wearable_daily"):
            with pytest.raises(Exception, match="does not exist"):
                c.sql(f"select count(*) from {table}").fetchall()
        with pytest.raises(Exception, match=r"location_id.*not found|not found.*location_id"):
            c.sql("select location_id from person").fetchall()


@pytest.mark.parametrize(("definition", "path", "table", "column"), [
    (DRUG, "entry.criteria[0]", "drug_exposure", None),
    (cohort("x").entry(condition("KCD8", "I10")).require("seoul", region("11")).build(),
     "inclusion_rules[0].group.items[0].criterion", "location", None),
    (cohort("x").entry(condition("KCD8", "I10")).require("bmi", screening("bmi", 25)).build(),
     "inclusion_rules[0].group.items[0].criterion", "health_screening", "bmi"),
    (cohort("x").entry(condition("KCD8", "I10")).censor(death()).build(),
     "censoring[0]", "death", None),
    (cohort("x").entry(condition("KCD8", "I10")).require("in", member_of(DRUG)).build(),
     "inclusion_rules[0].group.items[0].criterion.cohort.entry.criteria[0]",
     "drug_exposure", None),
])
def test_definition_needing_an_ungranted_table_or_column_is_refused_with_its_path(
        tiny_release, project, definition, path, table, column):
    with catalog.open(tiny_release) as full:
        run(definition, full)           # runs without the project, and is now cached
    with Session("lee", "registered", project=project), catalog.open(tiny_release) as c:
        with pytest.raises(AccessDenied) as e:
            run(definition, c)          # refused before the cache is consulted
        text = str(e.value)
        assert text.startswith(f"{path}: project 'htn-open-lab'"), text
        assert f"table {table!r}" in text and "which this criterion reads" in text
        if column:
            assert f"column(s) {column}" in text
        assert "data access committee" in text and e.value.path == path


def test_project_runs_what_it_is_granted_and_withdrawn_persons_stay_out(tiny_release,
                                                                         project):
    d = (cohort("x").entry(condition("KCD8", "I10")).require("women", sex("female"))
         .require("ldl", screening("ldl_cholesterol", 100)).build())
    with catalog.open(tiny_release) as full:
        want = run(d, full).step_persons
    with Session("kim", "controlled", project=project), catalog.open(tiny_release) as c:
        res = run(d, c, cache="refresh")
        assert res.step_persons == want and want[-1] > 0
        assert age_sex(res, c).height > 0             # registered: within the cap
        with pytest.raises(AccessDenied, match=r"table1: project 'htn-open-lab' is not "
                           r"granted a table or column this needs \(.*location_id"):
            table1(res, c, top=2)                     # Table 1 shows regions: not granted
        with pytest.raises(AccessDenied, match="caps its sessions at registered") as e:
            res.members                                 # noqa: B018
        _denied(e.value, "controlled", "registered")


def test_a_result_keeps_the_cap_of_the_project_it_was_run_under(tiny_release, project):
    """A catalog opened with an explicit project, in a session without one: its results'
    members are capped by the project's tier, wherever they are read."""
    with Session("kim", "controlled"):
        with catalog.open(tiny_release, project=project) as c:
            res = run(HTN, c)
        with pytest.raises(AccessDenied, match="caps its sessions at registered"):
            res.members                                 # noqa: B018
        with catalog.open(tiny_release) as c:
            assert run(HTN, c).members.height > 0      # the same cohort without the project


def test_project_refuses_users_it_does_not_list(tiny_release, project):
    with (Session("mallory", "controlled", project=project),
          pytest.raises(AccessDenied, match="not a member of project 'htn-open-lab'")):
        catalog.open(tiny_release)
    with (Session("mallory", "controlled"),
          pytest.raises(AccessDenied, match="not a member of project 'htn-open-lab'")):
        catalog.open(tiny_release, project=project)


def test_project_from_the_environment_and_its_audit_folder(tiny_release, project,
                                                             monkeypatch):
    monkeypatch.delenv("WORKBENCH_AUDIT")
    monkeypatch.setenv("WORKBENCH_USER", "lee")
    monkeypatch.setenv("WORKBENCH_PROJECT", str(project))
    with catalog.open(tiny_release) as c:
        assert c.project is not None and "drug_exposure" not in c.tables
        run(HTN, c)
    recs = audit.read(project / "audit.jsonl")
    assert [(r["action"], r["user"], r["project"], r["tier"]) for r in recs] == [
        ("cohort.run", "lee", "htn-open-lab", "registered")]   # synthetic: capped default
    assert audit.verify(project / "audit.jsonl").ok


def _kinds() -> list[m.Cohort | m.CohortSet]:
    """A definition per criterion kind and exit, for the grants-versus-query check."""
    base = cohort("k").entry(condition("KCD8", "I10"))
    rules = [age(40, 80), sex("male"), region("11"), region_indicator("pm25", 0, 100),
             consent("lifelog"), has_genome(), lifelog("steps", min=1000).within(-365, 0),
             lifelog("sleep_minutes", "days_meeting", min=1, day_min=300),
             drug("ATC", "A10BA02").first().within(-365, 365),
             measurement("LOINC", "4548-4", min=6.5).within(-365, 0),
             measurement("LOINC", "4548-4", unit="%").first(), procedure("SNOMED", "71388002"),
             visit("IP"), death().within(0, None), observation_period(),
             screening("bmi", 25), member_of(cohort("d").entry(drug("ATC", "C10AA")).build())]
    out = [cohort(f"k{k}").entry(condition("KCD8", "I10")).require("r", r).build()
           for k, r in enumerate(rules)]
    out.append(base.exit_at_drug_end("ATC", "A10BA02").censor(visit("ER")).build())
    out.append(m.CohortSet(kind="minus", name="s", cohorts=[out[0], out[1]]))
    out += [io.load(p) for p in sorted(Path("examples").glob("*.json"))]
    return out


@pytest.mark.parametrize("definition", _kinds(), ids=lambda d: d.name)
def test_granting_exactly_what_needs_lists_runs_the_same_query(tiny_release, definition):
    """needs() is complete: a project granted exactly the columns it lists runs the
    definition (no missing column in the views) with the same result."""
    tables: dict[str, list[str]] = {}
    for n in needs(definition):
        if n.table not in ALWAYS_VISIBLE:
            tables.setdefault(n.table, [])
            tables[n.table] += [c for c in n.columns if c not in tables[n.table]]
    grant = Project.model_validate({"name": "exact", "tier": "controlled", "tables": tables})
    with catalog.open(tiny_release) as full:
        want = run(definition, full)
    with catalog.open(tiny_release, project=grant) as c:
        got = run(definition, c, cache="refresh")
    assert got.step_persons == want.step_persons
    assert got._members.equals(want._members)


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("project.toml", 'name = "x"\ntier = "registered\n', ["is not valid TOML", "line 2"]),
    ("project.json", '{"name": "x", "tier": }', ["is not valid JSON", "line 1, column 23"]),
    ("project.json", '["x"]', ["the top level is a list"]),
    ("project.toml", 'name = "x"\ntier = "admin"\n[tables]\nperson = "*"\n',
     ["tier: Input should be 'public', 'registered' or 'controlled' (found 'admin')"]),
    ("project.toml", 'tier = "public"\n[tables]\nperson = "*"\n', ["name: missing"]),
    ("project.toml", 'name = "x"\ntier = "public"\nowner = "me"\n[tables]\nperson = "*"\n',
     ["owner: unknown field"]),
    ("project.toml", 'name = "x"\ntier = "public"\n[tables]\n', ["tables: Dictionary should "
                                                                 "have at least 1 item"]),
    ("project.toml", 'name = "x"\ntier = "public"\n[tables]\nperson = ["person_id", "ssn"]\n'
     'drugs = "*"\nconcept = "*"\ndeath = "all"\n',
     ["4 problem(s)", "tables.person[1]: person has no column 'ssn'",
      "tables.drugs: no such table", "tables.concept: always visible",
      "tables.death: 'all' is not a list of columns"]),
    ("project.toml", 'name = "two words"\ntier = "public"\nusers = []\n[tables]\n'
     'person = []\n', ["name: use letters", "users: users must list at least one",
                       'tables.person: no columns']),
])
def test_malformed_project_files_are_reported_by_file_and_field(tmp_path, name, text,
                                                                expected):
    (tmp_path / name).write_text(text)
    with pytest.raises(ProjectError) as e:
        load_project(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / name) in msg, msg
    for part in expected:
        assert part in msg, msg


def test_missing_project_is_reported(tmp_path):
    with pytest.raises(ProjectError, match="does not exist"):
        load_project(tmp_path / "nowhere")
    with pytest.raises(ProjectError, match="has no project.toml or project.json"):
        load_project(tmp_path)


def test_cli_reports_a_bad_project_file_without_a_traceback(tiny_release, tmp_path,
                                                            monkeypatch):
    (tmp_path / "project.json").write_text(json.dumps({"name": "p", "tier": "public",
                                                       "tables": {"persons": "*"}}))
    monkeypatch.setenv("WORKBENCH_PROJECT", str(tmp_path))
    path = io.save(HTN, tmp_path / "htn.json")
    got = CliRunner().invoke(app, ["cohort", "count", str(path), "--release",
                                   str(tiny_release)])
    assert got.exit_code == 2 and got.exception is None or isinstance(got.exception,
                                                                      SystemExit)
    assert "error: project file" in got.output and "tables.persons: no such table" in \
        got.output
