"""Output checking (issue 7, item 3): small cells, rounding after suppression, and
complementary suppression that an attacker cannot undo by subtraction.

The attacker here is independent of the policy's own linear programming: a brute-force
search over every integer assignment of the hidden cells that agrees with what is shown
(counts >= 0, a chain never grows, a "< k" cell is 1..k-1). A hidden small cell is
protected when every value 1..k-1 is still possible for it.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohort.builder import age, cohort, condition, drug
from cohort.engine import clear_cache, run
from cohort.privacy import SmallCellPolicy, Suppressed
from workbench import catalog

K = 4          # small enough for the brute force to cover every case


def possible_values(shown_persons, shown_lost, k, top):
    """What an attacker can tell from a shown chain: for each step, the set of values its
    persons cell can take, and the set its loss can take, over every integer chain that
    agrees with what is shown (counts 0..top, a chain never grows, a "< k" cell is
    1..k-1, a complementary-hidden cell anything). ``None`` marks a complementary-hidden
    cell, ``"<k"`` a small one. Forward and backward reachability, so every value listed
    lies on a whole consistent chain."""
    n = len(shown_persons)

    def ok(cell, v):
        if cell == "<k":
            return 1 <= v <= k - 1
        if cell is None:
            return v >= 0
        return v == cell

    domain = [[v for v in range(top + 1) if ok(shown_persons[i], v)] for i in range(n)]
    fwd = [set(domain[0])]
    for i in range(1, n):
        fwd.append({v for v in domain[i] if any(ok(shown_lost[i], u - v) for u in fwd[-1])})
    bwd = [set()] * n
    bwd[n - 1] = set(domain[n - 1])
    for i in range(n - 2, -1, -1):
        bwd[i] = {u for u in domain[i] if any(ok(shown_lost[i + 1], u - v) for v in bwd[i + 1])}
    valid = [fwd[i] & bwd[i] for i in range(n)]
    lost = [set()] + [{u - v for u in valid[i - 1] for v in valid[i] if ok(shown_lost[i], u - v)}
                      for i in range(1, n)]
    return valid, lost


def shape_only(shown_persons, shown_lost, k, top):
    """What the table's shape alone tells: every cell hidden, the small ones as "< k"."""
    return possible_values([c if c == "<k" else None for c in shown_persons],
                           [c if c == "<k" else None for c in shown_lost], k, top)


def _as_shown(cell):
    if isinstance(cell, Suppressed):
        return None if cell.complementary else "<k"
    return cell


chains = st.lists(st.integers(0, 6), min_size=1, max_size=4).flatmap(
    lambda drops: st.integers(sum(drops), sum(drops) + 12).map(
        lambda start: [start - sum(drops[:i]) for i in range(len(drops) + 1)]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains)
def test_no_small_cell_of_an_attrition_chain_can_be_worked_out(persons):
    policy = SmallCellPolicy(threshold=K)
    cells, lost = policy.chain(persons)
    # what is shown is true, and nothing shown is small
    true_lost = [a - b for a, b in zip(persons, persons[1:], strict=False)]
    for c, v in zip(cells + lost[1:], persons + true_lost, strict=True):
        if not isinstance(c, Suppressed):
            assert c == v and not 0 < v < K
        elif not c.complementary:
            assert 0 < v < K
    valid, lost_sets = possible_values([_as_shown(c) for c in cells],
                                       [None, *[_as_shown(c) for c in lost[1:]]], K,
                                       top=persons[0] + 3 * K)
    shape_p, shape_l = shape_only([_as_shown(c) for c in cells],
                                  [None, *[_as_shown(c) for c in lost[1:]]], K,
                                  top=persons[0] + 3 * K)
    for i, v in enumerate(persons):
        assert v in valid[i]
    for i, c in enumerate(cells):
        if isinstance(c, Suppressed) and not c.complementary:
            assert valid[i] == shape_p[i], (persons, cells, lost)
            assert len(valid[i]) >= 2 or persons[i] == 1 and K == 2
    for j, c in enumerate(lost[1:], start=1):
        if isinstance(c, Suppressed) and not c.complementary:
            assert lost_sets[j] == shape_l[j], (persons, cells, lost)


def test_rounding_comes_after_suppression():
    p = SmallCellPolicy(threshold=10, rounding=5)
    assert [p.format(p.count(n)) for n in (0, 1, 9, 10, 11, 12, 13, 1002)] == \
        ["0", "< 10", "< 10", "10", "10", "10", "15", "1,000"]
    with pytest.raises(ValueError, match="rounding"):
        SmallCellPolicy(rounding=0)
    with pytest.raises(ValueError, match="threshold"):
        SmallCellPolicy(threshold=0)


@pytest.fixture(autouse=True)
def _fresh():
    clear_cache()


@pytest.mark.parametrize("k", [5, 20, 50])
def test_attrition_of_real_cohorts_cannot_be_undone(small_release, k):
    """Cohorts whose rules remove few persons, on the small release, at three thresholds:
    the attrition shown never lets a hidden small cell be worked out (brute force over
    the shown table), and the cohort's count agrees with the attrition's last row."""
    defs = [
        cohort("t2d").entry(condition("KCD8", "E11").first())
        .require("40-79", age(40, 79))
        .require("metformin in 90 days", drug("ATC", "A10BA02").within(0, 90))
        .exclude("no insulin before", drug("ATC", "A10A").within(None, -1)).build(),
        cohort("htn").entry(condition("KCD8", "I10").first())
        .require("30+", age(30, None)).require("35+", age(35, None))
        .exclude("no E10", condition("KCD8", "E10").within(None, None))
        .require("up to 90", age(None, 90)).build(),
        cohort("htn, by single years").entry(condition("KCD8", "I10").first())
        .require("36+", age(36, None)).require("37+", age(37, None))
        .require("38+", age(38, None)).require("up to 88", age(None, 88)).build(),
    ]
    policy = SmallCellPolicy(threshold=k)
    hidden_small = 0
    with catalog.open(small_release) as cat:
        for d in defs:
            res = run(d, cat, policy=policy)
            att = res.attrition
            persons = res.step_persons
            shown_p = [None if s else p
                       for s, p in zip(att["suppressed"], att["persons"], strict=True)]
            shown_p = ["<k" if s == f"< {k}" else v
                       for s, v in zip(att["persons_shown"], shown_p, strict=True)]
            shown_l = [None] + ["<k" if s == f"< {k}" else (None if v is None else v)
                                for s, v in zip(att["lost_shown"][1:], att["lost"][1:],
                                                strict=True)]
            assert str(res.count) == att["persons_shown"][-1]
            true_lost = [a - b for a, b in zip(persons, persons[1:], strict=False)]
            hidden_small += sum(0 < v < k for v in persons + true_lost)
            if not any(0 < v < k for v in persons + true_lost):
                continue
            _check_small_cells_protected(persons, shown_p, shown_l, k)
    assert hidden_small > 0, "the cohorts should have small losses to protect"


def _check_small_cells_protected(persons, shown_p, shown_l, k):
    """The same attacker as above, on a real table."""
    top = max(persons) + 3 * k
    valid, lost_sets = possible_values(shown_p, shown_l, k, top)
    shape_p, shape_l = shape_only(shown_p, shown_l, k, top)
    for i, v in enumerate(persons):
        assert v in valid[i]
    for i in range(len(persons)):
        if shown_p[i] == "<k":
            assert valid[i] == shape_p[i], (persons, shown_p, shown_l)
        if i and shown_l[i] == "<k":
            assert lost_sets[i] == shape_l[i], (persons, shown_p, shown_l)
