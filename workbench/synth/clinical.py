"""Clinical tables (OMOP CDM v5.4 shape) for one chunk of persons.

Every event is an *encounter* first: the first record of a disease, its follow-ups, or a
minor acute complaint. Each encounter becomes one visit; conditions, prescriptions, labs
and procedures hang off encounters, so every event has a visit and lies inside an
observation period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from workbench.schema import TABLES
from workbench.synth import physiology as phys
from workbench.synth.diseases import DISEASES, INDEX, NEVER, Histories
from workbench.synth.population import YEAR, Population, day
from workbench.synth.vocabulary import concept_id

EHR, EHR_RX, LAB, REGISTRY = 32817, 32838, 32856, 32879
VISIT = {"IP": 9201, "OP": 9202, "ER": 9203}
KCD8_START = day(2021, 1, 1)   # records before this were coded in KCD-7
KCD7_CODES = {"E11.9", "I10", "E78.5", "N18.9", "J06.9"}

# minor complaints: code, yearly rate (adult), rate multiplier for children, inpatient share
MINOR = (("J06.9", 0.8, 2.5, 0.0), ("K29.7", 0.3, 0.3, 0.0), ("M54.5", 0.25, 0.1, 0.0),
         ("J18.9", 0.006, 1.0, 0.4))

# disease -> treatments: (ATC, probability, start delay in years (lo, hi), first allowed day)
TREATMENTS: dict[str, tuple[tuple[str, float, tuple[float, float], int], ...]] = {
    "t2d": (("A10BA02", 0.88, (0, 0.2), 0), ("A10BH01", 0.30, (1, 3), day(2008)),
            ("A10BK01", 0.15, (1, 4), day(2014)), ("A10AE04", 0.12, (2, 8), 0),
            ("A10AB01", 0.05, (2, 8), 0), ("C10AA05", 0.30, (0, 1), 0)),
    "htn": (("C09CA01", 0.55, (0, 0.1), 0), ("C08CA01", 0.45, (0, 0.5), 0),
            ("C03AA03", 0.15, (0.5, 3), 0), ("C07AB02", 0.10, (0, 2), 0)),
    "lipid": (("C10AA05", 0.40, (0, 0.3), 0), ("C10AA07", 0.28, (0, 0.3), day(2005)),
              ("C10AA01", 0.12, (0, 0.3), 0)),
    "mi": (("B01AC06", 0.95, (0, 0), 0), ("B01AC04", 0.8, (0, 0), 0),
           ("C10AA05", 0.9, (0, 0), 0), ("C07AB02", 0.6, (0, 0), 0)),
    "stroke": (("B01AC06", 0.7, (0, 0), 0), ("B01AC04", 0.4, (0, 0), 0)),
    "af": (("B01AF01", 0.7, (0, 0.3), day(2012)),),
    "cad": (("B01AC06", 0.6, (0, 0.5), 0),),
    "gerd": (("A02BC01", 0.8, (0, 0), 0),),
    "knee_oa": (("M01AE01", 0.6, (0, 0), 0), ("N02BE01", 0.3, (0, 0), 0)),
    "asthma": (("R03AK06", 0.7, (0, 0.5), 0),),
    "depression": (("N06AB10", 0.75, (0, 0.2), 0),),
    "thyroid_ca": (("H03AA01", 0.9, (0, 0.3), 0),),
    "dementia": (("N06DA02", 0.7, (0, 0.5), 0),),
    "J06.9": (("J01CA04", 0.35, (0, 0), 0), ("N02BE01", 0.3, (0, 0), 0)),
    "J18.9": (("J01CA04", 0.8, (0, 0), 0),),
}
STATINS = {"C10AA01", "C10AA05", "C10AA07"}
BP_DRUGS = {"C09CA01", "C08CA01", "C03AA03", "C07AB02"}
GLUCOSE_DRUGS = {"A10BA02", "A10BH01", "A10BK01", "A10AE04", "A10AB01"}

# LOINC code, unit (UCUM code), normal range
LABS: dict[str, tuple[str, str, float | None, float | None]] = {
    "hba1c": ("4548-4", "%", 4.0, 5.6), "glucose": ("1558-6", "mg/dL", 70, 99),
    "tc": ("2093-3", "mg/dL", None, 200), "ldl": ("13457-7", "mg/dL", None, 130),
    "hdl": ("2085-9", "mg/dL", 40, None), "tg": ("2571-8", "mg/dL", None, 150),
    "creatinine": ("2160-0", "mg/dL", 0.6, 1.2), "egfr": ("62238-1", "mL/min/{1.73_m2}", 60, None),
    "sbp": ("8480-6", "mm[Hg]", 90, 120), "dbp": ("8462-4", "mm[Hg]", 60, 80),
    "bmi": ("39156-5", "kg/m2", 18.5, 23), "weight": ("29463-7", "kg", None, None),
    "height": ("8302-2", "cm", None, None), "hb": ("718-7", "g/dL", 12, 16),
    "alt": ("1742-6", "U/L", 0, 40), "ast": ("1920-8", "U/L", 0, 40),
}
PANELS = {"glycemic": ("hba1c", "glucose"), "lipid": ("tc", "ldl", "hdl", "tg"),
          "kidney": ("creatinine", "egfr"), "bp": ("sbp", "dbp"),
          "body": ("bmi", "weight", "height"), "inpatient": ("hb", "alt", "ast", "creatinine",
                                                             "egfr")}
# disease -> (panel, probability at follow-up; the first record always has it)
DISEASE_PANELS = {"t2d": (("glycemic", 0.8), ("kidney", 0.3)), "lipid": (("lipid", 0.6),),
                  "htn": (("bp", 0.9),), "ckd": (("kidney", 0.8),),
                  "obesity": (("body", 0.9),)}
MINOR_PANELS = (("glycemic", 0.08), ("lipid", 0.08), ("body", 0.1))

# SNOMED procedures: (disease or "minor", first record only?, probability, code)
PROCEDURES = (("mi", True, 1.0, "33367005"), ("mi", True, 0.7, "415070008"),
              ("mi", True, 0.8, "29303009"), ("af", True, 0.9, "29303009"),
              ("htn", True, 0.5, "29303009"), ("stomach_ca", True, 1.0, "76009000"),
              ("colon_ca", True, 1.0, "73761001"), ("lung_ca", True, 1.0, "169069000"),
              ("knee_oa", False, 0.03, "609588000"), ("minor40", False, 0.05, "76009000"),
              ("minor50", False, 0.02, "73761001"))


@dataclass
class Encounters:
    """Aligned arrays, one entry per encounter (= visit)."""

    i: np.ndarray        # person index within the chunk
    day: np.ndarray      # int32
    source: np.ndarray   # int16: disease index, or len(DISEASES) + minor index
    first: np.ndarray    # bool: first record of the disease
    vtype: np.ndarray    # '<U2' IP/OP/ER
    los: np.ndarray      # length of stay, days
    visit_id: np.ndarray | None = None

    def where(self, mask: np.ndarray) -> Encounters:
        return Encounters(self.i[mask], self.day[mask], self.source[mask], self.first[mask],
                          self.vtype[mask], self.los[mask],
                          None if self.visit_id is None else self.visit_id[mask])


def _observed(pop: Population, hist: Histories, i: np.ndarray, d: np.ndarray) -> np.ndarray:
    gs, ge = pop.gap_start[i], pop.gap_end[i]
    return (d >= pop.obs_start[i]) & (d <= hist.end[i]) & ~((gs >= 0) & (d >= gs) & (d <= ge))


def _period_end(pop: Population, hist: Histories, i: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Last day of the observation period containing day d."""
    before_gap = (pop.gap_start[i] >= 0) & (d < pop.gap_start[i])
    return np.where(before_gap, np.minimum(pop.gap_start[i] - 1, hist.end[i]), hist.end[i])


