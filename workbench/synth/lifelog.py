"""Lifelog tables: daily wearable summaries for ~30% of persons, minute heart rate for a few.

Steps fall with age, BMI and disease and rise with the person's latent activity (the same
trait that lowers hypertension risk), so "steps before incident hypertension" is a real
signal. Wear periods start between 2018 and mid-2024 and lie inside observation.

Dense lifelog (scale releases, ``build_release(lifelog_days=N)``): every person, or a
fraction, wears a device over the last N days up to the data cut (inside observation), with
the same physiology; minute heart rate covers a week for ~1% of the wearers. It draws from
its own random stream and is generated in pieces of ``DENSE_SUB`` persons.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from workbench.schema import TABLES
from workbench.synth.clinical import _dates, _observed
from workbench.synth.diseases import Histories
from workbench.synth.physiology import Body
from workbench.synth.population import STUDY_END, YEAR, Population, day


def wear_periods(pop: Population, hist: Histories, rng: np.random.Generator):
    """(person index, first day, last day) of each wearer's wear period."""
    n = len(pop)
    age = (day(2022) - pop.birth) / YEAR
    p = np.select([age < 20, age < 50, age < 70], [0.05, 0.45, 0.30], 0.12)
    start = (day(2018) + rng.random(n) * (day(2024, 7, 1) - day(2018))).astype(np.int32)
    start = np.maximum(start, pop.obs_start)
    dur = np.clip(rng.lognormal(np.log(240), 0.7, n), 30, 1000).astype(np.int32)
    end = np.minimum(start + dur, hist.end)
    wear = (rng.random(n) < p) & (end >= start + 14)
    i = np.flatnonzero(wear)
    return i, start[i], end[i]


def wearable_daily_table(pop: Population, hist: Histories, body: Body,
                         rng: np.random.Generator) -> tuple[pa.Table, tuple]:
    pi, ps, pe = wear_periods(pop, hist, rng)
    ndays = pe - ps + 1
    i = np.repeat(pi, ndays)
    offset = np.arange(len(i)) - np.repeat(np.cumsum(ndays) - ndays, ndays)
    d = (np.repeat(ps, ndays) + offset).astype(np.int32)
    p_wear = rng.beta(8, 2, len(pop))
    keep = (rng.random(len(i)) < p_wear[i]) & _observed(pop, hist, i, d)
    i, d = i[keep], d[keep]
    table = _daily_values(pop, hist, i, d, rng, lambda: rng.normal(0, 25, len(pop)),
                          lambda: rng.normal(0, 4.5, len(pop)))
    return table, (pi, ps, pe)


