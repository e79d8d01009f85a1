# StreamFlow ingest image: the official Airflow image plus the project's pinned runtime dependencies.
# The tag must name the same Airflow version as the apache-airflow pin in requirements.txt and the
# Python the venv uses (3.11); tests/dags/test_compose_image.py fails when they drift apart.
FROM apache/airflow:3.3.2-python3.11

# The official image expects pip to run as the airflow user (its packages live in that user's
# environment; a root install would land elsewhere and be shadowed).
USER airflow

# Same files, same command as `make venv` and CI: requirements.txt holds the direct pins
# (apache-airflow== included, so pip can never swap the image's Airflow for another version),
# constraints.txt the transitive ones. No version is restated here.
COPY requirements.txt constraints.txt /tmp/streamflow/
RUN pip install --no-cache-dir -r /tmp/streamflow/requirements.txt -c /tmp/streamflow/constraints.txt

# The `streamflow` package is not installed: it is imported from the bind-mounted include/ folder,
# whose parent (/opt/airflow) is then the project root that sql/ and data/ are resolved against.
ENV PYTHONPATH=/opt/airflow/include
