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
# # 04 Rerunning a published notebook
#
# A reviewer receives a published notebook (an `.ipynb` with outputs) and wants to know
# whether its numbers still hold: on the same data release, in the same environment. Two
# commands do it:
#
# ```
# workbench run-notebook notebooks/01_quickstart.py --out published/01_quickstart.ipynb
# workbench rerun published/01_quickstart.ipynb        # pass, or fail: <kind> <key>: ...
# ```
#
# `run-notebook` executes the notebook top to bottom in a clean kernel and stores, next to
# the outputs, a **run manifest** in the notebook's metadata (`metadata.workbench`): the
# release (id, content id, sha256 of every table and file, seed), the environment (sha256
# of `env/requirements.lock`, Python, Java and Hail versions), the cohort definitions by
# content hash, seeds, parameters, and the key results the notebook chose to record with
# `workbench.runrecord.record(key, value, tolerance=...)`.
#
# `rerun` clears the outputs, executes the notebook again in a clean kernel and compares the
# new manifest with the published one. The report names the first difference and its kind:
# **release** (another release id or checksum), **environment** (lock file, Java, Hail,
# Python), **definition** (a cohort definition or seed changed) or **result** (a recorded
# number outside its tolerance, a table cell). Exit code 0 on pass, 1 on fail.
#
# This notebook walks through it with `01_quickstart`.

# %% tags=["parameters"]
import os

RELEASE = os.environ.get("WORKBENCH_RELEASE", "")

# %%
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import polars as pl

from workbench import catalog, runrecord
from workbench.rerun import publish

release = Path(RELEASE or runrecord.release_path())
with catalog.open(release) as cat:
    rec = runrecord.start(cat)       # this notebook's own record
notebooks = Path.cwd()
if not (notebooks / "01_quickstart.py").is_file():        # run from the checkout's root
    notebooks = runrecord.ROOT / "notebooks"
work = Path(tempfile.mkdtemp(prefix="published-"))
print(f"release {rec.release['release_id']}; publishing into {work}")

# %% [markdown]
# ## 1. Publish: execute and keep the manifest

# %%
published = work / "01_quickstart.ipynb"
publish(notebooks / "01_quickstart.py", published, release=release)
meta = nbformat.read(published, as_version=4).metadata["workbench"]
pl.DataFrame({"part": ["release id", "content id", "tables and files checksummed",
                       "lock sha256", "Python", "Java", "Hail", "definitions"],
              "value": [meta["release"]["release_id"], meta["release"]["content_id"],
                        str(len(meta["release"]["checksums"])),
                        meta["environment"]["lock_sha256"][:16] + "...",
                        meta["environment"]["python"], str(meta["environment"]["java"]),
                        str(meta["environment"]["hail"]),
                        json.dumps(meta["definitions"])]})

# %% [markdown]
# The recorded key results, as stored:

# %%
pl.DataFrame([{"key": k, "type": v["type"], "tolerance": v["tolerance"],
               "value": json.dumps(v.get("value", v.get("rows")))[:70]}
              for k, v in meta["results"].items()])

# %% [markdown]
# ## 2. Rerun: same release, same environment -> pass


# %%
def workbench(*args):
    """The workbench CLI, as a reviewer types it; prints its report, returns the exit code."""
    done = subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True,
                          text=True)
    print(done.stdout.strip())
    return done.returncode


code_same = workbench("rerun", str(published), "--release", str(release))
_ = runrecord.record("rerun_same_exit_code", code_same)

# %% [markdown]
# ## 3. What a failure looks like
# We tamper with the published record: claim one more person than the cohort has.

# %%
nb = nbformat.read(published, as_version=4)
nb.metadata["workbench"]["results"]["persons"]["value"] += 1
tampered = work / "01_quickstart_tampered.ipynb"
nbformat.write(nb, tampered)
code_tampered = workbench("rerun", str(tampered), "--release", str(release))
_ = runrecord.record("rerun_tampered_exit_code", code_tampered)

# %% [markdown]
# And a published notebook from another environment (here: a different lock file hash)
# fails as **environment** before any result is compared:

# %%
nb = nbformat.read(published, as_version=4)
nb.metadata["workbench"]["environment"]["lock_sha256"] = "0" * 64
other_env = work / "01_quickstart_other_env.ipynb"
nbformat.write(nb, other_env)
code_env = workbench("rerun", str(other_env), "--release", str(release))
_ = runrecord.record("rerun_environment_exit_code", code_env)

# %% [markdown]
# ## The same for the command line
# `workbench gwas ... --out DIR` writes `DIR/run_manifest.json` with the same parts (release,
# environment, definitions, and samples, variants, lambda GC and hits as key results).