def make_encounters(pop: Population, hist: Histories, rng: np.random.Generator) -> Encounters:
    parts = []
    for k, dis in enumerate(DISEASES):
        rec = hist.record[k]
        who = np.flatnonzero(rec != NEVER)
        if len(who) == 0:
            continue
        horizon = {"acute": 2 * YEAR, "cancer": 5 * YEAR}.get(dis.kind, 100 * YEAR)
        stop = np.minimum(hist.end[who], rec[who] + horizon)
        n_fu = rng.poisson(dis.followup * np.maximum(stop - rec[who], 0) / YEAR)
        fi = np.repeat(who, n_fu)
        fd = (np.repeat(rec[who], n_fu)
              + 1 + rng.random(len(fi)) * np.repeat(stop - rec[who], n_fu)).astype(np.int32)
        first_type = "IP" if dis.kind in ("acute", "cancer") else "OP"
        parts.append((who, rec[who], k, True, first_type))
        if dis.kind == "acute":
            parts.append((who, rec[who], k, False, "ER"))
        parts.append((fi, fd, k, False, "OP"))
    age_end = (hist.end - pop.birth) / YEAR
    span = np.maximum(hist.end - pop.obs_start, 0) / YEAR
    for m, (_code, rate, child_mult, ip_share) in enumerate(MINOR):
        r = rate * np.where(age_end < 15, child_mult, 1.0) * (1 + 0.02 * np.clip(age_end - 60,
                                                                                 0, None) ** 1.5
                                                              * (m == 3))
        n_ev = rng.poisson(r * span)
        mi = np.repeat(np.arange(len(pop)), n_ev)
        md = (pop.obs_start[mi] + rng.random(len(mi)) * (hist.end[mi] - pop.obs_start[mi]))
        vt = np.where(rng.random(len(mi)) < ip_share, "IP", "OP")
        parts.append((mi, md.astype(np.int32), len(DISEASES) + m, False, vt))
    i = np.concatenate([p[0] for p in parts]).astype(np.int64)
    d = np.concatenate([p[1] for p in parts]).astype(np.int32)
    src = np.concatenate([np.full(len(p[0]), p[2], np.int16) for p in parts])
    first = np.concatenate([np.full(len(p[0]), p[3]) for p in parts])
    vtype = np.concatenate([np.broadcast_to(np.asarray(p[4], dtype="<U2"), len(p[0]))
                            for p in parts])
    los = np.where(vtype == "IP", rng.integers(3, 13, len(i)), 0).astype(np.int32)
    enc = Encounters(i, d, src, first, vtype, los)
    enc = enc.where(_observed(pop, hist, enc.i, enc.day))
    order = np.lexsort((enc.source, enc.day, enc.i))
    return enc.where(order)


