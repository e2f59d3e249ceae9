"""Run compiled definitions on other engines: Spark SQL (local or a cluster), PostgreSQL.

DuckDB is the default engine (:func:`cohort.engine.run`). The same compiled query, rendered
for another dialect by sqlglot, runs on a backend that holds the release's tables:

>>> # spark = SparkBackend.for_release(release_dir)            # local[2] by default
>>> # members, persons = run_on(spark, definition, catalog)

Both backends return the same rows and attrition as DuckDB (tests/integration).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Protocol

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlglot import exp

from cohort import model as m
from cohort.engine import compile_for, split_result
from cohort.governance import cell, tables_read
from cohort.privacy import SmallCellPolicy
from workbench import access, audit
from workbench.catalog import VIEWS_VERSION, Catalog
from workbench.scopes import RAW_PREFIX, SCOPE_OF_TABLE, scoped_select


class Backend(Protocol):
    dialect: str

    def query(self, sql: str) -> pl.DataFrame: ...


def run_on(backend: Backend, definition: m.Cohort | m.CohortSet,
           cat: Catalog) -> tuple[pl.DataFrame, list[int]]:
    """Compile against ``cat`` (tables, vocabulary) and run on ``backend``: row-level
    members, so the controlled tier only; audited."""
    access.require("controlled", f"cohort members on {backend.dialect} (row-level)",
                   catalog=cat)
    sql = compile_for(definition, cat, backend.dialect).sql()
    members, persons = split_result(backend.query(sql))
    audit.record("cohort.run", release=cat.manifest, definition=definition,
                 project=cat.project, tables=[t for t in tables_read(definition) if cat.has(t)],
                 sizes={"persons": cell(SmallCellPolicy(), members["subject_id"].n_unique()),
                        "rows": cell(SmallCellPolicy(), members.height), "steps": len(persons)},
                 detail={"engine": backend.dialect})
    return members, persons


class SparkBackend:
    """Spark SQL over the release's Parquet files (temp views), local or on a cluster."""

    dialect = "spark"

    def __init__(self, spark) -> None:
        self.spark = spark

    @classmethod
    def for_release(cls, cat: Catalog, *, spark=None, master: str = "local[2]") -> SparkBackend:
        if spark is None:
            from pyspark.sql import SparkSession

            spark = (SparkSession.builder.master(master).appName("workbench-cohort")
                     .config("spark.ui.enabled", "false")
                     .config("spark.sql.session.timeZone", "UTC")
                     .config("spark.sql.shuffle.partitions", "4")
                     .config("spark.driver.memory", "2g").getOrCreate())
            spark.sparkContext.setLogLevel("ERROR")
        scoped = "consent" in cat.tables
        for name in cat.tables:
            path = cat.path / cat.manifest["tables"][name]["path"]
            raw = f"{RAW_PREFIX}{name}" if scoped and name in SCOPE_OF_TABLE else name
            spark.read.parquet(str(path)).createOrReplaceTempView(raw)
        for name in cat.tables:     # consented rows only, as the catalog's views
            if scoped and name in SCOPE_OF_TABLE:
                view = scoped_select(name, exp.to_table(f"{RAW_PREFIX}{name}"),
                                     exp.to_table("consent"))
                spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {name} AS "
                          f"{view.sql('spark')}")
        return cls(spark)

    def query(self, sql: str) -> pl.DataFrame:
        return pl.from_pandas(self.spark.sql(sql).toPandas())


_PG_TYPES = {pa.int64(): "bigint", pa.int32(): "integer", pa.float64(): "double precision",
             pa.string(): "text", pa.date32(): "date", pa.bool_(): "boolean",
             pa.timestamp("ms"): "timestamp"}


class PostgresBackend:
    """PostgreSQL holding a copy of the release's tables in its own schema."""

    dialect = "postgres"

    def __init__(self, conn) -> None:
        self.conn = conn

    @classmethod
    def for_release(cls, cat: Catalog, dsn: str, *, indexes: bool = True) -> PostgresBackend:
        """Connect, and load the release into schema ``r_<release id>`` unless present."""
        import psycopg

        conn = psycopg.connect(dsn, autocommit=True)
        # the schema's name carries how its views are made (consent-scoped since 2)
        schema = f"r{VIEWS_VERSION}_" + cat.release_id.replace("-", "_")
        exists = conn.execute("select 1 from information_schema.schemata where schema_name = %s",
                              [schema]).fetchone()
        if not exists:
            conn.execute(f'create schema "{schema}"')
            scoped = "consent" in cat.tables
            for name in cat.tables:
                raw = f"{RAW_PREFIX}{name}" if scoped and name in SCOPE_OF_TABLE else name
                load_table(conn, schema, raw, cat.path / cat.manifest["tables"][name]["path"],
                           index=indexes)
            for name in cat.tables:   # consented rows only, as the catalog's views
                if scoped and name in SCOPE_OF_TABLE:
                    view = scoped_select(name, exp.table_(f"{RAW_PREFIX}{name}", db=schema),
                                         exp.table_("consent", db=schema))
                    conn.execute(exp.Create(this=exp.table_(name, db=schema), kind="VIEW",
                                            expression=view).sql("postgres"))
        conn.execute(f'set search_path to "{schema}"')
        return cls(conn)

    def query(self, sql: str) -> pl.DataFrame:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            names = [d.name for d in cur.description]
            rows = cur.fetchall()
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)

    def close(self) -> None:
        self.conn.close()


def load_table(conn, schema: str, name: str, parquet: Path, *, index: bool = True) -> None:
    """CREATE TABLE from the Parquet schema, COPY the rows in (CSV), index person_id."""
    pf = pq.ParquetFile(parquet)
    cols = ", ".join(f'"{f.name}" {_PG_TYPES[f.type]}' for f in pf.schema_arrow)
    conn.execute(f'create table "{schema}"."{name}" ({cols})')
    with conn.cursor() as cur, cur.copy(
            f'copy "{schema}"."{name}" from stdin with (format csv, header true)') as copy:
        for k, batch in enumerate(pf.iter_batches(batch_size=200_000)):
            buf = io.BytesIO()
            pacsv.write_csv(pa.Table.from_batches([batch]), buf,
                            pacsv.WriteOptions(include_header=k == 0))
            copy.write(buf.getvalue())
    if index and "person_id" in pf.schema_arrow.names:
        conn.execute(f'create index on "{schema}"."{name}" (person_id)')
    conn.execute(f'analyze "{schema}"."{name}"')
