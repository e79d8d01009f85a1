"""Local developer stack behind the Makefile: settings from .env, an embedded PostgreSQL, Airflow processes.

Not imported by the DAG or the pipeline code.
"""
