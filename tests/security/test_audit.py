"""The audit trail (issue 7, item 4): a record for every action, counts only, a hash chain
that `workbench audit verify` checks, real tampering found and the first bad line named,
eight processes appending at once with nothing lost, and no action without its record."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cohort import io
from cohort.builder import age, cohort, condition
from cohort.characterize import compare, table1
from cohort.charview import age_sex, distribution
from cohort.dataset import build_dataset
from cohort.engine import run
from genomics.link import link
from workbench import audit, catalog
from workbench.access import Session
from workbench.cli import app
from workbench.errors import AccessDenied, AuditError

HTN = cohort("hypertension").entry(condition("KCD8", "I10")).require(
    "adults", age(18, None)).build()
TINY = cohort("tiny").entry(condition("KCD8", "I10")).require("aged 70", age(70, 70)).build()
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class _AnyKey:
    def __getitem__(self, key):
        return {}


class _FakeMT:
    """Just enough of a MatrixTable for link() (no sample in the call set)."""

    s = types.SimpleNamespace(collect=list)

    def filter_cols(self, cond):
        return self

    def annotate_cols(self, **fields):
        return self


@pytest.fixture(scope="module")
def recorded(tiny_release, tmp_path_factory) -> Path:
    """A log with a record of each kind of action on a cohort (and a refusal)."""
    folder = tmp_path_factory.mktemp("trail")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("WORKBENCH_USER", "WORKBENCH_TIER", "WORKBENCH_PROJECT"):
            mp.delenv(var, raising=False)
        mp.setenv("WORKBENCH_AUDIT", str(folder / "audit.jsonl"))
        with Session("kim", "controlled"), catalog.open(tiny_release) as cat:
            res = run(HTN, cat)
            res.members        # noqa: B018
            res.members        # noqa: B018   (recorded once per result)
            res.to_table()
            table1(res, cat, top=2)
            age_sex(res, cat)
            distribution(res, cat, "bmi")
            build_dataset(cat, res, {"person": ["person_id"], "drugs": None})
            run(TINY, cat)
        with (Session("lee", "public"), catalog.open(tiny_release) as cat,
              pytest.raises(AccessDenied)):
            compare(res, res, cat)
        path = io.save(HTN, folder / "htn.json")
        mp.setenv("WORKBENCH_TIER", "controlled")
        got = CliRunner().invoke(app, ["cohort", "members", str(path), "--release",
                                       str(tiny_release), "-o", str(folder / "m.parquet")])
        assert got.exit_code == 0, got.output
    return folder / "audit.jsonl"


@pytest.fixture
def trail(recorded, audit_log) -> Path:
    """A fresh copy of the recorded log (and its head file) for one test to tamper with."""
    audit_log.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(recorded, audit_log)
    shutil.copy(audit.head_path(recorded), audit.head_path(audit_log))
    return audit_log


def test_a_record_for_every_action_with_counts_only(trail, tiny_release):
    recs = audit.read(trail)
    assert [r["action"] for r in recs] == [
        "cohort.run", "cohort.members", "cohort.to_table", "characterize.table1",
        "characterize.age_sex", "characterize.distribution", "dataset.build",
        "cohort.run", "access.denied", "cohort.run", "cohort.members", "export.members"]
    release = json.loads((tiny_release / "manifest.json").read_text())["release_id"]
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    for r in recs:
        assert set(r) == audit.KEYS and TIME.fullmatch(r["time"]), r
        assert r["release"] == release and r["pid"] == os.getpid()
        for k, v in r["sizes"].items():  # counts as they may leave, nothing row-level
            assert k == "steps" or isinstance(v, int) and (v == 0 or v >= 20) or v in (
                "< 20", "suppressed"), (k, v)
    first = recs[0]
    assert first["user"] == "kim" and first["tier"] == "controlled"
    assert first["definition"] == HTN.content_hash()
    assert first["tables"] == ["condition_occurrence", "consent", "observation_period",
                               "person"]
    assert first["sizes"]["persons"] > 20 and first["sizes"]["steps"] == 2
    tiny = recs[7]
    assert tiny["definition"] == TINY.content_hash() and tiny["sizes"]["persons"] == "< 20"
    denied = recs[8]
    assert (denied["user"], denied["tier"], denied["detail"]) == (
        "lee", "public", {"asked": "Table 1", "needs": "registered"})
    dataset = recs[6]
    assert set(dataset["sizes"]) == {"persons", "rows.person", "rows.drugs"}
    assert dataset["tables"] == ["drug_exposure", "person"]
    assert recs[-1]["detail"]["file"].endswith("m.parquet")


def test_link_is_recorded(tiny_release, audit_log, monkeypatch):
    import genomics.link as gl

    hl = types.ModuleType("hail")     # link's Hail steps stood in for: no Java here
    hl.is_defined = lambda x: x
    monkeypatch.setitem(sys.modules, "hail", hl)
    monkeypatch.setattr(gl, "_to_hail", lambda table: _AnyKey())
    with Session("kim", "controlled"), catalog.open(tiny_release) as cat:
        res = run(HTN, cat)
        link(res._members, cat, _FakeMT())
    rec = audit.read(audit_log)[-1]
    assert rec["action"] == "genomics.link" and rec["tables"] == [
        "consent", "health_screening", "person", "sample_link"]
    assert list(rec["sizes"]) == gl.STEPS and rec["sizes"]["sample in the call set"] == 0


def test_verify_passes_on_an_untouched_log(trail):
    verdict = audit.verify(trail)
    assert verdict.ok and verdict.records == 12 and str(verdict).startswith("ok:")
    got = CliRunner().invoke(app, ["audit", "verify", str(trail)])
    assert got.exit_code == 0 and "12 records, chain intact" in got.output


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def _forge(rec: dict, **changes) -> bytes:
    rec = {**rec, **changes}
    rec["hash"] = audit.digest(rec)
    return audit.canonical(rec) + b"\n"


def _edit_byte(lines):      # one digit of a count on line 4
    lines[3] = re.sub(rb'"persons":(\d)', lambda m: b'"persons":' + bytes(
        [ord("1") if m[1] != b"1" else ord("2")]), lines[3], count=1)
    return lines


TAMPERING = {
    # name: (change the lines, first bad line, words of the problem)
    "edit a byte": (_edit_byte, 4, "hash does not match"),
    "edit the user": (lambda ls: [*ls[:2], ls[2].replace(b'"kim"', b'"eve"'), *ls[3:]], 3,
                      "hash does not match"),
    "add a space": (lambda ls: [*ls[:5], ls[5].replace(b",", b", ", 1), *ls[6:]], 6,
                    "canonical form"),
    "delete a line": (lambda ls: ls[:4] + ls[5:], 5, "chain broken"),
    "delete the first line": (lambda ls: ls[1:], 1, "chain broken"),
    "swap two lines": (lambda ls: [*ls[:6], ls[7], ls[6], *ls[8:]], 7, "chain broken"),
    "move a line to the end": (lambda ls: [*ls[:2], *ls[3:], ls[2]], 3, "chain broken"),
    "truncate inside a line": (lambda ls: [*ls[:-1], ls[-1][:40]], 12, "incomplete record"),
    "truncate at a line end": (lambda ls: ls[:-3], 10, "records were deleted from the end"),
    "empty the log": (lambda ls: [], 1, "records were deleted from the end"),
    "blank a line": (lambda ls: [*ls[:8], b"\n", *ls[9:]], 9, "empty line"),
    "insert a forged line, own hash, broken chain": (
        lambda ls: [*ls[:5], _forge(json.loads(ls[4]), action="nothing.here", seq=6), *ls[5:]],
        6, "chain broken"),
    "insert a forged line linked to the one before": (
        lambda ls: [*ls[:5], _forge(json.loads(ls[4]), action="nothing.here", seq=6,
                                    prev=json.loads(ls[4])["hash"]), *ls[5:]],
        7, "chain broken"),
    "replace a line with a forged one": (
        lambda ls: [*ls[:9], _forge(json.loads(ls[9]), user="someone"), *ls[10:]],
        11, "chain broken"),
    "not JSON": (lambda ls: [*ls[:1], b"{oops\n", *ls[2:]], 2, "not a JSON record"),
    "a field removed": (lambda ls: [*ls[:1], _forge({k: v for k, v in json.loads(
        ls[1]).items() if k != "tables"}), *ls[2:]], 2, "fields missing or added"),
}


@pytest.mark.parametrize("name", list(TAMPERING))
def test_tampering_is_found_and_the_first_bad_line_named(trail, name):
    change, line, words = TAMPERING[name]
    _write(trail, change(_lines(trail)))
    verdict = audit.verify(trail)
    assert not verdict.ok and verdict.line == line and words in verdict.problem, verdict
    got = CliRunner().invoke(app, ["audit", "verify", str(trail)])
    assert got.exit_code == 1 and f"line {line}:" in got.output and words in got.output


def test_a_rewritten_log_is_found_only_through_an_anchor(trail, tmp_path):
    """A whole chain recomputed after an edit (and its head file too) is consistent in
    itself: a head noted elsewhere earlier (the anchor) finds it."""
    anchor = audit.verify(trail).head
    lines, prev = _lines(trail), audit.GENESIS
    out = []
    for k, raw in enumerate(lines):
        rec = json.loads(raw)
        if k == 3:
            rec["user"] = "someone-else"
        rec["prev"] = prev
        rec["hash"] = prev = audit.digest(rec)
        out.append(audit.canonical(rec) + b"\n")
    _write(trail, out)
    audit.head_path(trail).write_text(json.dumps({"records": len(out), "hash": prev}))
    assert audit.verify(trail).ok           # consistent in itself
    verdict = audit.verify(trail, anchor=anchor)
    assert not verdict.ok and "anchored record" in verdict.problem
    got = CliRunner().invoke(app, ["audit", "verify", str(trail), "--anchor", anchor])
    assert got.exit_code == 1


def test_deleting_the_head_file_is_found_unless_asked_not_to(trail):
    audit.head_path(trail).unlink()
    assert "head file audit.jsonl.head is missing" in audit.verify(trail).problem
    assert audit.verify(trail, head_file=False).ok
    got = CliRunner().invoke(app, ["audit", "verify", str(trail), "--no-head-file"])
    assert got.exit_code == 0


_WRITER = """
import sys, time
from pathlib import Path
from workbench import audit
from workbench.access import Session
path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
go = Path(path).with_name("go")
while not go.exists():      # all start together
    time.sleep(0.01)
