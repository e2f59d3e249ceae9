"""Cohort definitions as data, compiled to SQL and run on DuckDB (never imports hail)."""
