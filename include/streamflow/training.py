"""The `training_set` DAG's steps: which as_of the snapshot events announce, and building it.

`training_examples` holds `training_set(as_of)` (sql/005) frozen, one row per (as_of, user_id);
`training_set_manifest` one row per build. Both, and the function that replaces one as_of, are in
sql/schema/006_training_examples.sql and sql/functions/006_training_examples.sql.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from streamflow import queries
from streamflow.errors import DataError
from streamflow.registry import SNAPSHOTTED

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

SNAPSHOT_ASSET_URIS: tuple[str, ...] = tuple(t.snapshot_asset_uri for t in SNAPSHOTTED)


class TrainingSetRefused(DataError):
    """The snapshot events do not name one complete as_of, or its snapshots are incomplete."""


def announced_as_ofs(events: dict[str, list[dict]], expected: tuple[str, ...] = SNAPSHOT_ASSET_URIS) -> list[str]:
    """The as_ofs the triggering snapshot events name, oldest first.

    Normally one, announced by all five assets. A run may also carry events of an as_of from some
    assets only (a month whose stamping failed half-way and was re-run, or events left from before
    a pause): that as_of is still returned, and `build` decides from the warehouse, where its five
    snapshots either all exist or the build is refused. Deciding from the events alone would
    strand a month whose five events arrive across two runs.

    Args:
        events: the extras of the triggering asset events, by asset URI.
        expected: the asset URIs the DAG is scheduled on.

    Raises:
        TrainingSetRefused: no event names an as_of.
    """
    per_asset = {uri: {extra.get("as_of") for extra in events.get(uri, [])} for uri in expected}
    announced = set().union(*per_asset.values())
    if not announced or None in announced:
        raise TrainingSetRefused(f"no as_of in the triggering snapshot events: {events}")
    for as_of in sorted(announced):
        missing = [uri.rsplit("/", 1)[-1] for uri, seen in per_asset.items() if as_of not in seen]
        if missing:
            log.warning("as_of %s has no event from %s in this run: built only if its five snapshots are stamped",
                        as_of, ", ".join(missing))
    return sorted(announced)


def build_announced(conn: psycopg.Connection, as_ofs: list[str], run_id: str) -> list[dict]:
    """Build each announced as_of whose snapshots are complete; skip (and name) the others.

    Raises:
        TrainingSetRefused: none of them could be built.
    """
    built, refused = [], []
    for as_of in as_ofs:
        try:
            built.append(build(conn, as_of, run_id))
        except TrainingSetRefused as error:
            log.warning("skipped: %s", error)
            refused.append(str(error))
    if not built:
        raise TrainingSetRefused("no training set built: " + " | ".join(refused))
    return built


def build(conn: psycopg.Connection, as_of: str, run_id: str) -> dict:
    """Replace the training examples of `as_of` (that as_of only, one transaction); return the manifest.

    Raises:
        TrainingSetRefused: the as_of's snapshots are not all stamped (nothing is written).
    """
    import psycopg

    try:
        with conn.transaction():
            row = conn.execute(queries.text("training_build_examples"), {"as_of": as_of, "run_id": run_id}).fetchone()
    except psycopg.errors.RaiseException as error:
        raise TrainingSetRefused(f"{error.diag.message_primary}; {error.diag.message_hint}") from None
    manifest = dict(zip(("as_of", "snapshot_as_of", "rows", "churners", "content_md5", "run_id"), row, strict=True))
    log.info("training_examples at as_of %s: %s rows, %s churners, md5 %s",
             as_of, manifest["rows"], manifest["churners"], manifest["content_md5"])
    return manifest
