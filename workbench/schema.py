"""The release's tables: their columns and Arrow types, the contract the catalog checks.

Clinical and vocabulary tables follow OMOP CDM v5.4 (a subset of columns, same
names); public, lifelog and governance tables are the resource's own.

>>> TABLES["person"].field("person_id").type
DataType(int64)
>>> DOMAINS["health_screening"]
'public'
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1.0"

_id = pa.int64()
_date = pa.date32()
_str = pa.string()
_f = pa.float64()
_i = pa.int32()


def _schema(*cols: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, typ) for name, typ in cols])


TABLES: dict[str, pa.Schema] = {
    # --- clinical (OMOP CDM v5.4) ---------------------------------------------
    "person": _schema(
        ("person_id", _id), ("gender_concept_id", _id), ("year_of_birth", _i),
        ("month_of_birth", _i), ("day_of_birth", _i), ("race_concept_id", _id),
        ("ethnicity_concept_id", _id), ("location_id", _id), ("person_source_value", _str),
        ("gender_source_value", _str),
    ),
    "observation_period": _schema(
        ("observation_period_id", _id), ("person_id", _id),
        ("observation_period_start_date", _date), ("observation_period_end_date", _date),
        ("period_type_concept_id", _id),
    ),
    "visit_occurrence": _schema(
        ("visit_occurrence_id", _id), ("person_id", _id), ("visit_concept_id", _id),
        ("visit_start_date", _date), ("visit_end_date", _date), ("visit_type_concept_id", _id),
        ("visit_source_value", _str),
    ),
    "condition_occurrence": _schema(
        ("condition_occurrence_id", _id), ("person_id", _id), ("condition_concept_id", _id),
        ("condition_start_date", _date), ("condition_end_date", _date),
        ("condition_type_concept_id", _id), ("visit_occurrence_id", _id),
        ("condition_source_value", _str), ("condition_source_concept_id", _id),
    ),
    "drug_exposure": _schema(
        ("drug_exposure_id", _id), ("person_id", _id), ("drug_concept_id", _id),
        ("drug_exposure_start_date", _date), ("drug_exposure_end_date", _date),
        ("days_supply", _i), ("quantity", _f), ("drug_type_concept_id", _id),
        ("visit_occurrence_id", _id), ("drug_source_value", _str), ("drug_source_concept_id", _id),
    ),
    "measurement": _schema(
        ("measurement_id", _id), ("person_id", _id), ("measurement_concept_id", _id),
        ("measurement_date", _date), ("measurement_type_concept_id", _id),
        ("value_as_number", _f), ("unit_concept_id", _id), ("unit_source_value", _str),
        ("range_low", _f), ("range_high", _f), ("visit_occurrence_id", _id),
        ("measurement_source_value", _str),
    ),
    "procedure_occurrence": _schema(
        ("procedure_occurrence_id", _id), ("person_id", _id), ("procedure_concept_id", _id),
        ("procedure_date", _date), ("procedure_type_concept_id", _id),
        ("visit_occurrence_id", _id), ("procedure_source_value", _str),
    ),
    "death": _schema(
        ("person_id", _id), ("death_date", _date), ("death_type_concept_id", _id),
        ("cause_concept_id", _id), ("cause_source_value", _str),
    ),
    "location": _schema(
        ("location_id", _id), ("city", _str), ("state", _str),
        ("location_source_value", _str), ("country_source_value", _str),
    ),
    # --- vocabulary (OMOP, plus Korean names) ---------------------------------
    "concept": _schema(
        ("concept_id", _id), ("concept_name", _str), ("concept_name_ko", _str),
        ("domain_id", _str), ("vocabulary_id", _str), ("concept_class_id", _str),
        ("standard_concept", _str), ("concept_code", _str), ("valid_start_date", _date),
        ("valid_end_date", _date), ("invalid_reason", _str),
    ),
    "concept_ancestor": _schema(
        ("ancestor_concept_id", _id), ("descendant_concept_id", _id),
        ("min_levels_of_separation", _i), ("max_levels_of_separation", _i),
    ),
    "concept_relationship": _schema(
        ("concept_id_1", _id), ("concept_id_2", _id), ("relationship_id", _str),
        ("valid_start_date", _date), ("valid_end_date", _date), ("invalid_reason", _str),
    ),
    # --- public agencies -------------------------------------------------------
    "health_screening": _schema(
        ("person_id", _id), ("screening_date", _date), ("height_cm", _f), ("weight_kg", _f),
        ("bmi", _f), ("waist_cm", _f), ("sbp", _f), ("dbp", _f), ("fasting_glucose", _f),
        ("total_cholesterol", _f), ("ldl_cholesterol", _f), ("hdl_cholesterol", _f),
        ("triglycerides", _f), ("egfr", _f), ("smoking_status", _i),
        ("drinking_days_per_week", _i), ("exercise_days_per_week", _i),
    ),
    "death_registry": _schema(
        ("person_id", _id), ("death_date", _date), ("underlying_cause", _str),
        ("report_year", _i),
    ),
    "region_indicator": _schema(
        ("location_id", _id), ("year", _i), ("deprivation_index", _f), ("pm25", _f),
    ),
    # --- lifelog ---------------------------------------------------------------
    "wearable_daily": _schema(
        ("person_id", _id), ("date", _date), ("steps", _i), ("sleep_minutes", _i),
        ("resting_hr", _i), ("active_minutes", _i),
    ),
    "wearable_intraday_hr": _schema(
        ("person_id", _id), ("ts", pa.timestamp("ms")), ("heart_rate", _i),
    ),
    # --- governance --------------------------------------------------------------
    "consent": _schema(
        ("person_id", _id), ("consent_date", _date), ("clinical", pa.bool_()),
        ("public", pa.bool_()), ("lifelog", pa.bool_()), ("genomic", pa.bool_()),
        ("withdrawal_date", _date),
    ),
    "sample_link": _schema(("person_id", _id), ("sample_id", _str)),
}

DOMAINS: dict[str, str] = {
    **dict.fromkeys(
        ["person", "observation_period", "visit_occurrence", "condition_occurrence",
         "drug_exposure", "measurement", "procedure_occurrence", "death", "location"],
        "clinical"),
    **dict.fromkeys(["concept", "concept_ancestor", "concept_relationship"], "vocabulary"),
    **dict.fromkeys(["health_screening", "death_registry", "region_indicator"], "public"),
    **dict.fromkeys(["wearable_daily", "wearable_intraday_hr"], "lifelog"),
    **dict.fromkeys(["consent", "sample_link"], "governance"),
}

# Physical layout: event tables are clustered by concept, then person and date (the
# last key is the row id, so the order is total and files are deterministic). Cohort
# criteria filter on concepts, so a scan reads only the row groups whose concept range
# matches (Parquet min/max statistics) -- in DuckDB, Polars and Spark alike. This is how
# national OMOP warehouses are clustered (e.g. by concept id in BigQuery).
CLUSTER_BY: dict[str, tuple[str, ...]] = {
    "condition_occurrence": ("condition_concept_id", "person_id", "condition_start_date",
                             "condition_occurrence_id"),
    "drug_exposure": ("drug_concept_id", "person_id", "drug_exposure_start_date",
                      "drug_exposure_id"),
    "measurement": ("measurement_concept_id", "person_id", "measurement_date",
                    "measurement_id"),
    "procedure_occurrence": ("procedure_concept_id", "person_id", "procedure_date",
                             "procedure_occurrence_id"),
}

# Files that are not tables (listed in the manifest with checksums).
GENOTYPE_VCF = "genotypes/variants.vcf.bgz"
GENOTYPE_INDEX = GENOTYPE_VCF + ".tbi"


def table_file(name: str) -> str:
    """Relative path of a table's Parquet file inside a release.

    >>> table_file("person")
    'clinical/person.parquet'
    """
    return f"{DOMAINS[name]}/{name}.parquet"