def treatment_starts(pop: Population, hist: Histories, rng: np.random.Generator):
    """Per (source, ATC): the day each person starts (NEVER if not treated)."""
    n = len(pop)
    starts: dict[tuple[int, str], np.ndarray] = {}
    for src_name, options in TREATMENTS.items():
        if src_name in INDEX:
            src = INDEX[src_name]
            rec = hist.record[src]
        else:   # minor complaint: treated at the visit itself
            src = len(DISEASES) + [c[0] for c in MINOR].index(src_name)
            rec = np.zeros(n, np.int32)
        for atc, prob, (lo, hi), first_day in options:
            delay = (lo + rng.random(n) * (hi - lo)) * YEAR
            s = np.maximum(rec + delay, first_day)
            treated = (rng.random(n) < prob) & (rec != NEVER)
            starts[(src, atc)] = np.where(treated, s, NEVER).astype(np.int64).clip(
                max=NEVER).astype(np.int32)
    return starts


def _first_start(starts, atcs: set[str], n: int) -> np.ndarray:
    out = np.full(n, NEVER, np.int32)
    for (_src, atc), s in starts.items():
        if atc in atcs:
            out = np.minimum(out, s)
    return out


def make_body(pop, hist, starts, rng) -> phys.Body:
    n = len(pop)
    return phys.make_body(pop, hist, rng, _first_start(starts, STATINS, n),
                          _first_start(starts, BP_DRUGS, n),
                          _first_start(starts, GLUCOSE_DRUGS, n))


def _dates(a: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(a, dtype=np.int32), type=pa.date32())


def _table(name: str, cols: dict) -> pa.Table:
    return pa.table(cols).cast(TABLES[name])


