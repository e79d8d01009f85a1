"""The user_ids of each validated file as a set of 64-bit hashes: who joined, left and stayed.

The live tables cannot say who left: they keep every user ever loaded. So each validation keeps
its file's user_ids (`hashtextextended(user_id, 0)`) in `validation_user_sets` (sql/009), once per
run and fingerprint: a month's six files usually hold the same users, and then share one set and
one count of the users kept against the previous month's set. `validation_keysets` says which set
each file held; the publish keeps the sets of its own and the previous month only (`prune`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamflow import queries
from streamflow.registry import KEY

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql


@dataclass(frozen=True)
class PreviousUsers:
    """The user set a table's previous published month was published from (`previous_users`)."""

    as_of: str
    run_id: str
    user_set: str


def fingerprint(rows: int, xor_of_hashes: int, xor_of_rehashes: int) -> str:
    """A set of user_ids in one short text: its size, the XOR of their hashes, the XOR of a rehash of
    each. Equal sets give equal texts in any order; two different sets the same text at odds of about
    2^-128. `streamflow_user_set_fingerprint` (sql/009) computes it from a kept set's hashes."""
    return f"{rows}:{xor_of_hashes}:{xor_of_rehashes}"


def size(user_set: str) -> int:
    """How many users a set holds: the first figure of its fingerprint."""
    return int(user_set.split(":", 1)[0])


def keep(conn: psycopg.Connection, run_id: str, as_of: str, user_set: str, batch: sql.Composable) -> None:
    """Keep the batch's user_ids as 64-bit hashes under (run, fingerprint), unless a file of the run
    with the same users was kept already; lock the set until the transaction ends."""
    from psycopg import sql

    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"streamflow_user_set:{run_id}:{user_set}",))
    if conn.execute("SELECT FROM validation_user_sets WHERE run_id = %s AND fingerprint = %s",
                    (run_id, user_set)).fetchone() is None:
        conn.execute(queries.template("user_set_keep").format(key=sql.Identifier(KEY), batch=batch),
                     {"run_id": run_id, "fingerprint": user_set, "as_of": as_of})


def users_kept(conn: psycopg.Connection, run_id: str, user_set: str, batch: sql.Composable,
               previous: PreviousUsers) -> int:
    """How many of the batch's users (its user set `user_set`) are in the previous month's: counted by
    a file of the run with the same users and the same previous set, or by one hash semi join."""
    from psycopg import sql

    found = conn.execute(queries.text("users_kept_counted"), {
        "run_id": run_id, "fingerprint": user_set, "previous_fingerprint": previous.user_set}).fetchone()
    if found is not None:
        return found[0]
    # The join hashes the previous set: ~45 MB for a million users, which at the default work_mem (4 MB,
    # twice that for a hash) spills to disk, half as slow again. Until the transaction ends:
    # `metrics.compute` counts this last (its hashes of a feature's values are no faster for more memory).
    conn.execute("SET LOCAL hash_mem_multiplier = 16")
    (kept,) = conn.execute(queries.template("users_kept_join").format(key=sql.Identifier(KEY), batch=batch), {
        "previous_run_id": previous.run_id, "previous_fingerprint": previous.user_set}).fetchone()
    return kept


def previous_users(conn: psycopg.Connection, table_name: str, as_of: str) -> PreviousUsers | None:
    """The user set the month before `as_of` was published from, for `table_name`; None without one."""
    row = conn.execute(queries.text("previous_users"), {"table_name": table_name, "as_of": as_of}).fetchone()
    return None if row is None else PreviousUsers(*row)


def prune(conn: psycopg.Connection, as_of: str) -> None:
    """Drop the user_id sets no later month can compare against: older than the month before `as_of`."""
    from psycopg import sql

    for kept in ("validation_keysets", "validation_user_sets"):
        conn.execute(sql.SQL("DELETE FROM {} WHERE as_of < (date_trunc('month', %s::date) - interval '1 day')::date"
                             ).format(sql.Identifier(kept)), (as_of,))