with Session(who, "public"):
    for i in range(n):
        audit.record("test.concurrent", release="r", sizes={"i": i}, path=Path(path))
"""


def test_eight_processes_appending_at_once_keep_one_chain_and_lose_nothing(tmp_path):
    log, per = tmp_path / "shared" / "audit.jsonl", 40
    log.parent.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(log), f"w{k}", str(per)],
                              stderr=subprocess.PIPE) for k in range(8)]
    (log.parent / "go").touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    verdict = audit.verify(log)
    assert verdict.ok and verdict.records == 8 * per, verdict
    recs = audit.read(log)
    assert sorted((r["user"], r["sizes"]["i"]) for r in recs) == sorted(
        (f"w{k}", i) for k in range(8) for i in range(per))
    assert len({r["pid"] for r in recs}) == 8
    turns = sum(a["pid"] != b["pid"] for a, b in zip(recs, recs[1:], strict=False))
    assert turns >= 7, turns         # (on a busy machine they interleave far more)


def test_no_action_without_its_record(tiny_release, tmp_path, monkeypatch):
    """An audit log that cannot be written stops the action (fail closed)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("WORKBENCH_AUDIT", str(blocker / "audit.jsonl"))
    with catalog.open(tiny_release) as cat, pytest.raises(AuditError, match="cannot be opened"):
        run(HTN, cat)
    log = tmp_path / "cut.jsonl"
    monkeypatch.setenv("WORKBENCH_AUDIT", str(log))
    with catalog.open(tiny_release) as cat:
        run(HTN, cat)
        log.write_bytes(log.read_bytes()[:-10])       # a cut-off last record
        with pytest.raises(AuditError, match="ends in a partial record"):
            run(HTN, cat)
    assert len(audit.read(log)) == 1


