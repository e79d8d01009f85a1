"""
### training_set: the point-in-time training set of a month, once its five snapshots land

Owner: data platform. Scheduled on the five snapshot assets that `ingest_month` updates: it runs
when all five have an event, reads the `as_of` from the events' `extra` (all five must name the
same one) and replaces that as_of, and only that one, in `training_examples` with
`training_set(as_of)`: one row per `user_id`, the snapshot features and `churn_label`. Each build
adds a row to `training_set_manifest` (rows, churners, md5 of the rows, the snapshot as_of read).

* A month whose validation fails stamps no snapshot, so it emits no event and nothing is built.
* A replay of an older month emits no event (its snapshots are frozen): nothing is rebuilt.
* Rebuilding an as_of is harmless: the snapshots of a month never change once the next is loaded,
  so the rows and the hash come out the same.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, task

from streamflow import ids
from streamflow.airflow_glue import SNAPSHOT_ASSETS, default_args, fail_fast, warehouse_connection


@dag(
    dag_id=ids.TRAINING_DAG_ID,
    schedule=list(SNAPSHOT_ASSETS.values()),  # a list of assets: all of them updated since the last run
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["streamflow", "training"],
    default_args=default_args(),
    doc_md=__doc__,
)
def training_set():
    @task(retries=0)
    @fail_fast
    def announced_as_of(triggering_asset_events=None) -> list[str]:
        """#### The as_ofs the snapshot events name (a partial one is logged, and built only if complete)."""
        from streamflow.training import announced_as_ofs

        return announced_as_ofs({asset.uri: [dict(event.extra) for event in events]
                                 for asset, events in triggering_asset_events.items()})

    @task
    @fail_fast
    def build(as_ofs: list[str], run_id=None) -> list[dict]:
        """#### Replace each complete as_of in `training_examples` from `training_set(as_of)`, with a manifest."""
        from streamflow import training

        with warehouse_connection() as conn:
            return training.build_announced(conn, as_ofs, run_id)

    build(announced_as_of())


training_set()
