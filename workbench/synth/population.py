"""Person-level traits of the synthetic population: who they are before anything happens.

Everything here is a numpy array of length N (one entry per person, index = person_id - 1),
generated in one vectorised pass; event tables are made later, chunk by chunk, from slices.
Dates are int32 days since 1970-01-01.

>>> import numpy as np
>>> pop = make_population(1000, np.random.default_rng(1))
>>> len(pop.sex), int(pop.person_id[0])
(1000, 1)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import numpy as np

EPOCH = dt.date(1970, 1, 1)


def day(y: int, m: int = 1, d: int = 1) -> int:
    """Days since 1970-01-01 of a calendar date.

    >>> day(1970, 1, 2)
    1
    """
    return (dt.date(y, m, d) - EPOCH).days


STUDY_START = day(2002, 1, 1)   # national claims data begin
STUDY_END = day(2024, 12, 31)   # the release's data cut
YEAR = 365.25

# 17 first-level regions (시도): code, English, Korean, population share (2024, approx.)
REGIONS: list[tuple[str, str, str, float]] = [
    ("11", "Seoul", "서울특별시", 18.2), ("26", "Busan", "부산광역시", 6.4),
    ("27", "Daegu", "대구광역시", 4.6), ("28", "Incheon", "인천광역시", 5.8),
    ("29", "Gwangju", "광주광역시", 2.8), ("30", "Daejeon", "대전광역시", 2.8),
    ("31", "Ulsan", "울산광역시", 2.1), ("36", "Sejong", "세종특별자치시", 0.8),
    ("41", "Gyeonggi", "경기도", 26.5), ("51", "Gangwon", "강원특별자치도", 2.9),
    ("43", "Chungbuk", "충청북도", 3.1), ("44", "Chungnam", "충청남도", 4.2),
    ("52", "Jeonbuk", "전북특별자치도", 3.4), ("46", "Jeonnam", "전라남도", 3.5),
    ("47", "Gyeongbuk", "경상북도", 5.0), ("48", "Gyeongnam", "경상남도", 6.4),
    ("50", "Jeju", "제주특별자치도", 1.3),
]
# Synthetic ancestry clusters (three, for population structure), tilted by region.
_SOUTH_EAST = {"26", "27", "31", "47", "48"}
_SOUTH_WEST_JEJU = {"29", "46", "52", "50"}

# Age at the data cut by 5-year band, 0-4 ... 95-99 (share, approx. Korea 2024)
_AGE_BANDS = np.array([3.3, 4.3, 4.7, 4.5, 5.3, 6.6, 6.6, 6.4, 7.4, 7.6, 8.3, 8.2, 8.2,
                       6.6, 4.6, 3.6, 2.7, 1.4, 0.5, 0.1])


@dataclass
class Population:
    """Latent, person-level traits. Never written as such; tables are derived from them."""

    person_id: np.ndarray        # int64, 1..N
    sex: np.ndarray              # int8, 0 male, 1 female
    birth: np.ndarray            # int32 day
    region: np.ndarray           # int16, index into REGIONS (location_id = region + 1)
    ancestry: np.ndarray         # int8, 0/1/2
    activity: np.ndarray         # float, latent physical activity (sd 1)
    smoking: np.ndarray          # int8, 1 never, 2 former, 3 current
    drinking: np.ndarray         # float, drinking days per week (latent)
    bmi: np.ndarray              # float, baseline BMI at age 45
    sbp: np.ndarray              # float, baseline systolic BP at age 45
    ldl_env: np.ndarray          # float, non-genetic person-level LDL deviation (mg/dL)
    obs_start: np.ndarray        # int32 day
    obs_end: np.ndarray          # int32 day (before death truncation)
    gap_start: np.ndarray        # int32 day, or -1: no gap in observation
    gap_end: np.ndarray          # int32 day, or -1
    ldl_genetic: np.ndarray      # float, genetic LDL effect (mg/dL, centred); set by genotypes
    t2d_genetic: np.ndarray      # float, genetic T2D log-hazard (centred); set by genotypes

    def __len__(self) -> int:
        return len(self.person_id)

    def slice(self, lo: int, hi: int) -> Population:
        """The persons with index lo..hi-1 (a view, not a copy)."""
        return Population(**{f.name: getattr(self, f.name)[lo:hi] for f in fields(self)})

    def age_at(self, days: np.ndarray) -> np.ndarray:
        """Age in years (float) at the given day(s)."""
        return (days - self.birth) / YEAR


def make_population(n: int, rng: np.random.Generator) -> Population:
    """Draw N persons: demographics, region, ancestry cluster and latent risk traits."""
    # age at the data cut, then birth date
    band = rng.choice(len(_AGE_BANDS), size=n, p=_AGE_BANDS / _AGE_BANDS.sum())
    age_cut = band * 5 + rng.random(n) * 5
    birth = (STUDY_END - age_cut * YEAR).astype(np.int32)
    # more women at older ages
    p_female = 0.5 + 0.2 * np.clip(age_cut - 65, 0, 30) / 30
    sex = (rng.random(n) < p_female).astype(np.int8)

    shares = np.array([r[3] for r in REGIONS])
    region = rng.choice(len(REGIONS), size=n, p=shares / shares.sum()).astype(np.int16)
    codes = np.array([r[0] for r in REGIONS])[region]
    se = np.isin(codes, list(_SOUTH_EAST))
    sw = np.isin(codes, list(_SOUTH_WEST_JEJU))
    u = rng.random(n)
    p1 = np.where(se, 0.40, 0.08)           # cluster 1 enriched in the south-east
    p2 = np.where(sw, 0.35, 0.05)           # cluster 2 enriched in the south-west and Jeju
    ancestry = np.where(u < p1, 1, np.where(u < p1 + p2, 2, 0)).astype(np.int8)

    activity = rng.standard_normal(n)
    male = sex == 0
    u = rng.random(n)
    smoking = np.where(male, np.where(u < 0.35, 1, np.where(u < 0.65, 2, 3)),
                       np.where(u < 0.90, 1, np.where(u < 0.95, 2, 3))).astype(np.int8)
    drinking = np.clip(rng.gamma(np.where(male, 1.4, 0.6), 1.2), 0, 7)
    bmi = 23.6 + 0.9 * male - 0.8 * activity + rng.normal(0, 2.8, n)
    sbp = 118 + 5 * male + 1.2 * (bmi - 24) - 1.5 * activity + rng.normal(0, 9, n)
    ldl_env = (rng.normal(0, 25, n) + 4 * male
               + np.select([ancestry == 1, ancestry == 2], [14.0, -10.0], 0.0))

    # observation: most from the start of the national data (or birth), some enter later
    late = rng.random(n) < 0.3
    start = np.where(late, STUDY_START + rng.random(n) * 15 * YEAR, STUDY_START)
    obs_start = np.maximum(start, birth).astype(np.int32)
    lost = rng.random(n) < 0.05
    end = np.where(lost, obs_start + rng.random(n) * (STUDY_END - obs_start), STUDY_END)
    obs_end = np.maximum(end, obs_start + 30).clip(max=STUDY_END).astype(np.int32)
    # 5% have a gap of 1-3 years in observation (emigration and return)
    span = obs_end - obs_start
    has_gap = (rng.random(n) < 0.05) & (span > 6 * YEAR)
    g0 = obs_start + (0.2 + 0.3 * rng.random(n)) * span
    g1 = g0 + (1 + 2 * rng.random(n)) * YEAR
    gap_start = np.where(has_gap, g0, -1).astype(np.int32)
    gap_end = np.where(has_gap, g1, -1).astype(np.int32)

    return Population(
        person_id=np.arange(1, n + 1, dtype=np.int64), sex=sex, birth=birth, region=region,
        ancestry=ancestry, activity=activity, smoking=smoking, drinking=drinking, bmi=bmi,
        sbp=sbp, ldl_env=ldl_env, obs_start=obs_start, obs_end=obs_end, gap_start=gap_start,
        gap_end=gap_end, ldl_genetic=np.zeros(n), t2d_genetic=np.zeros(n),
    )
