"""Governance tables: consent per participant and scope, and the sample link.

About 1% withdraw; withdrawn participants stay in the tables (a release is a snapshot)
and the libraries must remove them from every result.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from workbench.schema import TABLES
from workbench.synth.clinical import _dates
from workbench.synth.diseases import Histories
from workbench.synth.population import STUDY_END, Population, day


def consent_table(pop: Population, hist: Histories, genotyped: np.ndarray, wearer: np.ndarray,
                  rng: np.random.Generator) -> pa.Table:
    n = len(pop)
    lo = np.maximum(day(2019), pop.obs_start)
    hi = np.maximum(lo, np.minimum(day(2024, 6, 30), hist.end))
    consent = (lo + rng.random(n) * (hi - lo)).astype(np.int32)
    withdrawn = rng.random(n) < 0.01
    wd = np.minimum(consent + 30 + rng.random(n) * 1500, STUDY_END).astype(np.int32)
    return pa.table({
        "person_id": pop.person_id, "consent_date": _dates(consent),
        "clinical": rng.random(n) < 0.995, "public": rng.random(n) < 0.97,
        "lifelog": np.where(wearer, rng.random(n) < 0.98, rng.random(n) < 0.55),
        "genomic": np.where(genotyped, rng.random(n) < 0.97, rng.random(n) < 0.85),
        "withdrawal_date": pa.array(wd, type=pa.date32(), mask=~withdrawn),
    }).cast(TABLES["consent"])


def sample_ids(person_ids: np.ndarray, seed: int) -> np.ndarray:
    """Pseudonymous, stable sample ids: 'KB' + 10 hex digits of a keyed hash.

    >>> sample_ids(np.array([1, 2]), seed=7).tolist()[0][:2]
    'KB'
    """
    key = f"nbb-sample:{seed}:".encode()
    return np.array(["KB" + hashlib.sha256(key + str(int(p)).encode()).hexdigest()[:10].upper()
                     for p in person_ids])


def sample_link_table(person_ids: np.ndarray, ids: np.ndarray) -> pa.Table:
    order = np.argsort(person_ids)
    return pa.table({"person_id": person_ids[order], "sample_id": ids[order]}).cast(
        TABLES["sample_link"])
