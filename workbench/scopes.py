"""Consent scopes: a person's rows in a table are used only under the consent that covers it.

A participant consents per scope (the ``consent`` table: ``clinical``, ``public``,
``lifelog``, ``genomic``) and may withdraw. Every table of person-level data belongs to
one scope (:data:`SCOPE_OF_TABLE`); the catalog's view of such a table (and the Spark and
PostgreSQL backends' copies) holds only the rows of persons who consented to its scope and
have not withdrawn. So every compiled query, characterisation, dataset and genomics link
reads consented rows only, with no code of its own for it. Enrolment tables (``person``,
``observation_period``, ``location``), area-level data (``region_indicator``), the
vocabulary and ``consent`` itself are not filtered by scope; withdrawn persons are left out
of every result by the queries (:func:`cohort.compile.consented`).

A release without a consent table (an OMOP load) has nothing to filter by: its views are
the tables as they are, and its manifest warns.

>>> print(scoped_select("wearable_daily", exp.to_table("w_rows"), exp.to_table("consent"))
...       .sql("duckdb", pretty=True))
SELECT
  *
FROM w_rows AS t
WHERE
  t.person_id IN (
    SELECT
      c.person_id
    FROM consent AS c
    WHERE
      c.lifelog AND c.withdrawal_date IS NULL
  )
>>> SCOPE_OF_TABLE["health_screening"], "person" in SCOPE_OF_TABLE
('public', False)
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

#: the consent scope each table of person-level data needs
SCOPE_OF_TABLE: dict[str, str] = {
    **dict.fromkeys(["visit_occurrence", "condition_occurrence", "drug_exposure",
                     "measurement", "procedure_occurrence", "death"], "clinical"),
    **dict.fromkeys(["health_screening", "death_registry"], "public"),
    **dict.fromkeys(["wearable_daily", "wearable_intraday_hr"], "lifelog"),
    "sample_link": "genomic",
}

#: the name under which a scoped table's unfiltered rows live in a database of our own
#: (the DuckDB-native copy, PostgreSQL, Spark's temp views); never queried by the library
RAW_PREFIX = "_rows_"


def scoped_select(name: str, source: exp.Expression, consent: exp.Expression,
                  columns: Sequence[str] | None = None) -> exp.Select:
    """SELECT ``columns`` (default all) FROM ``source`` keeping only the rows of persons who
    consented to ``name``'s scope and did not withdraw (all rows for an unscoped table).

    ``source`` and ``consent`` are anything a FROM takes (a table, ``read_parquet(...)``).
    """
    cols = [exp.column(c, "t") for c in columns] if columns is not None else [exp.Star()]
    select = exp.select(*cols).from_(_aliased(source, "t"))
    scope = SCOPE_OF_TABLE.get(name)
    if scope is None:
        return select
    allowed = (exp.select(exp.column("person_id", "c"))
               .from_(_aliased(consent, "c"))
               .where(exp.and_(exp.column(scope, "c"),
                               exp.Is(this=exp.column("withdrawal_date", "c"),
                                      expression=exp.Null()))))
    return select.where(exp.In(this=exp.column("person_id", "t"),
                               query=exp.Subquery(this=allowed)))


def _aliased(source: exp.Expression, alias: str) -> exp.Expression:
    """``source AS alias`` for a table; ``(SELECT * FROM source) AS alias`` otherwise (a
    table function such as read_parquet takes no alias in every dialect)."""
    if isinstance(source, exp.Table):
        return exp.alias_(source, alias, table=True)
    return exp.select(exp.Star()).from_(source).subquery(alias)
