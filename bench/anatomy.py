"""The anatomy phase, in a child process: where one table's load spends its time, step by step."""

from __future__ import annotations

import time
from pathlib import Path

from bench.load import copy_file


def _anatomy_of(conn, source, path: Path, superuser: bool) -> dict[str, float]:
    """Each step of one table's load timed alone, on the emptied keyed table, rolled back afterwards."""
    from psycopg import sql

    from streamflow import header, publish, stage, staging

    steps: dict[str, float] = {}
    target = sql.Identifier(source.name)
    schema = staging.schema_for(f"bench__anatomy__{source.name}")
    columns = list(header.read_header(path, source)[0])

    def timed(label: str, work, setup: tuple[str, ...] = (), preload=None) -> None:
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(target))
            for statement in setup:
                conn.execute(statement)
            if preload:
                preload()
            t0 = time.perf_counter()
            work()
            steps[label] = time.perf_counter() - t0
        print(f"    {source.name}: {label:<58} {steps[label]:7.2f} s", flush=True)

    def write() -> None:
        stage.stage_file(conn, schema, source, path)

    def apply() -> None:
        publish.apply_staged(conn, schema, source, columns, 0)

    work_mem = (f"SET LOCAL work_mem = '{stage.WORK_MEM}'",)
    timed("raw COPY into the keyed table (the floor)", lambda: copy_file(conn, source.name, path))
    if superuser and source.depends_on_users:
        timed("raw COPY, foreign-key triggers off", lambda: copy_file(conn, source.name, path),
              setup=("SET LOCAL session_replication_role = replica",))
    timed("write: typed COPY into UNLOGGED staging (stage_file)", write)
    timed("publish, empty live table: INSERT ... SELECT (bulk)", apply, setup=work_mem, preload=write)
    timed("write + publish into the empty table (a first load)", lambda: (write(), apply()), setup=work_mem)
    timed("publish MERGE, the same rows already there", apply, setup=work_mem, preload=lambda: (write(), apply()))
    return steps


def phase_anatomy(args: dict) -> dict:
    """Where a load's time goes, step by step, for `users` and the widest file (`usage_agg_30d`).

    Every step runs alone on the emptied keyed table (TRUNCATE inside a transaction that is
    rolled back), so no step sees another's rows: raw COPY (the floor) with and without the
    foreign-key triggers, the write step alone (typed COPY into the run's UNLOGGED staging
    table: the staging cost), the publish into the empty table (bulk INSERT ... SELECT), both
    together (a first load), and the publish MERGE over the same rows already there.
    """
    import psycopg

    from streamflow.registry import table

    folder, found = Path(args["folder"]), {}
    with psycopg.connect(args["conninfo"], autocommit=True) as conn:
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        work_mem = conn.execute("SHOW work_mem").fetchone()[0]
        for name in ("users", "usage_agg_30d"):
            found[name] = _anatomy_of(conn, table(name), folder / table(name).file_name, superuser)
            if name == "users":  # the dependent table's foreign key needs its users
                copy_file(conn, "users", folder / "users.csv")
    return {"s": sum(sum(steps.values()) for steps in found.values()), "tables": found, "work_mem": work_mem}