def person_table(pop: Population) -> pa.Table:
    bd = _dates(pop.birth).to_numpy(zero_copy_only=False).astype("datetime64[D]")
    y = bd.astype("datetime64[Y]").astype(int) + 1970
    mth = bd.astype("datetime64[M]").astype(int) % 12 + 1
    dd = (bd - bd.astype("datetime64[M]")).astype(int) + 1
    return _table("person", {
        "person_id": pop.person_id, "gender_concept_id": np.where(pop.sex == 0, 8507, 8532),
        "year_of_birth": y, "month_of_birth": mth, "day_of_birth": dd,
        "race_concept_id": np.zeros(len(pop), np.int64),
        "ethnicity_concept_id": np.zeros(len(pop), np.int64),
        "location_id": pop.region.astype(np.int64) + 1,
        "person_source_value": np.char.add("KB-P", np.char.zfill(pop.person_id.astype(str), 8)),
        "gender_source_value": np.where(pop.sex == 0, "M", "F"),
    })


def observation_period_table(pop: Population, hist: Histories, id0: int) -> pa.Table:
    gap = (pop.gap_start >= 0) & (hist.end > pop.gap_end)
    idx = np.concatenate([np.arange(len(pop)), np.flatnonzero(gap)])
    start = np.concatenate([pop.obs_start, pop.gap_end[gap] + 1])
    end = np.concatenate([np.where(gap, pop.gap_start - 1, hist.end), hist.end[gap]])
    order = np.lexsort((start, idx))
    idx, start, end = idx[order], start[order], end[order]
    return _table("observation_period", {
        "observation_period_id": id0 + np.arange(len(idx)), "person_id": pop.person_id[idx],
        "observation_period_start_date": _dates(start), "observation_period_end_date": _dates(end),
        "period_type_concept_id": np.full(len(idx), EHR),
    })


def visit_table(pop, hist, enc: Encounters) -> pa.Table:
    end = np.minimum(enc.day + enc.los, _period_end(pop, hist, enc.i, enc.day))
    return _table("visit_occurrence", {
        "visit_occurrence_id": enc.visit_id, "person_id": pop.person_id[enc.i],
        "visit_concept_id": np.vectorize(VISIT.get, otypes=[np.int64])(enc.vtype)
        if len(enc.i) else np.zeros(0, np.int64),
        "visit_start_date": _dates(enc.day), "visit_end_date": _dates(end),
        "visit_type_concept_id": np.full(len(enc.i), EHR), "visit_source_value": enc.vtype,
    })


def _condition_codes(pop, hist, enc: Encounters, rng) -> np.ndarray:
    n = len(pop)
    codes = np.empty(len(enc.i), dtype="<U6")
    for k, dis in enumerate(DISEASES):
        m = enc.source == k
        names, probs = zip(*dis.codes, strict=True)
        person_code = rng.choice(names, size=n, p=probs)
        if dis.name == "ckd":
            person_code = np.select([hist.ckd_stage == 3, hist.ckd_stage == 4],
                                    ["N18.3", "N18.4"], "N18.5")
            person_code = np.where(rng.random(n) < 0.1, "N18.9", person_code)
        codes[m] = person_code[enc.i[m]]
        if dis.name == "t2d":
            kidney = m & hist.has("ckd", enc.i, enc.day)
            codes[kidney] = "E11.2"
    for mi, (code, *_rest) in enumerate(MINOR):
        codes[enc.source == len(DISEASES) + mi] = code
    return codes


def condition_table(pop, hist, enc: Encounters, id0: int, rng) -> pa.Table:
    codes = _condition_codes(pop, hist, enc, rng)
    uniq, inv = np.unique(codes, return_inverse=True)
    kcd8 = np.array([concept_id("KCD8", c) for c in uniq], np.int64)[inv]
    kcd7_ok = np.array([c in KCD7_CODES for c in uniq])[inv] & (enc.day < KCD8_START)
    kcd7 = np.array([concept_id("KCD7", c) if c in KCD7_CODES else 0 for c in uniq],
                    np.int64)[inv]
    acute = enc.source >= len(DISEASES)
    end = np.minimum(enc.day + 7, _period_end(pop, hist, enc.i, enc.day))
    return _table("condition_occurrence", {
        "condition_occurrence_id": id0 + np.arange(len(codes)),
        "person_id": pop.person_id[enc.i], "condition_concept_id": kcd8,
        "condition_start_date": _dates(enc.day),
        "condition_end_date": pa.array(np.asarray(end, np.int32), type=pa.date32(), mask=~acute),
        "condition_type_concept_id": np.full(len(codes), EHR), "visit_occurrence_id": enc.visit_id,
        "condition_source_value": codes, "condition_source_concept_id": np.where(kcd7_ok, kcd7,
                                                                                 kcd8),
    })


