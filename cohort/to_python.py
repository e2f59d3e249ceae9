"""A definition as Python code that rebuilds it ("copy as Python").

The code uses :mod:`cohort.builder` where the builder can say exactly the same thing
(a fluent chain ``cohort(...).entry(...).require(...).build()``), and the model's
constructors (``m.Cohort(...)``) where it cannot (a rule with a description, a group of
mode "at_least" as a whole rule, a requirement outside observation, ...). Each part is
rendered in the builder form only if evaluating that form gives an equal object, so
``exec`` of the code always yields a definition equal to the input.

>>> from cohort.builder import cohort, condition, drug, age
>>> d = (cohort("T2D on metformin").entry(condition("KCD8", "E11").first())
...      .require("adults", age(18, None))
...      .exclude("no insulin before", drug("ATC", "A10A").within(None, -1)).build())
>>> code = to_python(d)
>>> print(code)
from cohort.builder import age, cohort, condition, drug
<BLANKLINE>
definition = (
    cohort("T2D on metformin")
    .entry(condition("KCD8", "E11").first())
    .require("adults", age(18, None))
    .exclude("no insulin before", drug("ATC", "A10A").within(None, -1))
    .build()
)
>>> namespace = {}
>>> exec(code, namespace)
>>> namespace["definition"] == d
True
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from cohort import builder as b
from cohort import model as m

__all__ = ["to_python", "expression"]

WIDTH = 96


class _NoBuilderForm(Exception):
    """This part has no exact builder form; render it with the model's constructors."""


class _Code:
    """Collects the names the rendered code needs to import."""

    def __init__(self) -> None:
        self.builder: set[str] = set()
        self.model = False

    def use(self, name: str) -> str:
        self.builder.add(name)
        return name

    def m(self, cls: type) -> str:
        self.model = True
        return f"m.{cls.__name__}"

    def imports(self) -> str:
        lines = []
        if self.model:
            lines.append("from cohort import model as m")
        if self.builder:
            lines.append(f"from cohort.builder import {', '.join(sorted(self.builder))}")
        return "\n".join(lines)


def to_python(definition: m.Cohort | m.CohortSet, *, variable: str = "definition") -> str:
    """Python code (imports, then ``variable = ...``) that rebuilds ``definition``.

    >>> from cohort.model import Cohort, Entry, DeathCriterion
    >>> print(to_python(Cohort(name="deaths", entry=Entry(criteria=[DeathCriterion()]))))
    from cohort.builder import cohort, death
    <BLANKLINE>
    definition = cohort("deaths").entry(death()).build()
    """
    code = _Code()
    body = _cohort_expr(definition, code, indent=0)
    head = code.imports()
    return f"{head}\n\n{variable} = {body}"


def expression(definition: m.Cohort | m.CohortSet) -> tuple[str, str]:
    """(imports, expression) for embedding a definition in larger generated code.

    >>> from cohort.model import Cohort, Entry, DeathCriterion
    >>> expression(Cohort(name="d", entry=Entry(criteria=[DeathCriterion()])))[1]
    'cohort("d").entry(death()).build()'
    """
    code = _Code()
    body = _cohort_expr(definition, code, indent=0)
    return code.imports(), body


# --- literals and generic model constructors -------------------------------------------

