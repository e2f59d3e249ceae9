"""Run compiled definitions on other engines: Spark SQL (local or a cluster), PostgreSQL.

DuckDB is the default engine. ``cohort.engine.run(definition, cat, engine="spark")`` runs
the same compiled query, rendered by sqlglot as Spark SQL, over the release's Parquet
files (:func:`spark_for`); :func:`run_on` runs it on any backend (row-level members):

>>> # members, persons = run_on(SparkBackend.for_release(cat), definition, cat)
>>> # members, persons = run_on(PostgresBackend.for_release(cat, dsn), definition, cat)

One Spark session serves the process: Hail's when Hail runs (:mod:`genomics.session`), a
session passed in, or one started through ``genomics.session.init`` (so Hail can join it
later). ``$WORKBENCH_SPARK_MASTER`` (``spark://host:7077``, ``yarn``) chooses the cluster;
``data_url`` (or ``$WORKBENCH_RELEASE_URL``) where the executors read the release's
Parquet (``gs://bucket/release``, ``hdfs:///releases/r1``; default: the release's local
folder). Every backend returns the same rows and attrition as DuckDB (tests/integration,
tests/cluster).
"""

from __future__ import annotations

import io
import os
import threading
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
from workbench.catalog import (
    CARRIER_SCHEMA,
    CARRIER_TABLE,
    VIEWS_VERSION,
    Catalog,
    carrier_table_path,
)
from workbench.schema import TABLES
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
    """Spark SQL over the release's Parquet files (temp views), local or on a cluster.

    Each backend has its own Spark session (``newSession``: the process's Spark context,
    its own temp views), so backends of several releases live side by side."""

    dialect = "spark"

    def __init__(self, spark) -> None:
        self.spark = spark

    @classmethod
    def for_release(cls, cat: Catalog, *, spark=None, master: str | None = None,
                    data_url: str | None = None) -> SparkBackend:
        """Temp views of the release's tables (consent-scoped as the catalog's) in a new
        session of ``spark`` (default: :func:`spark_session`). ``data_url``: the release's
        folder as the executors see it (an object-store or HDFS URL holding the same
        files as ``cat.path``); default ``$WORKBENCH_RELEASE_URL``, else ``cat.path``."""
        spark = (spark or spark_session(master)).newSession()
        for key, value in _SESSION_CONF.items():
            spark.conf.set(key, value)
        base = (data_url or os.environ.get("WORKBENCH_RELEASE_URL") or str(cat.path))
        base = base.rstrip("/")
        scoped = "consent" in cat.tables
        for name in cat.tables:
            path = f"{base}/{cat.manifest['tables'][name]['path']}"
            raw = f"{RAW_PREFIX}{name}" if scoped and name in SCOPE_OF_TABLE else name
            # the schema given, not inferred: inference is a Spark job per file
            spark.read.schema(spark_schema(TABLES[name])).parquet(path) \
                .createOrReplaceTempView(raw)
        for name in cat.tables:     # consented rows only, as the catalog's views
            if scoped and name in SCOPE_OF_TABLE:
                view = scoped_select(name, exp.to_table(f"{RAW_PREFIX}{name}"),
                                     exp.to_table("consent"))
                spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {name} AS "
                          f"{view.sql('spark')}")
        carriers = carrier_table_path(cat.manifest)
        if CARRIER_TABLE in cat.derived and carriers is not None:
            # built by genomics.carriers in the workbench cache (on a cluster: a path
            # every executor can read, e.g. $WORKBENCH_CACHE on shared storage)
            spark.read.schema(spark_schema(CARRIER_SCHEMA)).parquet(str(carriers)) \
                .createOrReplaceTempView(CARRIER_TABLE)
        return cls(spark)

    def query(self, sql: str) -> pl.DataFrame:
        return pl.from_pandas(self.spark.sql(sql).toPandas())


_SPARK_TYPES = {pa.int64(): "BIGINT", pa.int32(): "INT", pa.int8(): "TINYINT",
                pa.float64(): "DOUBLE", pa.string(): "STRING", pa.date32(): "DATE",
                pa.bool_(): "BOOLEAN", pa.timestamp("ms"): "TIMESTAMP_NTZ"}


def spark_schema(schema: pa.Schema) -> str:
    """A release table's Arrow schema as Spark DDL (timestamps without a zone are NTZ,
    as Spark reads pyarrow's).

    >>> spark_schema(pa.schema([("person_id", pa.int64()), ("date", pa.date32())]))
    '`person_id` BIGINT, `date` DATE'
    """
    return ", ".join(f"`{f.name}` {_SPARK_TYPES[f.type]}" for f in schema)


# per Spark session: UTC (dates are compared as dates; timestamps print as UTC), few
# shuffle partitions for cohort-sized joins, Arrow for the hand-off to Polars
_SESSION_CONF = {"spark.sql.session.timeZone": "UTC", "spark.sql.shuffle.partitions": "8",
                 "spark.sql.execution.arrow.pyspark.enabled": "true"}
_BACKENDS: dict[tuple, SparkBackend] = {}
_LOCK = threading.Lock()


def spark_session(master: str | None = None):
    """The process's Spark session, shared with Hail: the running one (Hail's, or one the
    user made), else Hail's started now by :func:`genomics.session.init` on ``master``
    (default ``$WORKBENCH_SPARK_MASTER``, else local on every core), so a later GWAS in
    the same process uses the same JVM and cluster."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is None:
        from genomics import session

        session.init(master=master)
    return SparkSession.builder.getOrCreate()


def spark_for(cat: Catalog, *, spark=None, data_url: str | None = None) -> SparkBackend:
    """The Spark backend of a release (made once per release, Spark context and
    location; then reused): what ``run(..., engine="spark")`` uses."""
    if isinstance(spark, SparkBackend):
        return spark
    session = spark or spark_session()
    key = (id(session.sparkContext), str(cat.path), cat.release_id, tuple(cat.tables),
           tuple(cat.derived), data_url or os.environ.get("WORKBENCH_RELEASE_URL"))
    with _LOCK:
        if key not in _BACKENDS:
            _BACKENDS[key] = SparkBackend.for_release(cat, spark=session, data_url=data_url)
        return _BACKENDS[key]


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