def drug_table(pop, hist, enc: Encounters, starts, id0: int, rng) -> pa.Table:
    sel_idx, atc = [], []
    for (src, code), s in starts.items():
        m = np.flatnonzero((enc.source == src) & (enc.day >= s[enc.i]))
        sel_idx.append(m)
        atc.append(np.full(len(m), code, dtype="<U7"))
    idx = np.concatenate(sel_idx)
    codes = np.concatenate(atc)
    order = np.argsort(idx, kind="stable")
    idx, codes = idx[order], codes[order]
    minor = enc.source[idx] >= len(DISEASES)
    supply = np.where(minor, rng.choice([3, 5, 7], len(idx)),
                      rng.choice([30, 60, 90], len(idx), p=[0.3, 0.2, 0.5])).astype(np.int32)
    start = enc.day[idx]
    end = np.minimum(start + supply - 1, _period_end(pop, hist, enc.i[idx], start))
    uniq, inv = np.unique(codes, return_inverse=True)
    cid = np.array([concept_id("ATC", c) for c in uniq], np.int64)[inv]
    return _table("drug_exposure", {
        "drug_exposure_id": id0 + np.arange(len(idx)), "person_id": pop.person_id[enc.i[idx]],
        "drug_concept_id": cid, "drug_exposure_start_date": _dates(start),
        "drug_exposure_end_date": _dates(end), "days_supply": supply,
        "quantity": supply * rng.choice([1.0, 2.0], len(idx), p=[0.7, 0.3]),
        "drug_type_concept_id": np.full(len(idx), EHR_RX),
        "visit_occurrence_id": enc.visit_id[idx], "drug_source_value": codes,
        "drug_source_concept_id": cid,
    })


def _lab_values(body: phys.Body, name: str, i, d, rng, cache: dict) -> np.ndarray:
    key = (name, id(i))
    if key in cache:
        return cache[key]
    fn = {
        "hba1c": lambda: phys.hba1c(body, i, d, rng),
        "glucose": lambda: phys.fasting_glucose(body, i, d, rng),
        "ldl": lambda: phys.ldl(body, i, d, rng), "hdl": lambda: phys.hdl(body, i, rng),
        "tg": lambda: phys.triglycerides(body, i, d, rng),
        "tc": lambda: _lab_values(body, "ldl", i, d, rng, cache)
        + _lab_values(body, "hdl", i, d, rng, cache)
        + np.round(_lab_values(body, "tg", i, d, rng, cache) / 5),
        "egfr": lambda: phys.egfr(body, i, d, rng),
        "creatinine": lambda: phys.creatinine(body, i, _lab_values(body, "egfr", i, d, rng,
                                                                   cache)),
        "sbp": lambda: np.round(phys.sbp(body, i, d, rng)),
        "dbp": lambda: np.round(phys.dbp(_lab_values(body, "sbp", i, d, rng, cache), rng)),
        "bmi": lambda: np.round(phys.bmi(body, i, d, rng), 1),
        "weight": lambda: np.round(phys.weight(body, i, _lab_values(body, "bmi", i, d, rng,
                                                                    cache)), 1),
        "height": lambda: np.round(body.height[i], 1),
        "hb": lambda: np.round(np.where(body.pop.sex[i] == 0, 14.8, 13.0)
                               + rng.normal(0, 1.1, len(i)), 1),
        "alt": lambda: np.round(np.exp(rng.normal(np.log(22), 0.45, len(i)))),
        "ast": lambda: np.round(np.exp(rng.normal(np.log(24), 0.35, len(i)))),
    }[name]
    cache[key] = fn()
    return cache[key]


