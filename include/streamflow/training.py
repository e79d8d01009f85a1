"""The `training_set` DAG's steps: which as_of the snapshot events announce, and building it.

`training_examples` holds `training_set(as_of)` (sql/005) frozen, one row per (as_of, user_id);
`training_set_manifest` one row per build. Both, and the function that replaces one as_of, are in
sql/006_training_examples.sql.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from streamflow.errors import DataError
from streamflow.registry import SNAPSHOTTED

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

SNAPSHOT_ASSET_URIS: tuple[str, ...] = tuple(t.snapshot_asset_uri for t in SNAPSHOTTED)


class TrainingSetRefused(DataError):
    """The snapshot events do not name one complete as_of, or its snapshots are incomplete."""


def announced_as_ofs(events: dict[str, list[dict]], expected: tuple[str, ...] = SNAPSHOT_ASSET_URIS) -> list[str]:
    """The as_ofs that every snapshot asset announced, oldest first.

    Normally one: a month's five snapshot tasks each emit one event. A run that consumed the
    events of two months (the DAG was paused while both landed) builds both.

    Args:
        events: the extras of the triggering asset events, by asset URI.
        expected: the asset URIs the DAG is scheduled on.

    Raises:
        TrainingSetRefused: an as_of announced by some of the assets only (naming which), or none.
    """
    per_asset = {uri: {extra.get("as_of") for extra in events.get(uri, [])} for uri in expected}
    announced = set().union(*per_asset.values())
    if not announced or None in announced:
        raise TrainingSetRefused(f"no as_of in the triggering snapshot events: {events}")
    incomplete = {as_of: [uri.rsplit("/", 1)[-1] for uri, seen in per_asset.items() if as_of not in seen]
                  for as_of in sorted(announced)}
    incomplete = {as_of: missing for as_of, missing in incomplete.items() if missing}
    if incomplete:
        raise TrainingSetRefused("the five snapshot assets were not all updated for the same as_of: " + "; ".join(
            f"as_of {as_of} has no event from {', '.join(missing)}" for as_of, missing in incomplete.items()))
    return sorted(announced)


def build(conn: psycopg.Connection, as_of: str, run_id: str) -> dict:
    """Replace the training examples of `as_of` (that as_of only, one transaction); return the manifest.

    Raises:
        TrainingSetRefused: the as_of's snapshots are not all stamped (nothing is written).
    """
    import psycopg

    try:
        with conn.transaction():
            row = conn.execute(
                "SELECT as_of::text, snapshot_as_of::text, rows, churners, content_md5, run_id"
                " FROM streamflow_build_training_examples(%s::date, %s)", (as_of, run_id)).fetchone()
    except psycopg.errors.RaiseException as error:
        raise TrainingSetRefused(f"{error.diag.message_primary}; {error.diag.message_hint}") from None
    manifest = dict(zip(("as_of", "snapshot_as_of", "rows", "churners", "content_md5", "run_id"), row, strict=True))
    log.info("training_examples at as_of %s: %s rows, %s churners, md5 %s",
             as_of, manifest["rows"], manifest["churners"], manifest["content_md5"])
    return manifest
