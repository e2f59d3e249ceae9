"""Output checking against the differencing attack (issue 7, item 3).

The attack: ask a cohort's count, then the same cohort minus a rare trait; the difference
of two shown counts is a small cell. Here it is carried out for real on the small release:
the attacker (a public-tier session) excludes, one code at a time, a condition that a
handful of the first cohort's persons have. The set differences are computed
independently with the hand-written Polars reference; every count whose persons differ
from a count already shown by 1..k-1 persons must come back withheld, in the same
session, and in another process of the same project. Counts that differ by k or more
still show, and a controlled session (which sees the members themselves) is not guarded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from reference.polars_cohort import evaluate

from cohort import disclosure
from cohort.builder import cohort, condition
from cohort.characterize import table1
from cohort.charview import age_sex, distribution
from cohort.engine import clear_cache, run
from cohort.privacy import SmallCellPolicy, Suppressed
from workbench import catalog
from workbench.access import Session
from workbench.schema import table_file

K = SmallCellPolicy().threshold


def _base():
    return cohort("hypertension").entry(condition("KCD8", "I10").first())


def _without(code: str):
    return _base().exclude(f"no {code}", condition("KCD8", code).within(None, None)).build()


@pytest.fixture(scope="module")
def attack(small_release):
    """The base cohort and, for each 3-character code some of its persons have, the
    excluding cohort and the size of the set difference (by the reference)."""
    with catalog.open(small_release) as cat:
        base = _base().build()
        members, _ = evaluate(base, small_release, cat)
        persons = set(members["subject_id"].to_list())
        cond = pl.read_parquet(small_release / table_file("condition_occurrence"))
        codes = (cond.filter(pl.col("person_id").is_in(list(persons)))
                 .with_columns(code=pl.col("condition_source_value").str.slice(0, 3))
                 .group_by("code").agg(pl.col("person_id").n_unique().alias("n"))
                 .filter(pl.col("code") != "I10").sort("n", "code"))
        small = codes.filter(pl.col("n").is_between(1, K - 1)).head(4)["code"].to_list()
        large = codes.filter(pl.col("n") >= 2 * K)["code"].to_list()[:1]
        out = {}
        for code in small + large:
            d = _without(code)
            got, _ = evaluate(d, small_release, cat)
            out[code] = (d, len(persons ^ set(got["subject_id"].to_list())))
    assert len(small) == 4 and large, "the small release should have rare and common codes"
    return base, out


@pytest.fixture(autouse=True)
def _fresh():
    disclosure.forget()
    clear_cache()
    yield
    disclosure.forget()


def test_guard_boundaries():
    g = disclosure.DifferencingGuard(threshold=5)
    a = np.arange(100)
    assert g.screen("r", "a", a) is None
    assert g.screen("r", "same-set", a) is None                     # differs by 0
    assert g.screen("r", "minus4", a[4:]) is not None               # 4 = k-1: withheld
    assert g.screen("r", "minus5", a[5:]) is None                   # 5 = k: shown
    assert g.screen("r", "plus-minus", np.r_[a[2:], [500, 501]]) is not None   # xor = 4
    # a withheld set is not remembered: one person away from it, 5 from "a"... but only
    # 1 from "minus5" (shown), so still withheld
    assert g.screen("r", "minus6", a[6:]) is not None
    assert g.screen("r", "a", a) is None                            # asked again: same


def test_attack_in_one_session_is_stopped(small_release, attack):
    base, variants = attack
    with Session("attacker", "public"), catalog.open(small_release) as cat:
        first = run(base, cat)
        assert first.withheld is None and isinstance(first.count, int)
        shown = 0
        for code, (d, diff) in variants.items():
            res = run(d, cat)
            if 1 <= diff < K:
                assert res.withheld is not None, code
                assert isinstance(res.count, Suppressed) and str(res.count) == "suppressed"
                assert res.attrition["suppressed"].all()
                assert res.attrition["persons"].is_null().all()
                assert set(res.attrition["persons_shown"]) == {"suppressed"}
                assert res.withheld.startswith("differs by 1..")
            else:
                assert res.withheld is None, code
                assert isinstance(res.count, int)
                shown += 1
        assert shown >= 1


def test_a_withheld_cohort_cannot_be_characterised(small_release, attack):
    base, variants = attack
    code = next(c for c, (_, diff) in variants.items() if 1 <= diff < K)
    with Session("describer", "registered"), catalog.open(small_release) as cat:
        assert table1(run(base, cat), cat).frame.height > 0
        res = run(variants[code][0], cat)
        for make in (lambda: table1(res, cat), lambda: age_sex(res, cat),
                     lambda: distribution(res, cat, "bmi")):
            with pytest.raises(disclosure.Withheld, match="not shown: this cohort differs"):
                make()


def test_asking_again_is_still_withheld_and_counts_are_unchanged(small_release, attack):
    base, variants = attack
    code = next(c for c, (_, diff) in variants.items() if 1 <= diff < K)
    with Session("again", "public"), catalog.open(small_release) as cat:
        n = run(base, cat).count
        assert run(variants[code][0], cat).withheld is not None
        assert run(variants[code][0], cat).withheld is not None      # the cache is screened
        assert run(base, cat).count == n


def test_controlled_sessions_see_the_counts(small_release, attack):
    base, variants = attack
    code = next(c for c, (_, diff) in variants.items() if 1 <= diff < K)
    with Session("analyst", "controlled"), catalog.open(small_release) as cat:
        run(base, cat)
        res = run(variants[code][0], cat)
        assert res.withheld is None and isinstance(res.count, int)


def test_the_guard_is_per_user(small_release, attack):
    base, variants = attack
    code = next(c for c, (_, diff) in variants.items() if 1 <= diff < K)
    with catalog.open(small_release) as cat:
        with Session("u1", "public"):
            run(base, cat)
        with Session("u2", "public"):
            assert run(variants[code][0], cat).withheld is None


def test_attack_across_processes_of_one_project_is_stopped(small_release, attack, tmp_path):
    base, variants = attack
    code = next(c for c, (_, diff) in variants.items() if 1 <= diff < K)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "project.toml").write_text(textwrap.dedent("""\
        name = "diff-test"
        tier = "registered"
        [tables]
        person = "*"
        observation_period = "*"
        condition_occurrence = "*"
        """))
    script = textwrap.dedent("""\
        import json, sys
        from cohort import io
        from cohort.engine import run
        from workbench import catalog
        from workbench.access import Session
        d = io.loads(sys.argv[3])
        with Session("attacker", "registered", project=sys.argv[2]), \\
                catalog.open(sys.argv[1]) as cat:
            r = run(d, cat)
            print(json.dumps({"count": str(r.count), "withheld": r.withheld}))
        """)
    from cohort import io

    def ask(d):
        out = subprocess.run([sys.executable, "-c", script, str(small_release), str(project),
                              io.dumps(d)], capture_output=True, text=True, timeout=300,
                             check=True, cwd=Path(__file__).parent)
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = ask(base)
    assert first["withheld"] is None and first["count"].isdigit()
    second = ask(variants[code][0])
    assert second["withheld"] is not None and second["count"] == "suppressed"
    kept = list((project / disclosure.FOLDER).rglob("*.npy"))
    assert len(kept) == 1                      # only the shown cohort's set is kept
