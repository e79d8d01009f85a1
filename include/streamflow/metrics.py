"""A month's figures per table and column, computed inside PostgreSQL (the Deequ idea, in the warehouse).

Each validation computes, on the staged month: rows; per column the null fraction, distinct
count, min and max, mean and standard deviation (numeric, integer, and boolean as the fraction
true), value frequencies (text and boolean columns with few values); and the users joined, left
and kept against the file the previous month was published from (`streamflow.user_sets`). They are kept per run in
`validation_metrics` (sql/009): the checks against history (`streamflow.history`) compare a month
with the figures of the months published before it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamflow import queries, user_sets
from streamflow.registry import KEY, Table

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from streamflow.run import RunMonth

#: Value frequencies are kept for text and boolean columns with at most this many values.
FREQUENCY_LIMIT = 50
#: How many published months back a check may look (the trailing window of z-scores, the trend chart).
HISTORY_MONTHS = 12
_NUMBERS = ("numeric", "integer")


@dataclass(frozen=True)
class ColumnMetrics:
    """One column's figures in one month (NULL cells counted apart)."""

    null_fraction: float | None
    distinct_count: int
    min_value: str | None
    max_value: str | None
    mean: float | None = None
    stddev: float | None = None
    frequencies: dict[str, int] | None = None


@dataclass(frozen=True)
class TableMetrics:
    """One table's figures in one month; `users_*` against `previous_as_of` (None: nothing published before)."""

    table: str
    as_of: str
    rows: int
    columns: dict[str, ColumnMetrics] = field(default_factory=dict)
    users_joined: int | None = None
    users_left: int | None = None
    users_kept: int | None = None
    previous_as_of: str | None = None
    user_set: str | None = None  # the fingerprint of its user_ids (`user_sets.fingerprint`)
    previous_user_set: str | None = None

    def value(self, metric: str, column: str | None = None) -> Any:
        """A figure by name: a table's (`rows`, `users_left`, ...) or, with `column`, a column's."""
        if column is None:
            return getattr(self, metric)
        found = self.columns.get(column)
        return None if found is None else getattr(found, metric)


def compute(conn: psycopg.Connection, table: Table, batch: sql.Composable, as_of: str, run_id: str,
            previous: user_sets.PreviousUsers | None) -> TableMetrics:
    """The figures of `batch` (a staged table of `table`'s shape): two statements, and a join per user set.

    One scan for what is taken over every row (rows, the fingerprint of the user set, each
    boolean's counts, each number's mean and deviation), one statement of a GROUP BY per other
    column for its non-NULL cells, distinct count, min, max and frequencies (`_value_figures`),
    and the users joined, left and kept against the previous month's set (`user_sets`: the six
    files of a month usually hold the same users, and then share one kept set and one count).

    Call it in a transaction that `record` then ends: `user_sets.keep` locks the user set until
    then, so that a file with the same users validated at the same time reuses its count.

    Args:
        batch: the (quoted) table to measure.
        as_of: the month's as_of.
        run_id: the run measuring (its user sets are kept under it).
        previous: the user set the previous month was published from (`user_sets.previous_users`), or None:
            users joined, left and kept are then not counted.
    """
    from psycopg import sql

    measured = [c for c in table.columns if c.name != KEY]
    user_hash = sql.SQL("hashtextextended({}, 0)").format(sql.Identifier(KEY))
    # One scan (parallel) for what is taken over every row: rows, the user set's fingerprint, each
    # boolean's counts, each number's mean and deviation. The rest comes from each column's groups.
    aggregates: list[sql.Composable] = [
        sql.SQL("count(*)"), sql.SQL("coalesce(bit_xor({0}), 0)").format(user_hash),
        sql.SQL("coalesce(bit_xor(hashint8extended({0}, 1)), 0)").format(user_hash)]
    for column in measured:
        value = sql.Identifier(column.name)
        if column.pg_type == "boolean":
            aggregates += [sql.SQL("count({})").format(value), sql.SQL("count(*) FILTER (WHERE {})").format(value)]
        elif column.pg_type in _NUMBERS:
            # A NUMERIC column's exact sums cost less than casting each cell to float8 first; an
            # integer's are summed in float8 (stddev_samp of an integer sums in NUMERIC: twice the scan).
            figure = sql.SQL("{}({})::float8" if column.pg_type == "numeric" else "{}({}::float8)")
            aggregates += [figure.format(sql.SQL(name), value) for name in ("avg", "stddev_samp")]
    row = conn.execute(sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(aggregates), batch)).fetchone()
    rows, user_set, cells = row[0], user_sets.fingerprint(*row[:3]), iter(row[3:])
    grouped = _value_figures(conn, batch, [c for c in measured if c.pg_type != "boolean"])
    columns: dict[str, ColumnMetrics] = {}
    for column in measured:
        if column.pg_type == "boolean":
            columns[column.name] = _flag_figures(rows, next(cells), next(cells))
            continue
        non_null, distinct, low, high, frequencies = grouped[column.name]
        mean, stddev = (next(cells), next(cells)) if column.pg_type in _NUMBERS else (None, None)
        if stddev is not None and low == high:
            stddev = 0.0  # one value: exactly none, where float8 sums leave ~1e-12
        columns[column.name] = ColumnMetrics(
            null_fraction=(1 - non_null / rows) if rows else None, distinct_count=distinct, min_value=low,
            max_value=high, mean=mean, stddev=stddev, frequencies=frequencies)
    joined = left = kept = None
    user_sets.keep(conn, run_id, as_of, user_set, batch)
    if previous is not None:
        kept = user_sets.users_kept(conn, run_id, user_set, batch, previous)
        joined, left = rows - kept, user_sets.size(previous.user_set) - kept
    return TableMetrics(table=table.name, as_of=as_of, rows=rows, columns=columns, users_joined=joined,
                        users_left=left, users_kept=kept, previous_as_of=previous.as_of if previous else None,
                        user_set=user_set, previous_user_set=previous.user_set if previous else None)


