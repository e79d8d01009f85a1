"""StreamFlow ingest: monthly CSV extracts into PostgreSQL, validated, snapshotted as of month end.

Plain Python with no Airflow import, so every piece can be tested without a scheduler.
"""