def intraday_hr_table(pop: Population, periods: tuple, rng: np.random.Generator) -> pa.Table:
    """Minute heart rate over three days for ~1% of wearers (at least one per chunk)."""
    pi, ps, pe = periods
    if len(pi) == 0:
        return TABLES["wearable_intraday_hr"].empty_table()
    k = max(1, len(pi) // 100)
    pick = np.sort(rng.choice(len(pi), size=k, replace=False))
    return _hr_minutes(pop, pi[pick], ps[pick], 3 * 1440, rng)


def _daily_values(pop: Population, hist: Histories, i: np.ndarray, d: np.ndarray,
                  rng: np.random.Generator, person_sleep, person_hr) -> pa.Table:
    """The rows (person index i, day d) with their values. ``person_sleep`` and
    ``person_hr`` give the per-person offsets (callables: the default build draws them
    between the row draws, and its stream must not change)."""
    m = len(i)
    age = (d - pop.birth[i]) / YEAR
    a = pop.activity[i]
    bmi = pop.bmi[i]
    log_mu = (np.log(7800) + 0.30 * a - 0.012 * (age - 40) - 0.02 * (bmi - 24)
              - 0.15 * hist.has("t2d", i, d) - 0.10 * hist.has("htn", i, d))
    weekend = ((d + 3) % 7) >= 5
    steps = np.exp(log_mu + rng.normal(0, 0.45, m)) * np.where(weekend, 0.88, 1.0)
    sleep = (415 + 12 * (pop.sex[i] == 1) - 0.6 * (age - 40) + person_sleep()[i]
             + rng.normal(0, 45, m))
    rhr = 66 + 0.35 * (bmi - 24) - 2.5 * a + person_hr()[i] + rng.normal(0, 2.5, m)
    active = steps / 140 * rng.lognormal(0, 0.3, m)
    return pa.table({
        "person_id": pop.person_id[i], "date": _dates(d),
        "steps": np.clip(steps, 0, 60000).astype(np.int32),
        "sleep_minutes": np.clip(sleep, 120, 900).astype(np.int32),
        "resting_hr": np.clip(rhr, 38, 120).astype(np.int32),
        "active_minutes": np.clip(active, 0, 600).astype(np.int32),
    }).cast(TABLES["wearable_daily"])


def _hr_minutes(pop: Population, who: np.ndarray, first: np.ndarray, minutes: int,
                rng: np.random.Generator) -> pa.Table:
    """Minute heart rate of persons ``who`` from their day ``first`` on, ``minutes`` long."""
    k = len(who)
    i = np.repeat(who, minutes)
    t = np.tile(np.arange(minutes), k)
    ts = (np.repeat(first.astype(np.int64), minutes) * 86400 + t * 60)
    hour = (t % 1440) / 60
    rest = 64 - 2.5 * pop.activity[i] + 0.35 * (pop.bmi[i] - 24)
    awake = (hour >= 7) & (hour < 23)
    burst = rng.random(len(i)) < 0.04
    hr = rest + np.where(awake, 14, -4) + burst * rng.uniform(20, 60, len(i)) \
        + rng.normal(0, 3, len(i))
    return pa.table({
        "person_id": pop.person_id[i], "ts": pa.array(ts * 1000, type=pa.timestamp("ms")),
        "heart_rate": np.clip(hr, 35, 200).astype(np.int32),
    }).cast(TABLES["wearable_intraday_hr"])


# --- dense lifelog (scale releases) ----------------------------------------------------

DENSE_SUB = 5_000      # persons per generated piece: <= 3.65M rows at 730 days
INTRADAY_DAYS = 7


def dense_window(pop: Population, hist: Histories, days: int, wearers: float,
                 rng: np.random.Generator):
    """(person index, first day, last day) of each wearer: the last ``days`` days up to the
    data cut, clipped to observation (start, and its end or death). ``wearers`` is the
    fraction of persons who wear a device (drawn per person, so deterministic)."""
    n = len(pop)
    wear = rng.random(n) < wearers
    start = np.maximum(STUDY_END - days + 1, pop.obs_start).astype(np.int32)
    end = np.minimum(STUDY_END, hist.end).astype(np.int32)
    i = np.flatnonzero(wear & (end >= start))
    return i, start[i], end[i]


def dense_tables(pop: Population, hist: Histories, days: int, wearers: float,
                 rng: np.random.Generator) -> Iterator[tuple[str, pa.Table]]:
    """Dense lifelog for a chunk, in pieces of ``DENSE_SUB`` persons (bounded memory):
    ("wearable_daily", rows) person-major and date-ordered within a person, then
    ("wearable_intraday_hr", rows): a week of minutes for ~1% of the wearers (at least one
    per chunk), the last week of their window. Yields ("wearers", mask) first."""
    pi, ps, pe = dense_window(pop, hist, days, wearers, rng)
    mask = np.zeros(len(pop), bool)
    mask[pi] = True
    yield "wearers", mask
    p_wear = rng.beta(8, 2, len(pop))
    person_sleep = rng.normal(0, 25, len(pop))
    person_hr = rng.normal(0, 4.5, len(pop))
    for lo in range(0, len(pop), DENSE_SUB):
        sel = (pi >= lo) & (pi < lo + DENSE_SUB)
        spi, sps, spe = pi[sel], ps[sel], pe[sel]
        ndays = spe - sps + 1
        i = np.repeat(spi, ndays)
        offset = np.arange(len(i)) - np.repeat(np.cumsum(ndays) - ndays, ndays)
        d = (np.repeat(sps, ndays) + offset).astype(np.int32)
        keep = (rng.random(len(i)) < p_wear[i]) & _observed(pop, hist, i, d)
        i, d = i[keep], d[keep]
        del keep, offset
        yield "wearable_daily", _daily_values(pop, hist, i, d, rng, lambda: person_sleep,
                                              lambda: person_hr)
    week = np.flatnonzero(pe - ps + 1 >= INTRADAY_DAYS)
    if len(week):
        k = max(1, len(pi) // 100)
        pick = np.sort(rng.choice(week, size=min(k, len(week)), replace=False))
        for part in np.array_split(pick, max(1, len(pick) // 100)):
            yield "wearable_intraday_hr", _hr_minutes(
                pop, pi[part], pe[part] - INTRADAY_DAYS + 1, INTRADAY_DAYS * 1440, rng)