def _num(v: float | int) -> str:
    if isinstance(v, bool):
        return repr(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return f'float("{v}")'
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
    return repr(v)


def _lit(v: Any, code: _Code, indent: int) -> str:
    if v is None or isinstance(v, bool | str):
        return _str(v) if isinstance(v, str) else repr(v)
    if isinstance(v, int | float):
        return _num(v)
    if isinstance(v, list | tuple):
        return _call("", [_lit(x, code, indent + 4) for x in v], indent, brackets="[]")
    if isinstance(v, BaseModel):
        return _model_expr(v, code, indent)
    raise TypeError(f"to_python: cannot render {type(v).__name__} {v!r}")


def _str(s: str) -> str:
    """A string literal in double quotes (as ruff formats them)."""
    r = repr(s)
    if r.startswith("'") and '"' not in s:
        return '"' + r[1:-1].replace("\\'", "'") + '"'
    return r


def _field_default(cls: type[BaseModel], name: str) -> Any:
    info = cls.model_fields[name]
    if info.is_required():
        return _REQUIRED
    return info.get_default(call_default_factory=True)


_REQUIRED = object()


def _model_expr(obj: BaseModel, code: _Code, indent: int) -> str:
    """``m.Class(field=value, ...)``, fields equal to their default left out; criteria
    and cohorts in their builder form when it is exact."""
    if isinstance(obj, m.Cohort | m.CohortSet):
        return _cohort_expr(obj, code, indent)
    if _is_criterion(obj):
        try:
            return _req_expr(obj, code) + ".criterion"
        except _NoBuilderForm:
            pass
    cls = type(obj)
    args = []
    for name in cls.model_fields:
        value = getattr(obj, name)
        default = _field_default(cls, name)
        if default is not _REQUIRED and value == default:
            continue
        args.append(f"{name}={_lit(value, code, indent + 4)}")
    return _call(code.m(cls), args, indent)


def _call(head: str, args: list[str], indent: int, brackets: str = "()") -> str:
    """``head(a, b)`` on one line if it fits, else one argument a line."""
    o, c = brackets
    flat = f"{head}{o}{', '.join(args)}{c}"
    if indent + len(flat) <= WIDTH and "\n" not in flat:
        return flat
    pad = " " * (indent + 4)
    inner = ",\n".join(pad + a for a in args)
    return f"{head}{o}\n{inner},\n{' ' * indent}{c}"


# --- builder forms -----------------------------------------------------------------------

def _is_criterion(obj: Any) -> bool:
    return isinstance(obj, BaseModel) and obj.__class__.__name__.endswith("Criterion")


def _check(expr: str, want: Any, attr: str | None = None) -> str:
    """``expr`` if evaluating it with the builder gives ``want`` exactly."""
    ns: dict[str, Any] = {"m": m, **{k: getattr(b, k) for k in b.__all__}, "Req": b.Req}
    got = eval(expr, ns)  # noqa: S307 - our own generated code
    if attr:
        got = getattr(got, attr)
    if got != want:
        raise _NoBuilderForm(expr)
    return expr


def _concept_args(cs: m.ConceptSet) -> list[str]:
    """Arguments of ``condition(...)`` etc. that make ``cs``, or _NoBuilderForm."""
    inc = [i for i in cs.items if not i.exclude]
    exc = [i for i in cs.items if i.exclude]
    if not inc or cs.items != inc + exc:
        raise _NoBuilderForm("order")
    if any(i.vocabulary is None or i.code is None or i.concept_id is not None
           for i in cs.items):
        raise _NoBuilderForm("ids")
    vocab = inc[0].vocabulary
    if any(i.vocabulary != vocab for i in cs.items):
        raise _NoBuilderForm("vocabularies")
    args = [_str(vocab), *(_str(i.code) for i in inc)]
    if cs.name != f"{vocab} {', '.join(i.code for i in inc)}":
        args.append(f"name={_str(cs.name)}")
    if not inc[0].include_descendants:
        args.append("descendants=False")
    if inc[0].include_mapped:
        args.append("mapped=True")
    if exc:
        args.append(f"excluding=({''.join(_str(i.code) + ', ' for i in exc).rstrip(' ')})")
    return args


def _range_args(r: m.Range | None) -> list[str]:
    return [] if r is None else [_lit(r.min, _Code(), 0), _lit(r.max, _Code(), 0)]


def _bound_args(r: m.Range | None, low: str, high: str) -> list[str]:
    """``low=..``/``high=..`` keywords for the bounds a range has (none for no range)."""
    if r is None:
        return []
    if r.min is None and r.max is None:
        raise _NoBuilderForm("open range")
    return [f"{name}={_num(v)}" for name, v in ((low, r.min), (high, r.max)) if v is not None]


def _criterion_expr(c: Any, code: _Code) -> str:
    """The builder call for one criterion (a ``Req``), exactness checked by the caller."""
    kind = c.kind
    if kind in ("condition", "drug", "procedure"):
        return f"{code.use(kind)}({', '.join(_concept_args(c.concepts))})"
    if kind == "measurement":
        args = [*_concept_args(c.concepts), *_bound_args(c.value, "min", "max")]
        if c.unit is not None:
            args.append(f"unit={_str(c.unit)}")
        return f"{code.use('measurement')}({', '.join(args)})"
    if kind == "visit":
        types = [] if c.visit_types == ["IP", "OP", "ER"] else [_str(t) for t in c.visit_types]
        return f"{code.use('visit')}({', '.join(types)})"
    if kind in ("death", "observation_period"):
        return f"{code.use(kind)}()"
    if kind == "has_genome":
        return f"{code.use('has_genome')}()"
    if kind == "screening":
        return f"{code.use('screening')}({', '.join([_str(c.item), *_range_args(c.value)])})"
    if kind == "lifelog":
        args = [_str(c.metric), _str(c.aggregate), *_range_args(c.value)]
        if c.min_days != 1:
            args.append(f"min_days={c.min_days}")
        args += _bound_args(c.day_range, "day_min", "day_max")
        return f"{code.use('lifelog')}({', '.join(args)})"
    if kind == "region_indicator":
        args = [_str(c.indicator), *_range_args(c.value)]
        return f"{code.use('region_indicator')}({', '.join(args)})"
    if kind == "consent":
        return f"{code.use('consent')}({_str(c.scope)})"
    if kind in ("age",):
        return f"{code.use('age')}({', '.join(_range_args(c.value))})"
    if kind == "sex":
        return f"{code.use('sex')}({', '.join(_str(v) for v in c.values)})"
    if kind == "region":
        return f"{code.use('region')}({', '.join(_str(v) for v in c.codes)})"
    if kind == "genotype":
        args = [_str(v) for v in c.variants or []]
        if c.region is not None:
            args.append(f"region={_str(c.region)}")
        if c.zygosity != "carrier":
            args.append(f"zygosity={_str(c.zygosity)}")
        return f"{code.use('carriers')}({', '.join(args)})"
    if kind == "cohort_member":
        return f"{code.use('member_of')}({_cohort_expr(c.cohort, code, 4)})"
    raise _NoBuilderForm(kind)


def _req_expr(c: Any, code: _Code, window: m.Window | None = None,
              occurrence: m.Occurrence | None = None) -> str:
    """A ``Req`` expression for a criterion (with a window and occurrence); exact or
    _NoBuilderForm. Falls back to ``Req(m.X(...))`` only via the caller."""
    trial = _Code()
    expr = _criterion_expr(c, trial)
    if getattr(c, "first_occurrence", False):
        expr += ".first()"
    if window is not None:
        anchor = "" if window.anchor == "index_start" else f", anchor={_str(window.anchor)}"
        expr += f".within({_lit(window.start, trial, 0)}, {_lit(window.end, trial, 0)}{anchor})"
    occ = occurrence or m.Occurrence()
    if (occ.op, occ.count) != ("at_least", 1):
        expr += f".{occ.op}({occ.count})"
    if occ.distinct_dates:
        expr += ".on_distinct_dates()"
    _check(expr, c, "criterion")
    if window is not None or occurrence is not None:
        _check(expr + ".requirement()", m.Requirement(criterion=c, window=window,
                                                      occurrence=occ))
    code.builder |= trial.builder
    code.model = code.model or trial.model
    return expr


def _event_expr(c: Any, code: _Code, indent: int) -> str:
    """A Req for an entry or censoring event: builder form, else ``Req(m.X(...))``."""
    try:
        return _req_expr(c, code)
    except _NoBuilderForm:
        cls = type(c)
        args = [f"{n}={_lit(getattr(c, n), code, indent + 8)}" for n in cls.model_fields
                if _field_default(cls, n) is _REQUIRED or getattr(c, n) != _field_default(cls, n)]
        return f"{code.use('Req')}({_call(code.m(cls), args, indent + 4)})"


def _item_expr(item: m.Requirement | m.Group, code: _Code, indent: int) -> str:
    if isinstance(item, m.Requirement):
        if not item.restrict_to_observation:
            raise _NoBuilderForm("outside observation")
        return _req_expr(item.criterion, code, item.window, item.occurrence)
    if item.mode == "at_least":
        head, first = code.use("at_least"), [str(item.n)]
    elif item.n == 1:
        head, first = code.use("all_of" if item.mode == "all" else "any_of"), []
    else:
        raise _NoBuilderForm("n")
    return _call(head, first + [_item_expr(i, code, indent + 4) for i in item.items], indent)


def _rule_expr(rule: m.InclusionRule, code: _Code, indent: int) -> str:
    g = rule.group
    if rule.description or g.n != 1 or g.mode == "at_least":
        raise _NoBuilderForm("rule")
    name = _str(rule.name)
    if (g.mode == "all" and len(g.items) == 1 and isinstance(g.items[0], m.Requirement)
            and g.items[0].occurrence == m.Occurrence(op="exactly", count=0)
            and g.items[0].restrict_to_observation):
        r = g.items[0]
        plain = _req_expr(r.criterion, code, r.window, None)
        return _call(".exclude", [name, plain], indent)
    head = ".require" if g.mode == "all" else ".require_any"
    return _call(head, [name] + [_item_expr(i, code, indent + 4) for i in g.items], indent)


def _builder_chain(d: m.Cohort, code: _Code, outer: int) -> str:
    indent = outer + 4     # each call of the chain sits on its own line
    head_args = [_str(d.name)] + ([_str(d.description)] if d.description else [])
    calls = [f"{code.use('cohort')}({', '.join(head_args)})"]
    e = d.entry
    args = [_event_expr(c, code, indent + 4) for c in e.criteria]
    if e.limit != "first":
        args.append(f"limit={_str(e.limit)}")
    if e.prior_observation:
        args.append(f"prior_observation={e.prior_observation}")
    if e.post_observation:
        args.append(f"post_observation={e.post_observation}")
    calls.append(_call(".entry", args, indent))
    calls += [_rule_expr(r, code, indent) for r in d.inclusion_rules]
    x = d.exit
    if isinstance(x, m.FixedOffset):
        anchor = "" if x.anchor == "index_start" else f", anchor={_str(x.anchor)}"
        calls.append(f".exit_after({x.days}{anchor})")
    elif isinstance(x, m.DrugExposureEnd):
        args = _concept_args(x.concepts)
        if x.concepts != b.concept_set(x.concepts.items[0].vocabulary,
                                       *(i.code for i in x.concepts.items)):
            raise _NoBuilderForm("exit concepts")
        args = args[:1 + len(x.concepts.items)]
        if x.gap_days != 30:
            args.append(f"gap_days={x.gap_days}")
        if x.offset:
            args.append(f"offset={x.offset}")
        calls.append(_call(".exit_at_drug_end", args, indent))
    if d.censoring:
        calls.append(_call(".censor", [_event_expr(c, code, indent + 4) for c in d.censoring],
                           indent))
    if d.result_limit == "first":
        calls.append(".first_result_only()")
    if d.era_pad_days:
        calls.append(f".collapse({d.era_pad_days})")
    calls.append(".build()")
    flat = "".join(calls)
    if outer + len(flat) <= WIDTH and "\n" not in flat:
        return flat
    pad = " " * indent
    return "(\n" + "\n".join(pad + c for c in calls) + f"\n{' ' * outer})"


def _cohort_expr(d: m.Cohort | m.CohortSet, code: _Code, indent: int) -> str:
    if isinstance(d, m.CohortSet):
        args = [f"kind={_str(d.kind)}", f"name={_str(d.name)}",
                "cohorts=" + _call("", [_cohort_expr(c, code, indent + 8) for c in d.cohorts],
                                   indent + 4, brackets="[]")]
        return _call(code.m(m.CohortSet), args, indent)
    trial = _Code()
    try:
        text = _builder_chain(d, trial, indent)
        ns: dict[str, Any] = {"m": m, "Req": b.Req, **{k: getattr(b, k) for k in b.__all__}}
        if eval(text, ns) != d:  # noqa: S307 - our own generated code
            raise _NoBuilderForm("chain")
    except _NoBuilderForm:
        trial = _Code()
        cls = type(d)
        args = [f"{n}={_lit(getattr(d, n), trial, indent + 4)}" for n in cls.model_fields
                if _field_default(cls, n) is _REQUIRED or getattr(d, n) != _field_default(cls, n)]
        text = _call(trial.m(cls), args, indent)
    code.builder |= trial.builder
    code.model = code.model or trial.model
    return text
