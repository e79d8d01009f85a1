"""The validation of a run as a web page, read from the warehouse's `validation_results`.

Served by the Airflow plugin `plugins/streamflow_validation_view.py` (a FastAPI app in the API
server, shown as a tab on the task instance and the DAG run), so it does not matter which worker
ran the task. Plain HTML rendered here rather than Great Expectations' Data Docs: see the README.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from streamflow.registry import KEY, TABLES_BY_NAME

if TYPE_CHECKING:
    import psycopg

#: Where the plugin mounts its app in the API server.
URL_PREFIX = "/streamflow"
VALIDATE_TASK_PREFIX = "validate."  # the task group of ingest_month's validations

COLUMNS = ("table_name", "month", "as_of", "expectation", "expectation_type", "column_name", "kwargs", "success",
           "element_count", "unexpected_count", "unexpected_percent", "samples", "why", "error", "validated_at",
           "failing_keys_kept")


def view_path(dag_id: str, run_id: str, task_id: str | None = None) -> str:
    """The page's path in the API server (run ids hold `:` and `+`: quoted)."""
    parts = [URL_PREFIX, "validation", quote(dag_id, safe=""), quote(run_id, safe="")]
    if task_id:
        parts.append(quote(task_id, safe=""))
    return "/".join(parts)


def table_of_task(task_id: str) -> str | None:
    """`validate.usage_agg_30d` → `usage_agg_30d`; None for a task that validates no table."""
    name = task_id.removeprefix(VALIDATE_TASK_PREFIX)
    return name if task_id.startswith(VALIDATE_TASK_PREFIX) and name in TABLES_BY_NAME else None