def test_where_the_log_lives(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_AUDIT", str(tmp_path))
    assert audit.audit_path() == tmp_path / "audit.jsonl"           # a folder
    monkeypatch.setenv("WORKBENCH_AUDIT", str(tmp_path / "x.jsonl"))
    assert audit.audit_path() == tmp_path / "x.jsonl"               # a file
    monkeypatch.delenv("WORKBENCH_AUDIT")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "project.toml").write_text(
        'name = "p"\ntier = "public"\n[tables]\nperson = "*"\n')
    assert audit.audit_path(Session("kim", "public", project=tmp_path / "p")) == (
        tmp_path / "p" / "audit.jsonl").resolve()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert audit.audit_path(Session("kim", "public")) == (
        tmp_path / "data" / "biobank-workbench" / "audit.jsonl")


def test_records_hold_counts_and_short_texts_only(audit_log):
    with pytest.raises(Exception, match="counts and short texts only"):
        audit.record("x", sizes={"ids": [1, 2, 3]})  # type: ignore[dict-item]
    with pytest.raises(Exception, match="at most 500"):
        audit.record("x", detail={"note": "a" * 501})
    assert not audit_log.exists()


def test_show_lists_and_filters(trail):
    got = CliRunner().invoke(app, ["audit", "show", str(trail), "--action", "characterize"])
    assert got.exit_code == 0
    assert [ln.split()[4] for ln in got.output.splitlines()] == [
        "characterize.table1", "characterize.age_sex", "characterize.distribution"]
    got = CliRunner().invoke(app, ["audit", "show", str(trail), "--user", "lee", "--json"])
    assert [json.loads(x)["action"] for x in got.output.splitlines()] == ["access.denied"]
