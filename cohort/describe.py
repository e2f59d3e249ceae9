"""Definitions in plain words, and differences of meaning between two definitions.

>>> from cohort.builder import cohort, condition, drug, age
>>> d = (cohort("T2D").entry(condition("KCD8", "E11"), prior_observation=365)
...      .require("adults", age(18, None))
...      .exclude("no insulin", drug("ATC", "A10A").within(None, -1)).build())
>>> print(describe(d))  # doctest: +NORMALIZE_WHITESPACE
Cohort "T2D"
Entry: the first of: a condition in KCD8 E11 (with descendants), with at least 365 days
  of observation before.
Inclusion rules (in order):
  1. adults: age at index is at least 18
  2. no insulin: exactly 0 drug exposures in ATC A10A (with descendants) from any time
     before to 1 day before the index
Exit: at the end of the observation period.
>>> e = d.model_copy(update={"entry": d.entry.model_copy(update={"prior_observation": 180})})
>>> diff(d, e)
['entry.prior_observation: 365 -> 180']
"""

from __future__ import annotations

from typing import Any

from cohort import model as m

_NOUN = {"condition": "condition", "drug": "drug exposure", "procedure": "procedure",
         "measurement": "measurement", "visit": "visit", "death": "death",
         "observation_period": "observation period", "screening": "screening record"}
_OP = {"at_least": "at least", "at_most": "at most", "exactly": "exactly"}


def _range(r: m.Range | None, unit: str = "") -> str:
    if r is None or (r.min is None and r.max is None):
        return "any value"
    u = f" {unit}" if unit else ""
    if r.min is not None and r.max is not None:
        return f"between {r.min:g} and {r.max:g}{u}"
    return f"at least {r.min:g}{u}" if r.min is not None else f"at most {r.max:g}{u}"


def concept_set(cs: m.ConceptSet) -> str:
    parts = []
    for it in cs.items:
        ref = f"{it.vocabulary} {it.code}" if it.code else f"concept {it.concept_id}"
        extra = [x for x, on in (("with descendants", it.include_descendants),
                                 ("and mapped codes", it.include_mapped)) if on]
        text = ref + (f" ({' '.join(extra)})" if extra else "")
        parts.append(("excluding " if it.exclude else "") + text)
    return ", ".join(parts)


def criterion(c: Any) -> str:
    """One criterion in words (without its window)."""
    if c.kind in _NOUN:
        noun = _NOUN[c.kind]
        text = f"a {noun}"
        if hasattr(c, "concepts"):
            text += f" in {concept_set(c.concepts)}"
        if isinstance(c, m.MeasurementCriterion) and (c.value or c.unit):
            text += f" with value {_range(c.value, c.unit or '')}"
        if isinstance(c, m.VisitCriterion):
            text = f"a visit of type {'/'.join(c.visit_types)}"
        if isinstance(c, m.ScreeningCriterion):
            text = f"a screening record with {c.item} {_range(c.value)}"
        if getattr(c, "first_occurrence", False):
            text += " (the person's first)"
        return text
    if isinstance(c, m.AgeCriterion):
        return f"age at index is {_range(c.value)}"
    if isinstance(c, m.SexCriterion):
        return f"sex is {' or '.join(c.values)}"
    if isinstance(c, m.RegionCriterion):
        return f"region is one of {', '.join(c.codes)}"
    if isinstance(c, m.RegionIndicatorCriterion):
        return f"regional {c.indicator} in the index year is {_range(c.value)}"
    if isinstance(c, m.ConsentCriterion):
        return f"consented to {c.scope} use and has not withdrawn"
    if isinstance(c, m.GenomeCriterion):
        return "has a genome"
    if isinstance(c, m.GenotypeCriterion):
        return genotype(c)
    if isinstance(c, m.LifelogCriterion):
        if c.aggregate == "days_meeting":
            what = f"number of days with {c.metric} {_range(c.day_range)}"
        else:
            what = f"{c.aggregate} daily {c.metric}"
        return f"{what} is {_range(c.value)} (at least {c.min_days} days of data)"
    if isinstance(c, m.CohortMemberCriterion):
        return f'entry into cohort "{c.cohort.name}"'
    return c.kind


def genotype(c: m.GenotypeCriterion, *, shown: int = 5) -> str:
    """A genotype criterion in words; long variant lists show the first ``shown``.

    >>> genotype(m.GenotypeCriterion(variants=["1:1000:A:G", "chr2:5:C:T"]))
    'carries any of 2 variants (chr1:1000:A:G, chr2:5:C:T)'
    >>> genotype(m.GenotypeCriterion(region="chr1:1000-2000", zygosity="homozygous_alt"))
    'is homozygous for the alternate allele of a variant in chr1:1000-2000'
    """
    hom = c.zygosity == "homozygous_alt"
    verb = "is homozygous for the alternate allele of" if hom else "carries"
    if c.region is not None:
        return f"{verb} a variant in {c.region}"
    vs = c.variants or []
    if len(vs) == 1:
        return f"{verb} {vs[0]}"
    listed = ", ".join(vs[:shown]) + (f", and {len(vs) - shown} more" if len(vs) > shown
                                       else "")
    return f"{verb} any of {len(vs)} variants ({listed})"


def window(w: m.Window | None) -> str:
    if w is None:
        return "at any time"
    anchor = "the index" if w.anchor == "index_start" else "the index end"

    def day(d: int | None, open_side: str) -> str:
        if d is None:
            return open_side
        if d == 0:
            return f"the day of {anchor}"
        return f"{abs(d)} day{'s' if abs(d) != 1 else ''} {'before' if d < 0 else 'after'}"

    return (f"from {day(w.start, 'any time before')} to {day(w.end, 'any time after')} "
            f"{anchor}").replace(f"the day of {anchor} {anchor}", f"the day of {anchor}")


