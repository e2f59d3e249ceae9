# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 Quickstart: a cohort in code, its counts, attrition and Table 1
#
# Adults aged 40-79 with a first type 2 diabetes diagnosis (KCD-8 E11) and a year of prior
# observation, who start metformin within 90 days and had no insulin before. Every count
# shown passes the small-cell policy (counts of 1-19 print as `< 20`).

# %% tags=["parameters"]
# The release to read: $WORKBENCH_RELEASE (set by `workbench run-notebook` / `rerun`),
# else releases/default of this checkout.
import os

RELEASE = os.environ.get("WORKBENCH_RELEASE", "")

# %%
from cohort.builder import age, cohort, condition, drug
from cohort.characterize import table1
from cohort.engine import run
from workbench import catalog, runrecord

release = RELEASE or runrecord.release_path()
cat = catalog.open(release)
rec = runrecord.start(cat)          # release id + checksums, lock hash, Python/Java/Hail
print(f"release {cat.release_id} at {release}")

# %% [markdown]
# ## The cohort, written like a protocol

# %%
t2d = (cohort("T2D starting metformin")
       .entry(condition("KCD8", "E11").first(), prior_observation=365)
       .require("aged 40-79 at diagnosis", age(40, 79))
       .require("metformin within 90 days", drug("ATC", "A10BA02").within(0, 90))
       .exclude("no insulin before", drug("ATC", "A10A").within(None, -1))
       .build())
rec.definition(t2d)
result = run(t2d, cat)
print(f"{result.count} persons")

# %% [markdown]
# ## Attrition: persons left after each rule

# %%
attrition = result.attrition
runrecord.record("attrition", attrition.select("rule", "persons_shown", "lost_shown"))
runrecord.record_count("persons", result.members["subject_id"].n_unique())
attrition.select("rule", "persons_shown", "lost_shown")

# %% [markdown]
# ## Table 1 (at each person's index date)

# %%
t1 = table1(result, cat, conditions=["E11", "I10", "E78"], drugs=["A10B", "C10A"])
age_mean = t1.frame.filter((t1.frame["variable"] == "age at index")
                          & (t1.frame["level"] == "mean (sd)"))
runrecord.record("age_mean", age_mean["value"].item(), tolerance=1e-6)
runrecord.record("table1_shown", t1.display())
t1

# %% [markdown]
# ## Cohort builder in JupyterLab
#
# The same definition in the cohort builder. Edit it (add an exclusion, search the
# vocabulary, change an age): the count and the attrition funnel follow each edit, through
# the same small-cell policy. `builder.definition` gives the edited definition back as
# plain data. The builder counts on `cat`, so the catalog stays open here; when done:
# `builder.close(); cat.close()`.

# %%
from cohort.widgets import CohortBuilder

builder = CohortBuilder(cat, t2d)
builder.wait()                      # the first count is in before the widget is shown
builder