def measurement_table(pop, hist, body: phys.Body, enc: Encounters, id0: int, rng) -> pa.Table:
    groups = []   # (encounter row indices, panel)
    for dname, panels in DISEASE_PANELS.items():
        m = enc.source == INDEX[dname]
        for panel, p in panels:
            groups.append((np.flatnonzero(m & (enc.first | (rng.random(len(m)) < p))), panel))
    adult_minor = (enc.source >= len(DISEASES)) & ((enc.day - pop.birth[enc.i]) > 30 * YEAR)
    for panel, p in MINOR_PANELS:
        groups.append((np.flatnonzero(adult_minor & (rng.random(len(adult_minor)) < p)), panel))
    groups.append((np.flatnonzero((enc.vtype == "IP") & (rng.random(len(enc.i)) < 0.9)),
                   "inpatient"))
    cols: dict[str, list] = {k: [] for k in ("row", "lab", "value")}
    for rows, panel in groups:
        i, d, cache = enc.i[rows], enc.day[rows], {}
        for lab in PANELS[panel]:
            cols["row"].append(rows)
            cols["lab"].append(np.full(len(rows), lab, dtype="<U10"))
            cols["value"].append(_lab_values(body, lab, i, d, rng, cache))
    rows = np.concatenate(cols["row"])
    lab = np.concatenate(cols["lab"])
    value = np.concatenate(cols["value"]).astype(float)
    order = np.lexsort((lab, rows))
    rows, lab, value = rows[order], lab[order], value[order]
    uniq, inv = np.unique(lab, return_inverse=True)
    spec = [LABS[u] for u in uniq]
    lo = np.array([s[2] if s[2] is not None else np.nan for s in spec])[inv]
    hi = np.array([s[3] if s[3] is not None else np.nan for s in spec])[inv]
    return _table("measurement", {
        "measurement_id": id0 + np.arange(len(rows)), "person_id": pop.person_id[enc.i[rows]],
        "measurement_concept_id": np.array([concept_id("LOINC", s[0]) for s in spec],
                                           np.int64)[inv],
        "measurement_date": _dates(enc.day[rows]),
        "measurement_type_concept_id": np.full(len(rows), LAB), "value_as_number": value,
        "unit_concept_id": np.array([concept_id("UCUM", s[1]) for s in spec], np.int64)[inv],
        "unit_source_value": np.array([s[1] for s in spec])[inv],
        "range_low": pa.array(lo, from_pandas=True), "range_high": pa.array(hi, from_pandas=True),
        "visit_occurrence_id": enc.visit_id[rows],
        "measurement_source_value": np.array([s[0] for s in spec])[inv],
    })


def procedure_table(pop, hist, enc: Encounters, id0: int, rng) -> pa.Table:
    picks, codes = [], []
    age = (enc.day - pop.birth[enc.i]) / YEAR
    minor = enc.source >= len(DISEASES)
    for src, first_only, p, code in PROCEDURES:
        if src == "minor40":
            m = minor & (age >= 40)
        elif src == "minor50":
            m = minor & (age >= 50)
        else:
            m = enc.source == INDEX[src]
            if first_only:
                m &= enc.first
        m &= rng.random(len(m)) < p
        picks.append(np.flatnonzero(m))
        codes.append(np.full(m.sum(), code, dtype="<U10"))
    dialysis = (enc.source == INDEX["ckd"]) & ~enc.first & (hist.ckd_stage[enc.i] == 5)
    picks.append(np.flatnonzero(dialysis))
    codes.append(np.full(dialysis.sum(), "302497006", dtype="<U10"))
    rows = np.concatenate(picks)
    code = np.concatenate(codes)
    order = np.lexsort((code, rows))
    rows, code = rows[order], code[order]
    uniq, inv = np.unique(code, return_inverse=True)
    return _table("procedure_occurrence", {
        "procedure_occurrence_id": id0 + np.arange(len(rows)),
        "person_id": pop.person_id[enc.i[rows]],
        "procedure_concept_id": np.array([concept_id("SNOMED", c) for c in uniq],
                                         np.int64)[inv],
        "procedure_date": _dates(enc.day[rows]),
        "procedure_type_concept_id": np.full(len(rows), EHR),
        "visit_occurrence_id": enc.visit_id[rows], "procedure_source_value": code,
    })


def death_table(pop, hist) -> pa.Table:
    dead = np.flatnonzero(hist.death != NEVER)
    causes = hist.death_cause[dead]
    uniq, inv = np.unique(causes, return_inverse=True)
    return _table("death", {
        "person_id": pop.person_id[dead], "death_date": _dates(hist.death[dead]),
        "death_type_concept_id": np.full(len(dead), REGISTRY),
        "cause_concept_id": np.array([concept_id("KCD8", c) for c in uniq], np.int64)[inv]
        if len(dead) else np.zeros(0, np.int64),
        "cause_source_value": causes,
    })
