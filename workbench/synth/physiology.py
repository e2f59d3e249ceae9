"""Body measurements and lab values of a person on a given day, consistent with disease.

One function per quantity, shared by clinical labs and the national screening, so both
sources tell the same story (HbA1c high in diabetes, eGFR low in CKD, LDL lowered by
statins...). Arguments are aligned arrays: ``i`` indexes persons of the chunk, ``d`` is the
day of each measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.synth.diseases import INDEX, Histories
from workbench.synth.population import YEAR, Population


@dataclass
class Body:
    """Chunk-level person constants that more than one table needs."""

    pop: Population
    hist: Histories
    height: np.ndarray        # cm
    statin_start: np.ndarray  # int32 day or NEVER
    bp_treat_start: np.ndarray
    glucose_treat_start: np.ndarray


def make_body(pop: Population, hist: Histories, rng: np.random.Generator,
              statin_start: np.ndarray, bp_treat_start: np.ndarray,
              glucose_treat_start: np.ndarray) -> Body:
    birth_year = 1970 + pop.birth / YEAR
    secular = np.clip(birth_year - 1950, -20, 50) * 0.12   # taller cohorts
    height = np.where(pop.sex == 0, 168.0, 155.5) + secular + rng.normal(0, 5.8, len(pop))
    return Body(pop, hist, height, statin_start, bp_treat_start, glucose_treat_start)


def _age(b: Body, i, d):
    return (d - b.pop.birth[i]) / YEAR


def bmi(b: Body, i, d, rng):
    age = _age(b, i, d)
    drift = np.clip(0.06 * (age - 45), -2.5, 2.0) - np.clip(0.1 * (age - 70), 0, 2)
    return np.clip(b.pop.bmi[i] + drift + rng.normal(0, 0.6, len(i)), 14, 50)


def weight(b: Body, i, bmi_values):
    return bmi_values * (b.height[i] / 100) ** 2


def waist(b: Body, i, bmi_values, rng):
    return 2.3 * bmi_values + 27 + 4 * (b.pop.sex[i] == 0) + rng.normal(0, 3.5, len(i))


def sbp(b: Body, i, d, rng):
    age = _age(b, i, d)
    v = b.pop.sbp[i] + 0.45 * (age - 45) + rng.normal(0, 8, len(i))
    v = v + 14 * b.hist.has("htn", i, d) - 14 * (b.bp_treat_start[i] <= d)
    return np.clip(v, 80, 220)


def dbp(sbp_values, rng):
    return np.clip(0.55 * sbp_values + 10 + rng.normal(0, 6, len(sbp_values)), 45, 130)


def _t2d_state(b: Body, i, d):
    diagnosed = b.hist.has("t2d", i, d)
    # undiagnosed diabetes in the two years before the first record
    pre = (b.hist.onset[INDEX["t2d"]][i] <= d + 2 * YEAR) & ~diagnosed
    return diagnosed, pre


def hba1c(b: Body, i, d, rng):
    dx, pre = _t2d_state(b, i, d)
    treated = b.glucose_treat_start[i] <= d
    healthy = 5.4 + 0.02 * (b.pop.bmi[i] - 24) + rng.normal(0, 0.3, len(i))
    diabetic = 7.6 - 0.4 * treated + rng.normal(0, 0.9, len(i))
    v = np.where(dx, np.maximum(diabetic, 6.0), np.where(pre, healthy + 0.6, healthy))
    return np.round(np.clip(v, 4.0, 14.0), 1)


def fasting_glucose(b: Body, i, d, rng):
    dx, pre = _t2d_state(b, i, d)
    healthy = 93 + 0.8 * (b.pop.bmi[i] - 24) + rng.normal(0, 9, len(i))
    diabetic = 150 + rng.normal(0, 35, len(i))
    v = np.where(dx, np.maximum(diabetic, 105), np.where(pre, healthy + 12, healthy))
    return np.round(np.clip(v, 55, 450))


def ldl(b: Body, i, d, rng):
    """LDL cholesterol (mg/dL): person level + genetics + age, lowered ~38% by statins."""
    age = _age(b, i, d)
    female = b.pop.sex[i] == 1
    v = (116 + 0.3 * np.clip(age - 45, -25, 25) + 10 * (female & (age > 52))
         + b.pop.ldl_env[i] + b.pop.ldl_genetic[i] + rng.normal(0, 10, len(i)))
    v = np.where(b.statin_start[i] <= d, v * 0.62, v)
    return np.round(np.clip(v, 20, 400))


def hdl(b: Body, i, rng):
    v = 50 + 9 * (b.pop.sex[i] == 1) - 0.9 * (b.pop.bmi[i] - 24) + rng.normal(0, 11, len(i))
    return np.round(np.clip(v, 20, 120))


def triglycerides(b: Body, i, d, rng):
    t2d = b.hist.has("t2d", i, d)
    mu = np.log(115) + 0.045 * (b.pop.bmi[i] - 24) + 0.25 * t2d + 0.04 * b.pop.drinking[i]
    return np.round(np.clip(np.exp(mu + rng.normal(0, 0.45, len(i))), 30, 1500))


def egfr(b: Body, i, d, rng):
    age = _age(b, i, d)
    ckd = b.hist.has("ckd", i, d)
    stage = b.hist.ckd_stage[i]
    normal = np.maximum(112 - 0.75 * np.clip(age - 25, 0, None) + rng.normal(0, 9, len(i)), 61)
    lo = np.select([stage == 3, stage == 4], [30, 15], 5)
    hi = np.select([stage == 3, stage == 4], [59, 29], 14)
    impaired = lo + rng.random(len(i)) * (hi - lo)
    return np.round(np.where(ckd, impaired, normal), 1)


def creatinine(b: Body, i, egfr_values):
    base = np.where(b.pop.sex[i] == 1, 0.7, 0.9)
    return np.round(base * (95 / np.maximum(egfr_values, 3)) ** (1 / 1.15), 2)
