"""When each person falls ill and dies: Gompertz onsets with person-level risk multipliers.

Onset age for a hazard ``m * lam * exp(gam * age)`` is drawn exactly by inversion:
``t = log(1 + E * gam / (m * lam)) / gam`` with ``E ~ Exp(1)``. Comorbidity enters through
the multipliers (T2D raises hypertension and CKD; hypertension, T2D and LDL raise MI...),
mortality through a yearly hazard that rises with age and with the diseases present.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.synth.population import STUDY_END, STUDY_START, YEAR, Population, day


@dataclass(frozen=True)
class Disease:
    name: str
    lam: float            # yearly hazard at age 0 (times exp(gam * age))
    gam: float
    kind: str             # "chronic" | "acute" | "cancer"
    followup: float       # follow-up encounters per year after the first record
    codes: tuple[tuple[str, float], ...]   # KCD-8 leaf codes and their shares


DISEASES: tuple[Disease, ...] = (
    Disease("t2d", 2.4e-4, 0.060, "chronic", 3.0, (("E11.9", 0.9), ("E11.3", 0.1))),
    Disease("htn", 6.0e-4, 0.055, "chronic", 2.5, (("I10", 1.0),)),
    Disease("lipid", 4.0e-4, 0.050, "chronic", 2.0,
            (("E78.0", 0.3), ("E78.5", 0.55), ("E78.2", 0.15))),
    Disease("ckd", 2.0e-5, 0.070, "chronic", 3.0, (("N18.3", 1.0),)),   # stage set later
    Disease("af", 4.0e-6, 0.090, "chronic", 2.0, (("I48.9", 1.0),)),
    Disease("mi", 8.0e-6, 0.080, "acute", 2.0, (("I21.9", 0.8), ("I21.0", 0.2))),
    Disease("stroke", 8.0e-6, 0.085, "acute", 2.0, (("I63.9", 0.75), ("I63.5", 0.25))),
    Disease("hf", 3.0e-6, 0.090, "chronic", 2.0, (("I50.9", 1.0),)),
    Disease("cad", 2.0e-5, 0.070, "chronic", 1.5, (("I25.1", 1.0),)),
    Disease("stomach_ca", 2.0e-6, 0.090, "cancer", 3.0, (("C16.9", 1.0),)),
    Disease("colon_ca", 1.8e-6, 0.090, "cancer", 3.0, (("C18.9", 1.0),)),
    Disease("lung_ca", 6.0e-7, 0.105, "cancer", 3.0, (("C34.9", 1.0),)),
    Disease("liver_ca", 1.0e-6, 0.085, "cancer", 3.0, (("C22.0", 1.0),)),
    Disease("breast_ca", 3.0e-5, 0.045, "cancer", 3.0, (("C50.9", 1.0),)),
    Disease("prostate_ca", 1.0e-7, 0.125, "cancer", 3.0, (("C61", 1.0),)),
    Disease("thyroid_ca", 1.2e-4, 0.020, "cancer", 2.0, (("C73", 1.0),)),
    Disease("asthma", 1.5e-3, 0.0, "chronic", 1.5, (("J45.9", 1.0),)),
    Disease("gerd", 3.0e-3, 0.0, "chronic", 1.0, (("K21.9", 1.0),)),
    Disease("knee_oa", 2.0e-5, 0.080, "chronic", 1.5, (("M17.9", 1.0),)),
    Disease("depression", 1.8e-3, 0.0, "chronic", 2.0, (("F32.9", 1.0),)),
    Disease("copd", 4.0e-7, 0.100, "chronic", 2.0, (("J44.9", 1.0),)),
    Disease("sleep_apnoea", 4.0e-4, 0.02, "chronic", 0.5, (("G47.3", 1.0),)),
    Disease("obesity", 1.0e-3, 0.0, "chronic", 0.5, (("E66.9", 1.0),)),
    Disease("dementia", 4.0e-8, 0.140, "chronic", 2.0, (("G30.9", 0.5), ("F03", 0.5))),
)
INDEX = {d.name: i for i, d in enumerate(DISEASES)}
_ANY_AGE = {"asthma", "gerd", "depression", "obesity"}   # others start at 18
NEVER = np.iinfo(np.int32).max

# yearly mortality hazard ratio while a disease is present
_DEATH_HR = {"t2d": 1.5, "ckd": 2.0, "mi": 2.0, "stroke": 2.0, "hf": 3.0, "copd": 2.0,
             "stomach_ca": 3.0, "colon_ca": 2.5, "lung_ca": 8.0, "liver_ca": 8.0,
             "breast_ca": 1.8, "prostate_ca": 1.5, "thyroid_ca": 1.05, "dementia": 3.0}
_CANCERS = [d.name for d in DISEASES if d.kind == "cancer"]
_OTHER_CAUSES = (("J18.9", 0.22), ("I25.1", 0.2), ("J44.9", 0.08), ("I50.9", 0.1),
                 ("E11.9", 0.08), ("N18.9", 0.05), ("G30.9", 0.1), ("R99", 0.17))


@dataclass
class Histories:
    """Per person in a chunk: onset and first-record days per disease, death."""

    onset: np.ndarray      # (D, n) int32 day or NEVER
    record: np.ndarray     # (D, n) int32 day of the first record in the data, or NEVER
    death: np.ndarray      # (n,) int32 day or NEVER
    death_cause: np.ndarray  # (n,) str code or ""
    end: np.ndarray        # (n,) int32 last observed day (obs_end or death)
    ckd_stage: np.ndarray  # (n,) int8 3/4/5

    def has(self, name: str, i: np.ndarray | None = None,
            d: np.ndarray | None = None) -> np.ndarray:
        """Recorded at all (per person), or for rows (person index i, day d): recorded on or
        before that day."""
        rec = self.record[INDEX[name]]
        return rec != NEVER if i is None else rec[i] <= d


def _onset(lam: float, gam: float, mult: np.ndarray, birth: np.ndarray,
           rng: np.random.Generator, min_age: float = 0.0) -> np.ndarray:
    """Onset day; the hazard is zero before ``min_age`` and Gompertz from then on."""
    e = rng.exponential(1.0, len(birth))
    with np.errstate(divide="ignore", over="ignore"):
        rate = mult * lam * np.exp(gam * min_age)
        t = min_age + (np.log1p(e * gam / rate) / gam if gam > 0 else e / rate)
    t = np.where(np.isfinite(t) & (t < 120), t, np.inf)
    out = np.full(len(birth), NEVER, np.int64)
    ok = np.isfinite(t)
    out[ok] = birth[ok] + (t[ok] * YEAR).astype(np.int64)
    return np.minimum(out, NEVER).astype(np.int32)


def simulate(pop: Population, rng: np.random.Generator) -> Histories:
    """Onsets, first records, and deaths for the persons of ``pop`` (a chunk)."""
    n = len(pop)
    male = pop.sex == 0
    female = ~male
    smoker = pop.smoking == 3
    ever_smoker = pop.smoking >= 2
    bmi = pop.bmi
    ldl = 120 + pop.ldl_env + pop.ldl_genetic
    onset = np.full((len(DISEASES), n), NEVER, np.int32)

    def draw(name: str, log_mult: np.ndarray | float, allowed: np.ndarray | None = None):
        d = DISEASES[INDEX[name]]
        mult = np.exp(np.broadcast_to(log_mult, (n,)))
        if allowed is not None:
            mult = np.where(allowed, mult, 0.0)
        onset[INDEX[name]] = _onset(d.lam, d.gam, mult, pop.birth, rng,
                                    0.0 if name in _ANY_AGE else 18.0)

    def ever(name: str) -> np.ndarray:
        return onset[INDEX[name]] <= pop.obs_end

    draw("t2d", 0.25 * male + 0.12 * (bmi - 24) - 0.15 * pop.activity + pop.t2d_genetic
         + np.where(pop.ancestry == 1, 0.15, 0.0))
    draw("htn", 0.3 * male + 0.08 * (bmi - 24) - 0.3 * pop.activity + 0.04 * (pop.sbp - 120)
         + np.log(1.8) * ever("t2d") + 0.05 * pop.drinking)
    draw("lipid", 0.035 * (ldl - 120) + 0.3 * ever("t2d"))
    draw("ckd", np.log(3.0) * ever("t2d") + np.log(2.0) * ever("htn"))
    draw("af", 0.4 * male + np.log(1.5) * ever("htn") + 0.05 * pop.drinking)
    draw("mi", np.log(2.5) * male + np.log(2.0) * ever("t2d") + np.log(1.6) * ever("htn")
         + 0.012 * (ldl - 120) + np.log(1.8) * smoker)
    draw("stroke", np.log(2.5) * ever("htn") + np.log(1.6) * ever("t2d") + np.log(3.0) * ever("af")
         + np.log(1.5) * smoker)
    draw("hf", np.log(3.0) * ever("mi") + np.log(1.5) * ever("htn") + np.log(1.5) * ever("af"))
    draw("cad", np.log(1.8) * male + np.log(1.5) * ever("t2d") + np.log(1.5) * ever("htn")
         + 0.008 * (ldl - 120))
    draw("stomach_ca", np.log(2.0) * male + np.log(1.6) * ever_smoker)
    draw("colon_ca", np.log(1.5) * male + 0.03 * (bmi - 24))
    draw("lung_ca", np.log(1.5) * male + np.log(4.0) * ever_smoker)
    draw("liver_ca", np.log(3.0) * male + 0.1 * pop.drinking)
    draw("breast_ca", 0.0, allowed=female)
    draw("prostate_ca", 0.0, allowed=male)
    draw("thyroid_ca", np.log(3.0) * female)
    draw("asthma", 0.0)
    draw("gerd", 0.05 * (bmi - 24))
    draw("knee_oa", np.log(1.8) * female + 0.08 * (bmi - 24))
    draw("depression", np.log(1.7) * female)
    draw("copd", np.log(4.0) * ever_smoker + np.log(1.3) * male)
    draw("sleep_apnoea", np.log(2.0) * male + 0.15 * (bmi - 24))
    draw("obesity", 0.35 * (bmi - 27), allowed=bmi >= 25)
    draw("dementia", np.log(1.3) * female + np.log(1.5) * ever("stroke"))

    death, cause = _deaths(pop, onset, rng)
    end = np.minimum(pop.obs_end, death).astype(np.int32)
    record = _first_records(pop, onset, end, rng)
    u = rng.random(n)
    ckd_stage = np.where(u < 0.72, 3, np.where(u < 0.92, 4, 5)).astype(np.int8)
    return Histories(onset, record, death, cause, end, ckd_stage)


def _deaths(pop: Population, onset: np.ndarray, rng: np.random.Generator):
    n = len(pop)
    death = np.full(n, NEVER, np.int32)
    log_hr = {name: np.log(hr) for name, hr in _DEATH_HR.items()}
    for year in range(2002, 2025):
        y0, y1 = day(year), day(year + 1) - 1
        alive = (death == NEVER) & (pop.obs_start <= y1) & (pop.obs_end >= y0)
        if not alive.any():
            continue
        age = (y0 - pop.birth) / YEAR
        lh = -11.5 + 0.093 * np.clip(age, 0, None) + 0.35 * (pop.sex == 0)
        lh = lh + 0.3 * (pop.smoking == 3)
        for name, lhr in log_hr.items():
            lh = lh + lhr * (onset[INDEX[name]] <= y0)
        p = 1 - np.exp(-np.exp(lh))
        dies = alive & (rng.random(n) < p)
        when = y0 + (rng.random(n) * (y1 - y0)).astype(np.int32)
        ok = dies & (when >= pop.obs_start) & (when <= pop.obs_end)
        in_gap = (pop.gap_start >= 0) & (when >= pop.gap_start) & (when <= pop.gap_end)
        ok &= ~in_gap
        death[ok] = when[ok]
    cause = np.full(n, "", dtype=object)
    dead = death != NEVER
    cancer_at_death = np.zeros(n, bool)
    for name in _CANCERS:
        has = dead & (onset[INDEX[name]] <= death) & (rng.random(n) < 0.75) & ~cancer_at_death
        code = DISEASES[INDEX[name]].codes[0][0]
        cause[has] = code
        cancer_at_death |= has
    for name, code in (("mi", "I21.9"), ("stroke", "I63.9"), ("hf", "I50.9"),
                       ("dementia", "F03")):
        has = dead & (cause == "") & (onset[INDEX[name]] <= death) & (rng.random(n) < 0.5)
        cause[has] = code
    rest = dead & (cause == "")
    codes, probs = zip(*_OTHER_CAUSES, strict=True)
    cause[rest] = rng.choice(codes, size=int(rest.sum()), p=probs)
    return death, cause.astype(str)


def _first_records(pop: Population, onset: np.ndarray, end: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """First appearance in the data: at onset, or within 6 months of entry if prevalent."""
    d, n = onset.shape
    delay = (rng.random((d, n)) * 180).astype(np.int32)
    rec = np.where(onset < pop.obs_start, pop.obs_start + delay, onset).astype(np.int64)
    in_gap = (pop.gap_start >= 0) & (rec >= pop.gap_start) & (rec <= pop.gap_end)
    rec = np.where(in_gap, pop.gap_end + 1 + delay, rec)
    rec = np.where((onset == NEVER) | (rec > end) | (rec > STUDY_END) | (rec < STUDY_START),
                   NEVER, rec)
    return rec.astype(np.int32)