def _flag_figures(rows: int, non_null: int, true: int) -> ColumnMetrics:
    """A boolean column's figures from its counts: the mean is the fraction true, min/max as bool_and/bool_or."""
    false = non_null - true
    frequencies = {value: n for value, n in (("false", false), ("null", rows - non_null), ("true", true)) if n}
    mean = true / non_null if non_null else None
    # The sample standard deviation of 0/1 values: sqrt(n p (1 - p) / (n - 1)), as stddev_samp gives it.
    stddev = math.sqrt(non_null * mean * (1 - mean) / (non_null - 1)) if non_null > 1 else None
    return ColumnMetrics(null_fraction=(1 - non_null / rows) if rows else None,
                         distinct_count=(true > 0) + (false > 0),
                         min_value=None if not non_null else "false" if false else "true",
                         max_value=None if not non_null else "true" if true else "false",
                         mean=mean, stddev=stddev, frequencies=frequencies)


def _value_figures(conn: psycopg.Connection, batch: sql.Composable, measured: list
                   ) -> dict[str, tuple[int, int, str | None, str | None, dict[str, int] | None]]:
    """{column: (non-NULL cells, distinct non-NULL values, min, max, {value: rows} for a text column of
    at most FREQUENCY_LIMIT values, NULL as "null")}: a GROUP BY per column, all in one UNION ALL
    statement that PostgreSQL runs side by side (sql/queries/value_figures.sql). Means and
    deviations are not taken over the groups: a feature with a million values has a million groups,
    and a sum over them costs as much again as the aggregate scan."""
    from psycopg import sql

    if not measured:
        return {}
    branch = queries.template("value_figures")
    query = sql.SQL("\nUNION ALL\n").join(
        branch.format(position=sql.Literal(position), frequencies=sql.Literal(column.pg_type == "text"),
                      collate=sql.SQL(' COLLATE "C"') if column.pg_type == "text" else sql.SQL(""),
                      column=sql.Identifier(column.name), batch=batch)
        for position, column in enumerate(measured))
    found = {position: figures for position, *figures in conn.execute(query).fetchall()}
    result = {}
    for position, column in enumerate(measured):
        non_null, distinct, low, high, frequencies = found[position]
        keep = frequencies is not None and len(frequencies) <= FREQUENCY_LIMIT
        result[column.name] = (non_null or 0, distinct, low, high, dict(sorted(frequencies.items())) if keep else None)
    return result


_STORED = ("null_fraction", "distinct_count", "min_value", "max_value", "mean", "stddev", "frequencies")


def record(conn: psycopg.Connection, run: RunMonth, metrics: TableMetrics) -> None:
    """Keep a run's figures of one table and which user set it holds (a re-validation replaces them)."""
    from psycopg import sql

    with conn.transaction():
        for stored in ("validation_metrics", "validation_keysets"):
            conn.execute(sql.SQL("DELETE FROM {} WHERE run_id = %s AND table_name = %s").format(
                sql.Identifier(stored)), (run.run_id, metrics.table))
        header = ("run_id", "month", "as_of", "table_name", "column_name", "rows", *_STORED,
                  "users_joined", "users_left", "users_kept", "previous_as_of")
        base = (run.run_id, run.month, run.as_of, metrics.table)
        table_row = (*base, None, metrics.rows, *([None] * len(_STORED)), metrics.users_joined, metrics.users_left,
                     metrics.users_kept, metrics.previous_as_of)
        column_rows = [(*base, name, metrics.rows, *(_cell(getattr(figures, f)) for f in _STORED),
                        None, None, None, None) for name, figures in metrics.columns.items()]
        with conn.cursor() as cursor:
            cursor.executemany(sql.SQL("INSERT INTO validation_metrics ({}) VALUES ({})").format(
                sql.SQL(", ").join(map(sql.Identifier, header)), sql.SQL(", ").join(sql.Placeholder() * len(header))),
                [table_row, *column_rows])
        conn.execute(queries.text("validation_keyset_record"), {
            "run_id": run.run_id, "as_of": run.as_of, "table_name": metrics.table, "fingerprint": metrics.user_set,
            "previous_fingerprint": metrics.previous_user_set})


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict) else value


def history(conn: psycopg.Connection, table_name: str, as_of: str, months: int = HISTORY_MONTHS) -> list[TableMetrics]:
    """The figures of `table_name` in the published months before `as_of`, oldest first (at most `months`)."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(queries.text("metrics_history"),
                              {"table_name": table_name, "as_of": as_of, "months": months}).fetchall()
    found: dict[str, TableMetrics] = {}
    for row in rows:
        if row["column_name"] is None:
            found[row["as_of"]] = TableMetrics(
                table=table_name, as_of=row["as_of"], rows=row["rows"], users_joined=row["users_joined"],
                users_left=row["users_left"], users_kept=row["users_kept"],
                previous_as_of=row["previous_as_of"])
        elif row["as_of"] in found:
            found[row["as_of"]].columns[row["column_name"]] = ColumnMetrics(**{f: row[f] for f in _STORED})
    return list(found.values())
