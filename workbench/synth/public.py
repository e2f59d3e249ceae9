"""Public-agency tables: national health screening, death registry, regional indicators.

Screening follows the national programme: adults (20+) are invited every two years
(even birth years in even years), about 70% attend; lipids are measured in a subset of
rounds and LDL is left missing when triglycerides are >= 400 mg/dL (Friedewald).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from workbench.schema import TABLES
from workbench.synth import physiology as phys
from workbench.synth.clinical import _dates, _observed
from workbench.synth.diseases import NEVER, Histories
from workbench.synth.population import REGIONS, YEAR, Population, day


def screening_table(pop: Population, hist: Histories, body: phys.Body,
                    rng: np.random.Generator) -> pa.Table:
    n = len(pop)
    propensity = rng.beta(5, 2, n)
    birth_year = (1970 + (pop.birth + 0.5) / YEAR).astype(int)
    i_parts, d_parts = [], []
    for year in range(2002, 2025):
        invited = ((year - birth_year) % 2 == 0) & (year - birth_year >= 20)
        attend = invited & (rng.random(n) < propensity)
        i = np.flatnonzero(attend)
        d = (day(year, 3, 1) + rng.random(len(i)) * 275).astype(np.int32)
        ok = _observed(pop, hist, i, d)
        i_parts.append(i[ok])
        d_parts.append(d[ok])
    i = np.concatenate(i_parts)
    d = np.concatenate(d_parts)
    order = np.lexsort((d, i))
    i, d = i[order], d[order]
    m = len(i)
    bmi = np.round(phys.bmi(body, i, d, rng), 1)
    sbp = phys.sbp(body, i, d, rng)
    ldl = phys.ldl(body, i, d, rng)
    hdl = phys.hdl(body, i, rng)
    tg = phys.triglycerides(body, i, d, rng)
    lipids_measured = rng.random(m) < 0.65
    no_lipids = ~lipids_measured
    ldl_missing = no_lipids | (tg >= 400)
    quit_later = (pop.smoking[i] == 3) & (rng.random(m) < 0.05)
    smoking = np.where(quit_later, 2, pop.smoking[i])
    drinking = np.clip(np.round(pop.drinking[i] + rng.normal(0, 0.7, m)), 0, 7)
    exercise = np.clip(np.round(2.2 + 1.3 * pop.activity[i] + rng.normal(0, 1.0, m)), 0, 7)
    return pa.table({
        "person_id": pop.person_id[i], "screening_date": _dates(d),
        "height_cm": np.round(body.height[i] + rng.normal(0, 0.4, m), 1),
        "weight_kg": np.round(phys.weight(body, i, bmi), 1), "bmi": bmi,
        "waist_cm": np.round(phys.waist(body, i, bmi, rng), 1),
        "sbp": np.round(sbp), "dbp": np.round(phys.dbp(sbp, rng)),
        "fasting_glucose": phys.fasting_glucose(body, i, d, rng),
        "total_cholesterol": pa.array(ldl + hdl + np.round(tg / 5), mask=no_lipids),
        "ldl_cholesterol": pa.array(ldl, mask=ldl_missing),
        "hdl_cholesterol": pa.array(hdl, mask=no_lipids),
        "triglycerides": pa.array(tg, mask=no_lipids),
        "egfr": phys.egfr(body, i, d, rng), "smoking_status": smoking,
        "drinking_days_per_week": drinking.astype(np.int32),
        "exercise_days_per_week": exercise.astype(np.int32),
    }).cast(TABLES["health_screening"])


def death_registry_table(pop: Population, hist: Histories) -> pa.Table:
    dead = np.flatnonzero(hist.death != NEVER)
    dd = _dates(hist.death[dead])
    years = 1970 + (hist.death[dead] / YEAR).astype(int)
    return pa.table({
        "person_id": pop.person_id[dead], "death_date": dd,
        "underlying_cause": hist.death_cause[dead], "report_year": np.minimum(years + 1, 2025),
    }).cast(TABLES["death_registry"])


def location_table() -> pa.Table:
    return pa.table({
        "location_id": np.arange(1, len(REGIONS) + 1), "city": [r[1] for r in REGIONS],
        "state": [r[0] for r in REGIONS], "location_source_value": [r[2] for r in REGIONS],
        "country_source_value": ["KR"] * len(REGIONS),
    }).cast(TABLES["location"])


def region_indicator_table(rng: np.random.Generator) -> pa.Table:
    years = np.arange(2002, 2025)
    r = len(REGIONS)
    base_dep = rng.normal(0, 1, r)
    metro = np.array([code in {"11", "26", "27", "28", "29", "30", "31"} for code, *_ in REGIONS])
    base_dep = base_dep - 0.6 * metro
    base_pm = 27 + 4 * metro + rng.normal(0, 2.5, r)
    loc = np.repeat(np.arange(1, r + 1), len(years))
    yr = np.tile(years, r)
    dep = np.repeat(base_dep, len(years)) + 0.02 * (yr - 2002) + rng.normal(0, 0.1, len(yr))
    pm = np.repeat(base_pm, len(years)) * (1 - 0.018 * (yr - 2002)) + rng.normal(0, 1.2, len(yr))
    return pa.table({"location_id": loc, "year": yr, "deprivation_index": np.round(dep, 3),
                     "pm25": np.round(pm, 1)}).cast(TABLES["region_indicator"])
