"""Bad input gets a specific error that says where, never a crash or a half-written file.

Hostile strings (SQL injection, quotes, NUL, control and bidi characters, placeholders,
a megabyte) go into every string field of a definition that reaches SQL and into the
other user strings that reach a query (concept search, Table 1 codes, dataset domains
and columns). Each attack either gives exactly the benign answer (the string travelled
as a value) or a clean WorkbenchError naming the JSON path; where a string becomes a
SQL literal, the compiled query is the benign one with only that literal changed. The
release is byte-identical afterwards and no file appeared.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlglot
from _tally import COUNTS, register
from polars.testing import assert_frame_equal
from sqlglot import exp
from typer.testing import CliRunner

from cohort import io
from cohort.characterize import table1
from cohort.compile import compile_definition
from cohort.concepts import Resolved, search
from cohort.dataset import build_dataset
from cohort.engine import run
from cohort.errors import DefinitionError
from cohort.model import MAX_DAYS
from workbench import catalog
from workbench.cli import app
from workbench.errors import ReleaseError, UsageError, WorkbenchError
from workbench.synth.build import build_release

PWNED = Path("/tmp/biobank-workbench-pwned.csv")
HOSTILE = [
    "E11'; DROP TABLE person; --",
    "' OR '1'='1",
    '"; DROP VIEW person; --',
    "E11' UNION SELECT person_id FROM person --",
    "E11'||(SELECT count(*) FROM person)||'",
    f"'); COPY person TO '{PWNED}'; --",
    "read_parquet('/etc/passwd')",
    "E11\x00",
    "\x00' OR 1=1 --",
    "E11\\'; --",
    "? $1 $text %s {0}",
    "/* */ -- \n\r\t",
    "\u202eE11\u200b",             # right-to-left override, zero-width space
    "당뇨병 𝔈11 ☃",
    "'" * 10_000,
    "E" * 1_000_000,
]
NO_SUCH = "no-such-value"       # the benign stand-in: a plain string that matches nothing


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """800 persons, no genomes (seed 1); treat as read-only (copy before damaging)."""
    out = tmp_path_factory.mktemp("bad-input") / "release"
    build_release(out, persons=800, genotyped=0, variants=0, seed=1, progress=False)
    return out


@pytest.fixture(scope="module")
def cat(release: Path, pytestconfig: pytest.Config):
    register(pytestconfig)
    with catalog.open(release) as c:
        yield c


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- definitions as JSON data (as a file would hold them) ---------------------------

def _condition(code: str = "E11", vocabulary: str = "KCD8", name: str = "T2D") -> dict:
    return {"kind": "condition",
            "concepts": {"name": name, "items": [{"vocabulary": vocabulary, "code": code}]}}


def _rule(criterion: dict, name: str = "rule", description: str = "", **req: Any) -> dict:
    return {"name": name, "description": description,
            "group": {"items": [{"kind": "requirement", "criterion": criterion, **req}]}}


def _cohort(**over: Any) -> dict:
    data = {"kind": "cohort", "name": "t2d adults", "description": "",
            "entry": {"criteria": [_condition()]},
            "inclusion_rules": [_rule({"kind": "age", "value": {"min": 18}}, "adult")]}
    return {**data, **over}


def _with_rule(criterion: dict, **req: Any) -> dict:
    return _cohort(inclusion_rules=[_rule(criterion, **req)])


def _union(first: dict | None = None, **over: Any) -> dict:
    return {"kind": "union", "name": "either", **over, "cohorts": [
        first or _cohort(), _cohort(entry={"criteria": [_condition("I10")]})]}


# field -> (definition with the string, JSON path of a clean error or None for "the
# benign answer"); the benign definition is the same with NO_SUCH
SAME = None
DEFINITION_FIELDS: dict[str, tuple[Callable[[str], dict], str | None]] = {
    "cohort.name": (lambda x: _cohort(name=x), SAME),
    "cohort.description": (lambda x: _cohort(description=x), SAME),
    "concept_set.name": (lambda x: _cohort(entry={"criteria": [_condition(name=x)]}), SAME),
    "inclusion_rule.name": (lambda x: _cohort(inclusion_rules=[
        _rule({"kind": "age", "value": {"min": 18}}, x)]), SAME),
    "inclusion_rule.description": (lambda x: _cohort(inclusion_rules=[
        _rule({"kind": "age", "value": {"min": 18}}, "adult", x)]), SAME),
    "cohort_set.name": (lambda x: _union(name=x), SAME),
    "cohort_set.operand_name": (lambda x: _union(first=_cohort(name=x)), SAME),
    "measurement.unit": (lambda x: _cohort(entry={"criteria": [{
        "kind": "measurement", "unit": x, "concepts": {"name": "HbA1c", "items": [
            {"vocabulary": "LOINC", "code": "4548-4"}]}}]}), SAME),
    "region.codes": (lambda x: _with_rule({"kind": "region", "codes": ["11", x]}), SAME),
    "concept.vocabulary": (lambda x: _cohort(entry={"criteria": [_condition(vocabulary=x)]}),
                           "entry.criteria[0].concepts.items[0]"),
    "concept.code": (lambda x: _cohort(entry={"criteria": [_condition(x)]}),
                     "entry.criteria[0].concepts.items[0]"),
    "concept.excluded_code": (lambda x: _cohort(entry={"criteria": [{
        "kind": "condition", "concepts": {"name": "T2D", "items": [
            {"vocabulary": "KCD8", "code": "E11"},
            {"vocabulary": "KCD8", "code": x, "exclude": True}]}}]}),
        "entry.criteria[0].concepts.items[1]"),
    "visit.visit_types": (lambda x: _with_rule({"kind": "visit", "visit_types": [x]}),
                          "inclusion_rules[0].group.items[0].criterion.visit_types[0]"),
    "screening.item": (lambda x: _with_rule({"kind": "screening", "item": x}),
                       "inclusion_rules[0].group.items[0].criterion.item"),
    "lifelog.metric": (lambda x: _with_rule({"kind": "lifelog", "metric": x}),
                       "inclusion_rules[0].group.items[0].criterion.metric"),
    "lifelog.aggregate": (lambda x: _with_rule({"kind": "lifelog", "metric": "steps",
                                                "aggregate": x}),
                          "inclusion_rules[0].group.items[0].criterion.aggregate"),
    "consent.scope": (lambda x: _with_rule({"kind": "consent", "scope": x}),
                      "inclusion_rules[0].group.items[0].criterion.scope"),
    "region_indicator.indicator": (lambda x: _with_rule({
        "kind": "region_indicator", "indicator": x, "value": {"min": 0}}),
        "inclusion_rules[0].group.items[0].criterion.indicator"),
    "sex.values": (lambda x: _with_rule({"kind": "sex", "values": [x]}),
                   "inclusion_rules[0].group.items[0].criterion.values[0]"),
    "genotype.variants": (lambda x: _with_rule({"kind": "genotype", "variants": [x]}),
                          "inclusion_rules[0].group.items[0].criterion.variants[0]"),
    "genotype.region": (lambda x: _with_rule({"kind": "genotype", "region": x}),
                        "inclusion_rules[0].group.items[0].criterion.region"),
    "window.anchor": (lambda x: _with_rule(_condition("I10"), window={"start": -30,
                                                                      "anchor": x}),
                      "inclusion_rules[0].group.items[0].window.anchor"),
    "occurrence.op": (lambda x: _with_rule(_condition("I10"), occurrence={"op": x}),
                      "inclusion_rules[0].group.items[0].occurrence.op"),
    "criterion.kind": (lambda x: _with_rule({"kind": x}),
                       "inclusion_rules[0].group.items[0].criterion"),
    "entry.limit": (lambda x: _cohort(entry={"criteria": [_condition()], "limit": x}),
                    "entry.limit"),
    "exit.kind": (lambda x: _cohort(exit={"kind": x}), "exit"),
    "schema_version": (lambda x: _cohort(schema_version=x), "schema_version"),
}


def _stub(cs: Any, path: str) -> Resolved:
    return Resolved((201826,), (), pl.DataFrame())


def _swap_literal(sql: str, old: str, new: str) -> str:
    """Parse ``sql`` (it must be one statement) and replace string literals ``old``."""
    trees = sqlglot.parse(sql, read="duckdb")
    assert len(trees) == 1, "the value split the query into several statements"
    return trees[0].transform(lambda n: exp.Literal.string(new) if isinstance(
        n, exp.Literal) and n.is_string and n.this == old else n).sql("duckdb")


@pytest.mark.parametrize("field", list(DEFINITION_FIELDS))
def test_hostile_strings_in_definition_fields(field: str, cat, release: Path) -> None:
    make, error_path = DEFINITION_FIELDS[field]
    before = _digest(release)
    benign = benign_sql = None
    if error_path is SAME:
        d = io.from_data(make(NO_SUCH))
        benign = run(d, cat, cache="refresh")
        benign_sql = compile_definition(d, set(cat.tables), _stub).sql()
    for x in HOSTILE:
        COUNTS["attacks (hostile string x field)"] += 1
        if error_path is not SAME:
            with pytest.raises(DefinitionError) as info:
                run(io.from_data(make(x)), cat, cache="refresh")
            assert info.value.path.startswith(error_path), (x[:40], info.value.path)
            assert len(str(info.value)) < 2_000, "the message repeats a huge input"
            continue
        d = io.from_data(make(x))
        # where the string is in the SQL at all, it is one literal, the rest unchanged
        sql = compile_definition(d, set(cat.tables), _stub).sql()
        assert _swap_literal(sql, x, NO_SUCH) == _swap_literal(benign_sql, NO_SUCH, NO_SUCH)
        for cache in ("refresh", "use"):
            got = run(d, cat, cache=cache)
            assert_frame_equal(got.members, benign.members)
            assert got.step_persons == benign.step_persons
        if field == "inclusion_rule.name":
            assert got.steps[1] == x                    # a name comes back as given
    assert _digest(release) == before
    assert not PWNED.exists()
    assert cat.scalar("select count(*) from person") == 800


OTHER_FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "search.text": lambda cat, x: search(cat, x),
    "search.vocabulary": lambda cat, x: search(cat, "E11", vocabulary=x),
    "table1.conditions": lambda cat, x: table1(run(io.from_data(_cohort()), cat), cat,
                                               conditions=["E11", x]),
    "table1.drugs": lambda cat, x: table1(run(io.from_data(_cohort()), cat), cat,
                                          drugs=["A10BA02", x]),
    "dataset.domain": lambda cat, x: build_dataset(cat, io.from_data(_cohort()), {x: None}),
    "dataset.column": lambda cat, x: build_dataset(cat, io.from_data(_cohort()),
                                                   {"person": ["person_id", x]}),
}


@pytest.mark.parametrize("field", list(OTHER_FIELDS))
def test_hostile_strings_in_other_query_inputs(field: str, cat, release: Path) -> None:
    """Search text and vocabulary travel as parameters (no match, or the matches of the
    text itself); Table 1 codes are a parameter list (the hostile code finds nothing);
    dataset domains and columns are checked against a fixed list (UsageError)."""
    before = _digest(release)
    do = OTHER_FIELDS[field]
    if field.startswith("table1"):
        benign = do(cat, NO_SUCH)
    for x in HOSTILE:
        COUNTS["attacks (hostile string x field)"] += 1
        if field.startswith("dataset"):
            with pytest.raises(UsageError, match="dataset: "):
                do(cat, x)
        elif field.startswith("search"):
            found = do(cat, x)
            assert found.columns[:3] == ["concept_id", "vocabulary_id", "concept_code"]
            assert found.height == 0, found
        else:
            assert_frame_equal(do(cat, x).frame, benign.frame, check_exact=False)
    assert _digest(release) == before
    assert not PWNED.exists()


def test_hostile_release_id_and_paths_in_a_manifest(release: Path, tmp_path: Path) -> None:
    """The manifest is input too: its release id names cache files and a PostgreSQL
    schema, its paths name files to read."""
    for k, (key, value, fragment) in enumerate([
            ("release_id", 'r"; DROP SCHEMA public; --', "release_id"),
            ("release_id", "../../etc", "release_id"),
            ("release_id", "", "release_id"),
            ("release_id", 12, "release_id"),
            ("tables.person.path", "../../../etc/passwd", "points outside the release"),
            ("tables.person.path", "/etc/passwd", "points outside the release")]):
        rel = tmp_path / f"r{k}"
        shutil.copytree(release, rel)
        manifest = json.loads((rel / "manifest.json").read_text())
        node = manifest
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
        (rel / "manifest.json").write_text(json.dumps(manifest))
        COUNTS["attacks (hostile string x field)"] += 1
        with pytest.raises(ReleaseError, match="manifest.json") as info:
            catalog.open(rel)
        assert fragment in str(info.value)


# --- malformed definition files -------------------------------------------------------

MALFORMED: list[tuple[str, bytes, str, str]] = [
    ("not JSON", b'{"name": "x",,}', "(file)", "t.json is not valid JSON"),
    ("truncated", json.dumps(_cohort()).encode()[:57], "(file)", "not valid JSON"),
    ("empty", b"", "(file)", "line 1 column 1"),
    ("not UTF-8", b'{"name": "\xff"}', "(file)", "not UTF-8"),
    ("nested 100000 deep", b"[" * 100_000 + b"]" * 100_000, "(file)", "nested too deeply"),
    ("groups nested 60 deep", json.dumps(_cohort(inclusion_rules=[{"name": "r", "group": (
        "GROUP")}])).replace('"GROUP"', '{"kind": "group", "items": [' * 60 + json.dumps(
            {"kind": "requirement", "criterion": {"kind": "death"}}) + "]}" * 60).encode(),
     "inclusion_rules[0].group", "nested more than"),
    ("a list", b"[1, 2]", "(top level)", "valid dictionary"),
    ("name is a number", json.dumps(_cohort(name=7)).encode(), "name", "valid string"),
    ("entry missing", json.dumps({"name": "x"}).encode(), "entry", "Field required"),
    ("no entry criteria", json.dumps(_cohort(entry={"criteria": []})).encode(),
     "entry.criteria", "at least 1"),
    ("extra key", json.dumps(_cohort(colour="red")).encode(), "colour", "Extra inputs"),
    ("window ends before it starts", json.dumps(_with_rule(_condition("I10"), window={
        "start": 30, "end": -30})).encode(), "inclusion_rules[0].group.items[0].window",
     "after its end"),
    ("window a billion days back", json.dumps(_with_rule(_condition("I10"), window={
        "start": -10**9})).encode(), "inclusion_rules[0].group.items[0].window.start",
     f"greater than or equal to -{MAX_DAYS}"),
    ("window 10^30 days on", json.dumps(_with_rule(_condition("I10"), window={
        "end": 10**30})).encode(), "inclusion_rules[0].group.items[0].window.end",
     "less than or equal"),
    ("negative prior observation", json.dumps(_cohort(entry={
        "criteria": [_condition()], "prior_observation": -1})).encode(),
     "entry.prior_observation", "greater than or equal to 0"),
    ("fixed exit 10^12 days", json.dumps(_cohort(exit={"kind": "fixed_offset",
                                                       "days": 10**12})).encode(),
     "exit.days", "less than or equal"),
    ("era padding 10^12 days", json.dumps(_cohort(era_pad_days=10**12)).encode(),
     "era_pad_days", "less than or equal"),
    ("NaN threshold", json.dumps(_with_rule({"kind": "age", "value": {"min": float(
        "nan")}})).encode(), "inclusion_rules[0].group.items[0].criterion.value.min",
     "finite number"),
    ("Infinity threshold", json.dumps(_with_rule({"kind": "age", "value": {"max": float(
        "inf")}})).encode(), "inclusion_rules[0].group.items[0].criterion.value.max",
     "finite number"),
    ("concept id 10^40", json.dumps(_cohort(entry={"criteria": [{"kind": "condition",
        "concepts": {"name": "c", "items": [{"concept_id": 10**40}]}}]})).encode(),
     "entry.criteria[0].concepts.items[0].concept_id", ""),
    ("negative occurrence", json.dumps(_with_rule(_condition("I10"), occurrence={
        "count": -1})).encode(), "inclusion_rules[0].group.items[0].occurrence.count",
     "greater than or equal to 0"),
    ("count a string", json.dumps(_with_rule(_condition("I10"), occurrence={
        "count": "2; DROP"})).encode(), "inclusion_rules[0].group.items[0].occurrence.count",
     "valid integer"),
]


@pytest.mark.parametrize("case", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_definition_files(case, tmp_path: Path, release: Path,
                                    pytestconfig) -> None:
    """io.load and the CLI: a DefinitionError naming the JSON path (or the file and line),
    one `error:` line with a hint, exit code 1, no traceback; nothing written."""
    register(pytestconfig)
    _, data, path, fragment = case
    work = tmp_path / "work"
    work.mkdir()
    f = work / "t.json"
    f.write_bytes(data)
    COUNTS["malformed definition files"] += 1
    with pytest.raises(DefinitionError) as info:
        io.load(f)
    assert info.value.path.startswith(path), info.value.path
    assert fragment in info.value.message
    out = work / "members.parquet"
    res = CliRunner().invoke(app, ["cohort", "members", str(f), "--release", str(release),
                                   "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "Traceback" not in res.output and "error: " in res.output
    assert sorted(p.name for p in work.iterdir()) == ["t.json"]   # nothing half-written


def test_windows_at_the_limit_run(cat) -> None:
    """MAX_DAYS either way is accepted and runs on DuckDB (date arithmetic in range)."""
    d = io.from_data(_with_rule(_condition("I10"), window={"start": -MAX_DAYS,
                                                           "end": MAX_DAYS}))
    wide = io.from_data(_with_rule(_condition("I10")))
    assert run(d, cat).step_persons == run(wide, cat).step_persons
    fixed = io.from_data(_cohort(exit={"kind": "fixed_offset", "days": MAX_DAYS},
                                 era_pad_days=MAX_DAYS))
    assert run(fixed, cat).members.height > 0


def test_unknown_concepts_and_vocabularies(cat) -> None:
    for item, fragment in [({"vocabulary": "KCD8", "code": "Z99.999"}, "KCD8 code 'Z99.999'"),
                           ({"vocabulary": "ICD-99", "code": "E11"}, "ICD-99 code 'E11'"),
                           ({"concept_id": 999_999_999}, "concept_id 999999999"),
                           ({"concept_id": 0}, "concept_id 0")]:
        d = io.from_data(_cohort(entry={"criteria": [{"kind": "drug", "concepts": {
            "name": "x", "items": [item]}}]}))
        with pytest.raises(DefinitionError, match="unknown concept") as info:
            run(d, cat)
        assert info.value.path == "entry.criteria[0].concepts.items[0]"
        assert fragment in info.value.message and info.value.hint
    with pytest.raises(DefinitionError, match="not excluded"):
        run(io.from_data(_cohort(entry={"criteria": [{"kind": "condition", "concepts": {
            "name": "x", "items": [{"vocabulary": "KCD8", "code": "E11",
                                    "exclude": True}]}}]})), cat)


# --- damaged release files --------------------------------------------------------------

DAMAGE = {
    "truncated to half": lambda b: b[: len(b) // 2],
    "truncated to 3 bytes": lambda b: b[:3],
    "empty": lambda b: b"",
    "footer zeroed": lambda b: b[:-64] + b"\0" * 64,
    "bytes flipped in the middle": lambda b: b[: len(b) // 2] + bytes(
        x ^ 0xFF for x in b[len(b) // 2: len(b) // 2 + 256]) + b[len(b) // 2 + 256:],
    "not Parquet at all": lambda b: b"person_id,year\n1,1970\n",
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_parquet_names_the_file(damage: str, release: Path, tmp_path: Path,
                                        pytestconfig) -> None:
    """catalog.open (checksums) and the CLI name the damaged file; opened without
    checksums, a query that reads it is a ReleaseError naming it, or (a flip the format
    cannot see) a result: never another exception."""
    register(pytestconfig)
    rel = tmp_path / "rel"
    shutil.copytree(release, rel)
    target = rel / "clinical" / "condition_occurrence.parquet"
    target.write_bytes(DAMAGE[damage](target.read_bytes()))
    COUNTS["damaged Parquet files"] += 1
    with pytest.raises(ReleaseError, match="condition_occurrence") as info:
        catalog.open(rel)
    assert info.value.hint
    definition = tmp_path / "d.json"
    io.save(io.from_data(_cohort()), definition)
    res = CliRunner().invoke(app, ["cohort", "count", str(definition), "--release", str(rel)])
    assert res.exit_code == 1 and "condition_occurrence" in res.output, res.output
    assert "Traceback" not in res.output
    try:
        cat = catalog.open(rel, verify="none")
    except ReleaseError as e:
        assert "condition_occurrence" in str(e)
        return
    with cat:
        try:
            run(io.from_data(_cohort()), cat, cache="refresh")
        except WorkbenchError as e:
            assert isinstance(e, ReleaseError) and "condition_occurrence.parquet" in str(e)