def fetch(conn: psycopg.Connection, run_id: str, table_name: str | None = None) -> list[dict[str, Any]]:
    """The latest validation of each table in a run (a retried or cleared task validates again)."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT table_name, month, as_of::text AS as_of, expectation, expectation_type, column_name, kwargs,"
            " success, element_count, unexpected_count, unexpected_percent, samples, why, error, validated_at,"
            " (SELECT count(*) FROM validation_failing_keys AS k"
            "  WHERE k.validation_result_id = v.id) AS failing_keys_kept"
            " FROM validation_results AS v WHERE run_id = %(run_id)s"
            " AND (%(table)s::text IS NULL OR table_name = %(table)s)"
            " AND validated_at = (SELECT max(validated_at) FROM validation_results AS w"
            "                     WHERE w.run_id = v.run_id AND w.table_name = v.table_name)"
            " ORDER BY table_name, id", {"run_id": run_id, "table": table_name}).fetchall()


def render(rows: list[dict[str, Any]], dag_id: str, run_id: str, task_id: str | None = None) -> str:
    """A self-contained page: per table, every expectation with its result, bound, counts, samples, reason."""
    table_name = table_of_task(task_id) if task_id else None
    title = f"Validation of {table_name or 'every table'}"
    body = [f"<h1>{_e(title)}</h1>", f"<p class='run'>{_e(dag_id)} · run {_e(run_id)}</p>"]
    if task_id and table_name is None:
        body.append(f"<p>Task <code>{_e(task_id)}</code> validates no table. "
                    f"<a href='{_e(view_path(dag_id, run_id))}'>The validation of this run</a>.</p>")
    elif not rows:
        body.append("<p class='none'>No validation result is recorded for this run"
                    f"{' and table' if table_name else ''} (it has not run yet, or failed before validating).</p>")
    by_table: dict[str, list[dict]] = {}
    for row in rows if not (task_id and table_name is None) else []:
        by_table.setdefault(row["table_name"], []).append(row)
    # Tables with a failure first, each listed on top when there are several.
    ordered = sorted(by_table.items(), key=lambda item: all(r["success"] for r in item[1]))
    if len(ordered) > 1:
        items = (f"<li><a href='#{_e(name)}'>{_e(name)}</a>: {_verdict(results)}</li>" for name, results in ordered)
        body.append("<ul class='summary'>" + "".join(items) + "</ul>")
    for name, results in ordered:
        body.append(_table_section(name, results))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>{''.join(body)}</body></html>"
    )


def _verdict(results: list[dict]) -> str:
    failed = sum(not r["success"] for r in results)
    return f"{len(results) - failed}/{len(results)} expectations passed{f', {failed} failed' if failed else ''}"


def _table_section(name: str, results: list[dict]) -> str:
    first = results[0]
    verdict = "passed" if all(r["success"] for r in results) else "failed"
    summary = (f"<h2 id='{_e(name)}' class='{verdict}'>{_e(name)}: {_verdict(results)}</h2>"
               f"<p>{_e(first['month'])} (as_of {_e(first['as_of'])}), "
               f"validated {first['validated_at']:%Y-%m-%d %H:%M:%S %Z}"
               "; every row checked inside PostgreSQL. Counts and samples are computed for failures only.</p>")
    header = ("<tr><th>result</th><th>expectation</th><th>column</th><th>bound</th><th>unexpected</th>"
              f"<th>sample ({KEY}=value)</th><th>reason for the bound</th></tr>")
    # Failures first: what a person opened the page for.
    rows = "".join(_result_row(r) for r in sorted(results, key=lambda r: r["success"]))
    return f"<section>{summary}<table>{header}{rows}</table></section>"


def _result_row(row: dict) -> str:
    ok = row["success"]
    expectation = _e(row["expectation_type"] or row["expectation"])
    if row["expectation_type"] and row["expectation"] != row["expectation_type"]:
        expectation += f"<br><small>{_e(row['expectation'])}</small>"
    counts = ""
    if row["unexpected_count"] is not None:
        counts = str(row["unexpected_count"])
        if row["element_count"] is not None:
            counts += f" of {row['element_count']} rows"
        if row["unexpected_percent"] is not None:
            counts += f" ({float(row['unexpected_percent']):.2f}%)"
    if row.get("failing_keys_kept"):
        counts += (f"<br><small>{row['failing_keys_kept']} failing user_id(s) kept in "
                   f"<code>validation_failing_keys</code></small>")
    if row["error"]:
        counts += f"<br><span class='error'>error: {_e(row['error'])}</span>"
    samples = ", ".join(
        f"{_e(s.get(KEY))}={_e(s['value'])}" if s.get("value") is not None else _e(s.get(KEY))
        for s in row["samples"] or [])
    return (f"<tr class='{'pass' if ok else 'fail'}'><td>{'pass' if ok else 'FAIL'}</td><td>{expectation}</td>"
            f"<td>{_e(row['column_name'] or '')}</td><td><code>{_bound(row['kwargs'])}</code></td>"
            f"<td>{counts}</td><td>{samples}</td><td>{_e(row['why'] or '')}</td></tr>")


def _bound(kwargs: dict) -> str:
    """`max_value=720, min_value=0` (jsonb keeps no key order: sorted)."""
    return _e(", ".join(f"{key}={json.dumps(value, default=str)}" for key, value in sorted(kwargs.items())))


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1rem;color:#222}h1{font-size:1.3rem}h2{font-size:1.1rem}"
    "h2.failed{color:#b00020}h2.passed{color:#1b5e20}"
    # Fixed layout: the page lives in the UI's iframe, every column (the reason last) must fit its width.
    "table{border-collapse:collapse;width:100%;table-layout:fixed}"
    "td,th{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top;font-size:.9rem;"
    "overflow-wrap:anywhere}"
    "th:nth-child(1){width:4rem}th:nth-child(2){width:20%}th:nth-child(3){width:11%}th:nth-child(4){width:15%}"
    "th:nth-child(5){width:9%}th:nth-child(6){width:18%}"
    "tr.fail{background:#fde7e9}tr.fail td:first-child{font-weight:bold;color:#b00020}"
    "code{font-size:.85rem}.run{color:#555}.error{color:#b00020}"
)
