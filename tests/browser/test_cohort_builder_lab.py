"""Notebook 01 in JupyterLab, as a researcher uses it: open it, Run All, read the cohort
builder's count, add an exclusion through the UI (the button, the vocabulary search, the
concept picked from the results) and see the count and the attrition table change to what
the library computes for the same definition."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cohort.builder import age, cohort, condition, drug
from cohort.engine import CohortResult, run
from cohort.privacy import SmallCellPolicy
from workbench import catalog

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT_MS = 120_000           # kernels start slowly on a busy 2-core machine


def _t2d():
    """Notebook 01's cohort, rebuilt here (as in tests/notebooks/test_01_quickstart.py)."""
    return (cohort("T2D starting metformin")
            .entry(condition("KCD8", "E11").first(), prior_observation=365)
            .require("aged 40-79 at diagnosis", age(40, 79))
            .require("metformin within 90 days", drug("ATC", "A10BA02").within(0, 90))
            .exclude("no insulin before", drug("ATC", "A10A").within(None, -1)))


def _shown(result: CohortResult) -> tuple[str, list[list[str]]]:
    """The count and attrition rows as the builder shows them (the widget's policy)."""
    rows = result.attrition.select("rule", "persons_shown", "lost_shown").rows()
    return SmallCellPolicy().format(result.count), [list(r) for r in rows]


class Steps:
    """Numbered screenshots, one per step: the window with ``top`` scrolled to its top,
    or just ``element``."""

    def __init__(self, page, folder: Path) -> None:
        self.page, self.folder, self.n = page, folder, 0

    def shot(self, name: str, *, top=None, element=None) -> Path:
        self.n += 1
        path = self.folder / f"{self.n:02d}-{name}.png"
        if top is not None:
            top.evaluate("e => e.scrollIntoView({block: 'start'})")
        (element or self.page).screenshot(path=path)
        return path


def _attrition_rows(page) -> list[list[str]]:
    return [[c.strip() for c in row.locator("td").all_inner_texts()]
            for row in page.locator(".wb-attrition tr").all()
            if row.locator("td").count()]


def test_adding_an_exclusion_in_the_builder_changes_the_count(lab, page, small_release,
                                                              artifacts):
    from playwright.sync_api import expect

    plus_htn = _t2d().exclude("exclusion", condition("KCD8", "I10"))
    with catalog.open(small_release) as cat:
        first_count, first_rows = _shown(run(_t2d().build(), cat))
        want_count, want_rows = _shown(run(plus_htn.build(), cat))
    assert want_count != first_count        # else the test could not see a change

    steps = Steps(page, artifacts)
    page.set_default_timeout(WAIT_MS)
    page.goto(lab.tree_url("01_quickstart.ipynb"))
    # loaded (its title rendered) and its kernel started (the status bar says Idle)
    expect(page.locator(".jp-Notebook h1", has_text="01 Quickstart")).to_be_visible(
        timeout=WAIT_MS)
    expect(page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"Python 3.*\| Idle"))
           ).to_be_visible(timeout=WAIT_MS)
    steps.shot("notebook-opened")

    # Run > Run All Cells, from the menu bar
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

    # the builder appears when the last cell has run, its first count already in
    builder = page.locator(".wb-cohort-builder")
    count = page.locator(".wb-count b")
    expect(count).to_be_visible(timeout=WAIT_MS)
    shown_first = count.inner_text().strip()
    steps.shot("run-all-builder", top=builder)
    assert shown_first == first_count
    assert _attrition_rows(page) == first_rows

    # add an exclusion: a new rule "exclusion" (none of a condition), not complete yet
    page.locator(".wb-add-exclusion").click()
    expect(page.locator(".wb-count")).to_contain_text("incomplete", timeout=WAIT_MS)
    steps.shot("exclusion-added-incomplete", top=builder)

    # its concept set: search the vocabulary for I10 and add KCD8 I10 (hypertension)
    page.locator(".wb-concept-search-open").last.click()
    search = page.locator(".wb-concept-search").last
    search.locator(".wb-concept-search-text input").fill("I10")
    # (ipywidgets writes an option's spaces as no-break spaces: \s matches both)
    wanted = re.compile(r"^KCD8\sI10\s—")
    options = search.locator(".wb-concept-search-results option")
    expect(options.filter(has_text=wanted)).to_have_count(1, timeout=WAIT_MS)
    labels = options.all_inner_texts()
    search.locator(".wb-concept-search-results select").select_option(
        index=next(k for k, text in enumerate(labels) if wanted.search(text)))
    add = search.locator(".wb-concept-search-add")
    expect(add).to_be_enabled(timeout=WAIT_MS)
    steps.shot("concept-found", element=search)
    add.click()

    # the count comes back (it is hidden while the definition is incomplete)
    expect(count).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".wb-count-spinner")).to_have_text("", timeout=WAIT_MS)
    shown_after = count.inner_text().strip()
    steps.shot("count-after-exclusion", top=builder)
    assert shown_after == want_count != shown_first
    assert _attrition_rows(page) == want_rows