def requirement(r: m.Requirement) -> str:
    c = r.criterion
    if c.kind in m.EVENT_KINDS or c.kind == "cohort_member":
        o = r.occurrence
        noun = _NOUN.get(c.kind, "cohort entrie")
        count = f"{_OP[o.op]} {o.count} {criterion(c).removeprefix('a ')}"
        count = count.replace(noun, noun + ("s" if o.count != 1 else ""), 1)
        if o.distinct_dates:
            count += " on distinct dates"
        return f"{count} {window(r.window)}"
    text = criterion(c)
    if isinstance(c, m.LifelogCriterion):
        text += f", {window(r.window or m.Window(start=-365, end=0))}"
    negated = (r.occurrence.op in ("exactly", "at_most") and r.occurrence.count == 0)
    return f"not ({text})" if negated else text


def group(g: m.Group, indent: str = "") -> str:
    items = [group(i, indent + "  ") if isinstance(i, m.Group) else requirement(i)
             for i in g.items]
    if len(items) == 1:
        return items[0]
    head = {"all": "all of", "any": "any of", "at_least": f"at least {g.n} of"}[g.mode]
    return head + ":\n" + "\n".join(f"{indent}    - {i}" for i in items)


def exit_strategy(x: Any) -> str:
    if isinstance(x, m.FixedOffset):
        return (f"{x.days} days after the index {'start' if x.anchor == 'index_start' else 'end'}"
                ", or the end of observation if earlier.")
    if isinstance(x, m.DrugExposureEnd):
        return (f"at the end of continuous exposure to {concept_set(x.concepts)} (gaps of up to "
                f"{x.gap_days} days bridged) plus {x.offset} days, or the end of observation.")
    return "at the end of the observation period."


def describe(d: m.Cohort | m.CohortSet) -> str:
    """The definition in plain words (see module docstring)."""
    if isinstance(d, m.CohortSet):
        lines = [f'Cohort "{d.name}": the {d.kind} of:']
        lines += ["  " + describe(c).replace("\n", "\n  ") for c in d.cohorts]
        return "\n".join(lines)
    e = d.entry
    entry = ("the first of: " if e.limit == "first" else "every one of: ") + "; or ".join(
        criterion(c) for c in e.criteria)
    obs = []
    if e.prior_observation:
        obs.append(f"at least {e.prior_observation} days of observation before")
    if e.post_observation:
        obs.append(f"at least {e.post_observation} days of observation after")
    lines = [f'Cohort "{d.name}"', f"Entry: {entry}" + (f", with {' and '.join(obs)}" if obs
                                                        else "") + "."]
    if d.inclusion_rules:
        lines.append("Inclusion rules (in order):")
        for k, r in enumerate(d.inclusion_rules, 1):
            lines.append(f"  {k}. {r.name}: {group(r.group, '  ')}")
    lines.append(f"Exit: {exit_strategy(d.exit)}")
    if d.censoring:
        lines.append("Censored at the first of: " + "; ".join(criterion(c)
                                                              for c in d.censoring) + ".")
    if d.result_limit == "first":
        lines.append("Only each person's first qualifying entry is kept.")
    if d.era_pad_days:
        lines.append(f"Periods less than {d.era_pad_days} days apart are joined.")
    return "\n".join(lines)


def diff(a: m.Cohort | m.CohortSet, b: m.Cohort | m.CohortSet) -> list[str]:
    """Differences of meaning, as 'path: old -> new' lines (names and descriptions of
    the definitions and the order of concept-set items do not count)."""
    return _diff(_normal(a.model_dump(mode="json", exclude={"name", "description"})),
                 _normal(b.model_dump(mode="json", exclude={"name", "description"})), "")


def _normal(x: Any) -> Any:
    """Order-insensitive where order carries no meaning (concept-set items, visit types)."""
    if isinstance(x, dict):
        out = {k: _normal(v) for k, v in x.items()}
        if "items" in out and "name" in out and all(isinstance(i, dict) and (
                "vocabulary" in i or "concept_id" in i) for i in out["items"]):
            out["items"] = sorted(out["items"], key=lambda i: str(sorted(i.items())))
        if "visit_types" in out:
            out["visit_types"] = sorted(out["visit_types"])
        if out.get("kind") == "genotype" and out.get("variants"):
            out["variants"] = sorted(set(out["variants"]))
        return out
    if isinstance(x, list):
        return [_normal(v) for v in x]
    return x


def _diff(a: Any, b: Any, path: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict) and a.get("kind") == b.get("kind"):
        out = []
        for k in sorted(set(a) | set(b)):
            p = f"{path}.{k}" if path else k
            if k not in a:
                out.append(f"{p}: added {b[k]!r}")
            elif k not in b:
                out.append(f"{p}: removed {a[k]!r}")
            else:
                out += _diff(a[k], b[k], p)
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = []
        for k in range(max(len(a), len(b))):
            p = f"{path}[{k}]"
            if k >= len(a):
                out.append(f"{p}: added {_short(b[k])}")
            elif k >= len(b):
                out.append(f"{p}: removed {_short(a[k])}")
            else:
                out += _diff(a[k], b[k], p)
        return out
    return [] if a == b else [f"{path}: {_short(a)} -> {_short(b)}"]


def _short(x: Any) -> str:
    if isinstance(x, dict) and "name" in x and "group" in x:
        return f"rule {x['name']!r}"
    if isinstance(x, dict | list):
        s = str(x)
        return s if len(s) < 80 else s[:77] + "..."
    return repr(x) if isinstance(x, str) else str(x)
