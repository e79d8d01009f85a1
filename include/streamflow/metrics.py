"""A month's figures per table and column, computed inside PostgreSQL (the Deequ idea, in the warehouse).

Each validation computes, on the staged month: rows; per column the null fraction, distinct
count, min and max, mean and standard deviation (numeric, integer, and boolean as the fraction
true), value frequencies (text and boolean columns with few values); and the users joined, left
and kept against the file the previous month was published from. They are kept per run in
`validation_metrics` (sql/009): the checks against history (`streamflow.history`) compare a month
with the figures of the months published before it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamflow.registry import KEY, Table

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

#: Value frequencies are kept for text and boolean columns with at most this many values.
FREQUENCY_LIMIT = 50
#: How many published months back a check may look (the trailing window of z-scores, the trend chart).
HISTORY_MONTHS = 12
_AVERAGED = ("numeric", "integer", "boolean")


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

    def value(self, metric: str, column: str | None = None) -> Any:
        """A figure by name: a table's (`rows`, `users_left`, ...) or, with `column`, a column's."""
        if column is None:
            return getattr(self, metric)
        found = self.columns.get(column)
        return None if found is None else getattr(found, metric)


def compute(conn: psycopg.Connection, table: Table, batch: sql.Composable, as_of: str,
            previous: tuple[str, str] | None) -> TableMetrics:
    """The figures of `batch` (a staged table of `table`'s shape): two scans and a hash join.

    One aggregate scan (rows, non-NULL counts, min/max, mean and standard deviation), one grouping-
    sets scan (distinct counts and value frequencies: a hash per column, not a sort per column as
    count(DISTINCT) would be), and the users joined, left and kept against the previous month's set.

    Args:
        batch: the (quoted) table to measure.
        as_of: the month's as_of.
        previous: (as_of, run_id) of the user_id set the previous month was published from
            (`previous_keyset`), or None: users joined, left and kept are then not counted.
    """
    from psycopg import sql

    measured = [c for c in table.columns if c.name != KEY]
    aggregates: list[sql.Composable] = [sql.SQL("count(*)")]
    for column in measured:
        value = sql.Identifier(column.name)
        aggregates.append(sql.SQL("count({})").format(value))
        if column.pg_type == "boolean":  # PostgreSQL has no min/max(boolean): bool_and is the min, bool_or the max
            aggregates += [sql.SQL("bool_and({})::text").format(value), sql.SQL("bool_or({})::text").format(value)]
        else:
            collate = sql.SQL(' COLLATE "C"') if column.pg_type == "text" else sql.SQL("")
            aggregates += [sql.SQL("min({}{})::text").format(value, collate),
                           sql.SQL("max({}{})::text").format(value, collate)]
        if column.pg_type in _AVERAGED:
            # In float8: NUMERIC arithmetic costs twice the scan, and a figure needs no exact decimal.
            as_number = sql.SQL("{}::int" if column.pg_type == "boolean" else "{}::float8").format(value)
            aggregates += [sql.SQL("avg({})").format(as_number), sql.SQL("stddev_samp({})").format(as_number)]
    row = conn.execute(sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(aggregates), batch)).fetchone()
    rows, cells = row[0], iter(row[1:])
    values = _distinct_values(conn, table, batch, measured)
    columns: dict[str, ColumnMetrics] = {}
    for column in measured:
        non_null, low, high = next(cells), next(cells), next(cells)
        mean, stddev = (next(cells), next(cells)) if column.pg_type in _AVERAGED else (None, None)
        distinct, frequencies = values[column.name]
        columns[column.name] = ColumnMetrics(
            null_fraction=(1 - non_null / rows) if rows else None, distinct_count=distinct,
            min_value=low, max_value=high, mean=None if mean is None else float(mean),
            stddev=None if stddev is None else float(stddev), frequencies=frequencies)
    joined = left = kept = None
    if previous is not None:  # one hash join of 64-bit hashes, in the server: the set never comes to Python
        (kept,) = conn.execute(sql.SQL(
            "SELECT count(*) FROM {batch} AS batch JOIN (SELECT unnest(user_hashes) AS h FROM validation_keysets"
            " WHERE run_id = %s AND table_name = %s) AS previous ON previous.h = hashtextextended(batch.{key}, 0)"
        ).format(key=sql.Identifier(KEY), batch=batch), (previous[1], table.name)).fetchone()
        (before,) = conn.execute("SELECT cardinality(user_hashes) FROM validation_keysets"
                                 " WHERE run_id = %s AND table_name = %s", (previous[1], table.name)).fetchone()
        joined, left = rows - kept, before - kept
    return TableMetrics(table=table.name, as_of=as_of, rows=rows, columns=columns, users_joined=joined,
                        users_left=left, users_kept=kept, previous_as_of=previous[0] if previous else None)


def _distinct_values(conn: psycopg.Connection, table: Table, batch: sql.Composable, measured: list
                     ) -> dict[str, tuple[int, dict[str, int] | None]]:
    """{column: (distinct non-NULL values, {value: rows} for a text or boolean column of at most
    FREQUENCY_LIMIT values, NULL as "null")}, in one scan: GROUP BY GROUPING SETS, one set per column."""
    from psycopg import sql

    names = [sql.Identifier(c.name) for c in measured]
    width = len(names)
    # GROUPING(c1, ..., cn) sets a bit per column not grouped, c1 the highest: the set of column i
    # (grouped by it alone) is every bit but its own.
    mask = {c.name: (1 << width) - 1 - (1 << (width - 1 - i)) for i, c in enumerate(measured)}
    counted = [c for c in measured if c.pg_type in ("text", "boolean")]
    is_null = sql.SQL("CASE GROUPING({}) {} END").format(sql.SQL(", ").join(names), sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {} IS NULL").format(sql.Literal(mask[c.name]), sql.Identifier(c.name)) for c in measured))
    # Only the counted columns' values are written as text: the rest need no text at all.
    value = sql.SQL("coalesce({})").format(sql.SQL(", ").join(
        sql.SQL("{}::text").format(sql.Identifier(c.name)) for c in counted)) if counted else sql.SQL("NULL::text")
    query = sql.SQL(
        "SELECT which, count(*) FILTER (WHERE NOT value_is_null),"
        " jsonb_object_agg(coalesce(value, 'null'), rows) FILTER (WHERE which = ANY(%s::int[]))"
        " FROM (SELECT GROUPING({names}) AS which, {is_null} AS value_is_null, {value} AS value, count(*) AS rows"
        "       FROM {batch} GROUP BY GROUPING SETS ({sets})) AS groups GROUP BY which"
    ).format(names=sql.SQL(", ").join(names), is_null=is_null, value=value, batch=batch,
             sets=sql.SQL(", ").join(sql.SQL("({})").format(name) for name in names))
    found = {which: (distinct, frequencies) for which, distinct, frequencies in conn.execute(
        query, ([mask[c.name] for c in counted],)).fetchall()}
    result = {}
    for column in measured:
        distinct, frequencies = found.get(mask[column.name], (0, None))
        keep = frequencies is not None and len(frequencies) <= FREQUENCY_LIMIT
        result[column.name] = (distinct, dict(sorted(frequencies.items())) if keep else None)
    return result


def previous_keyset(conn: psycopg.Connection, table_name: str, as_of: str) -> tuple[str, str] | None:
    """(as_of, run_id) of the user_id set the month before `as_of` was published from; None without one."""
    row = conn.execute(
        "SELECT p.as_of::text, p.run_id FROM streamflow_published_runs(%s, %s::date, 1) AS p"
        " WHERE EXISTS (SELECT FROM validation_keysets AS k WHERE k.run_id = p.run_id AND k.table_name = %s)",
        (table_name, as_of, table_name)).fetchone()
    return None if row is None else (row[0], row[1])


_STORED = ("null_fraction", "distinct_count", "min_value", "max_value", "mean", "stddev", "frequencies")


def record(conn: psycopg.Connection, run: dict[str, str], metrics: TableMetrics, batch: sql.Composable) -> None:
    """Keep a run's figures of one table and its user_ids (a re-validation replaces them), in one transaction."""
    from psycopg import sql

    with conn.transaction():
        for stored in ("validation_metrics", "validation_keysets"):
            conn.execute(sql.SQL("DELETE FROM {} WHERE run_id = %s AND table_name = %s").format(
                sql.Identifier(stored)), (run["run_id"], metrics.table))
        header = ("run_id", "month", "as_of", "table_name", "column_name", "rows", *_STORED,
                  "users_joined", "users_left", "users_kept", "previous_as_of")
        base = (run["run_id"], run["month"], run["as_of"], metrics.table)
        table_row = (*base, None, metrics.rows, *([None] * len(_STORED)), metrics.users_joined, metrics.users_left,
                     metrics.users_kept, metrics.previous_as_of)
        column_rows = [(*base, name, metrics.rows, *(_cell(getattr(figures, f)) for f in _STORED),
                        None, None, None, None) for name, figures in metrics.columns.items()]
        with conn.cursor() as cursor:
            cursor.executemany(sql.SQL("INSERT INTO validation_metrics ({}) VALUES ({})").format(
                sql.SQL(", ").join(map(sql.Identifier, header)), sql.SQL(", ").join(sql.Placeholder() * len(header))),
                [table_row, *column_rows])
        conn.execute(sql.SQL("INSERT INTO validation_keysets (run_id, as_of, table_name, user_hashes)"
                             " SELECT %s, %s, %s, coalesce(array_agg(hashtextextended({key}, 0)), '{{}}')"
                             " FROM {batch}").format(
            key=sql.Identifier(KEY), batch=batch), (run["run_id"], run["as_of"], metrics.table))


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict) else value


def history(conn: psycopg.Connection, table_name: str, as_of: str, months: int = HISTORY_MONTHS) -> list[TableMetrics]:
    """The figures of `table_name` in the published months before `as_of`, oldest first (at most `months`)."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            "SELECT p.as_of::text AS as_of, m.column_name, m.rows, m.null_fraction, m.distinct_count, m.min_value,"
            " m.max_value, m.mean, m.stddev, m.frequencies, m.users_joined, m.users_left, m.users_kept,"
            " m.previous_as_of::text AS previous_as_of FROM streamflow_published_runs(%s, %s::date, %s) AS p"
            " JOIN validation_metrics AS m ON m.run_id = p.run_id AND m.table_name = %s"
            " ORDER BY p.as_of, m.column_name NULLS FIRST", (table_name, as_of, months, table_name)).fetchall()
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


def prune_keysets(conn: psycopg.Connection, as_of: str) -> None:
    """Drop the user_id sets no later month can compare against: older than the month before `as_of`."""
    conn.execute("DELETE FROM validation_keysets"
                 " WHERE as_of < (date_trunc('month', %s::date) - interval '1 day')::date", (as_of,))
