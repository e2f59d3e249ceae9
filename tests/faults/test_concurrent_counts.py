"""Eight processes count cohorts on the same release at once, from an empty workbench
cache: they race to verify the checksums, write the checksum memo, create the catalog's
view database and (half of them) build the DuckDB-native copy. Every one must give the
answers a single process gives alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from _proc import start

from cohort import io
from cohort.builder import age, cohort, condition, drug, measurement, screening
from cohort.engine import run
from workbench import catalog

DEFINITIONS = [
    cohort("t2d adults").entry(condition("KCD8", "E11").first())
    .require("40+", age(40, None)).build(),
    cohort("hypertension, statin").entry(condition("KCD8", "I10"))
    .require("statin", drug("ATC", "C10AA").within(-365, 30)).build(),
    cohort("high LDL").entry(screening("ldl_cholesterol", min=160))
    .exclude("HbA1c >= 6.5", measurement("LOINC", "4548-4", min=6.5).within(-365, 0)).build(),
]
PROCESSES = 8

JOB = """
import hashlib, json, sys
from cohort import io
from cohort.engine import run
from workbench import catalog
out = []
with catalog.open(sys.argv[1], storage=sys.argv[2]) as cat:
    for text in json.loads(sys.argv[3]):
        r = run(io.loads(text), cat)
        out.append([r.members.height, r.step_persons,
                    hashlib.sha256(r.members.write_csv().encode()).hexdigest()])
print(json.dumps(out))
"""


def _answers(cat: catalog.Catalog) -> list:
    out = []
    for d in DEFINITIONS:
        r = run(d, cat)
        out.append([r.members.height, r.step_persons,
                    hashlib.sha256(r.members.write_csv().encode()).hexdigest()])
    return out


def test_eight_processes_count_at_once(small_release: Path, tmp_path: Path) -> None:
    with catalog.open(small_release) as cat:
        alone = _answers(cat)
    assert all(a[0] > 0 for a in alone), alone
    env = {**os.environ, "WORKBENCH_CACHE": str(tmp_path / "fresh-cache")}
    texts = json.dumps([io.dumps(d) for d in DEFINITIONS])
    procs = [start(["-c", JOB, str(small_release), "native" if k % 2 else "auto", texts],
                   env=env) for k in range(PROCESSES)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-3000:]
        results.append(json.loads(out))
    assert results == [alone] * PROCESSES
    names = sorted(p.name for p in (tmp_path / "fresh-cache" / "catalogs").iterdir())
    assert len(names) == 2 and names[1].startswith("native-"), names   # no temp left over
