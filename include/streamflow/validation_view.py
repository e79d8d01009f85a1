"""The validation of a run as a web page, read from the warehouse's `validation_results`.

Served by the Airflow plugin `plugins/streamflow_validation_view.py` (a FastAPI app in the API
server, shown as a tab on the task instance and the DAG run), so it does not matter which worker
ran the task. Plain HTML rendered here rather than Great Expectations' Data Docs: see
docs/decisions/0003-validation-view-vs-data-docs.md.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from streamflow import queries
from streamflow.ids import URL_PREFIX, VALIDATE_TASK_PREFIX, VALIDATION_ROUTE
from streamflow.registry import KEY, TABLES_BY_NAME
from streamflow.trend_chart import page_figure, trend_svg

if TYPE_CHECKING:
    import psycopg


COLUMNS = ("table_name", "month", "as_of", "expectation", "expectation_type", "column_name", "kwargs", "success",
           "element_count", "unexpected_count", "unexpected_percent", "samples", "why", "error", "validated_at",
           "failing_keys_kept", "severity", "figures")


def view_path(dag_id: str, run_id: str, task_id: str | None = None) -> str:
    """The page's path in the API server (run ids hold `:` and `+`: quoted)."""
    parts = [URL_PREFIX + VALIDATION_ROUTE, quote(dag_id, safe=""), quote(run_id, safe="")]
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
        return cursor.execute(queries.text("latest_validation_results"),
                              {"run_id": run_id, "table": table_name}).fetchall()


def render(rows: list[dict[str, Any]], dag_id: str, run_id: str, task_id: str | None = None) -> str:
    """A self-contained page: per table, every expectation and check against history with its result,
    bound, counts or figures (a trend chart for a failing or warning check), samples, reason."""
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
    # Tables that block the publish first, then those with a warning; the run's view lists them on top.
    ordered = sorted(by_table.items(), key=lambda item: _rank(_worst(item[1])))
    if ordered and task_id is None:
        items = (f"<li class='{_worst(results)}'><a href='#{_e(name)}'>{_e(name)}</a>: "
                 f"{_verdict(results, consequence=True)}</li>" for name, results in ordered)
        body.append("<ul class='summary'>" + "".join(items) + "</ul>")
    for name, results in ordered:
        body.append(_table_section(name, results))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>{''.join(body)}</body></html>"
    )


# --------------------------------------------------------------------------- results


def _figures(row: dict) -> dict | None:
    """A check against history's figures (this month, previous, bound, history); None for a row rule."""
    figures = row.get("figures")
    if isinstance(figures, str):  # jsonb read as text by another driver
        figures = json.loads(figures)
    return figures if isinstance(figures, dict) else None


def _status(row: dict) -> str:
    """`fail` (blocks the publish), `warn` (recorded, does not block), `skipped` (no history to compare
    with), or `pass`."""
    if not row["success"]:
        return "warn" if row.get("severity") == "warn" else "fail"
    figures = _figures(row)
    return "skipped" if figures and figures.get("skipped") else "pass"


def _accepted(row: dict) -> bool:
    figures = _figures(row)
    return bool(figures and figures.get("accepted")) and _status(row) == "warn"


def _rank(status: str) -> int:
    """Failures, then warnings, then the rest (in the order they were recorded)."""
    return {"fail": 0, "warn": 1}.get(status, 2)


def _worst(results: list[dict]) -> str:
    """`fail` when a result blocks the publish, `warn` when one warns, else `pass`."""
    statuses = {_status(r) for r in results}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"


def _verdict(results: list[dict], consequence: bool = False) -> str:
    """`19/23 expectations passed, 2 failed, 1 warning, 1 skipped` (HTML; the counts add up to the total).

    `consequence` adds "(blocks the publish)" after the failures: the heading keeps the plain counts."""
    counts = Counter(_status(r) for r in results)
    parts = [f"{counts['pass']}/{len(results)} expectations passed"]
    if counts["fail"]:
        parts.append(f"{counts['fail']} failed" + (" (blocks the publish)" if consequence else ""))
    if counts["warn"]:
        accepted = sum(_accepted(r) for r in results)
        parts.append(f"<span class='warn'>{_plural(counts['warn'], 'warning')}"
                     f"{f' ({accepted} accepted)' if accepted else ''}</span>")
    if counts["skipped"]:
        parts.append(f"{counts['skipped']} skipped")
    return ", ".join(parts)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _table_section(name: str, results: list[dict]) -> str:
    first, worst = results[0], _worst(results)
    counts = Counter(_status(r) for r in results)
    # The class stays `failed`/`passed` (a warning does not block): the heading is the plain counts.
    verdict = "failed" if worst == "fail" else "passed"
    summary = f"<h2 id='{_e(name)}' class='{verdict}'>{_e(name)}: {_verdict(results)}</h2>"
    if counts["fail"]:
        warnings = f"; {_plural(counts['warn'], 'warning')} recorded as well" if counts["warn"] else ""
        summary += (f"<p class='outcome fail'>{_plural(counts['fail'], 'failure')} "
                    f"{'blocks' if counts['fail'] == 1 else 'block'} the publish: the live tables keep the previous "
                    f"month{warnings}.</p>")
    elif counts["warn"]:
        summary += (f"<p class='outcome warn'>{_plural(counts['warn'], 'warning')}: recorded and shown, "
                    "not blocking the publish.</p>")
    history = any(_figures(r) is not None for r in results)
    summary += (f"<p>{_e(first['month'])} (as_of {_e(first['as_of'])}), "
                f"validated {first['validated_at']:%Y-%m-%d %H:%M:%S %Z}"
                "; every row checked inside PostgreSQL. Counts and samples are computed for failures only"
                f"{'; checks against history compare with the previous published months' if history else ''}.</p>")
    figures, trend = (" · figures", " · trend") if history else ("", "")
    header = (f"<tr><th>result</th><th>expectation</th><th>column</th><th>bound</th><th>unexpected{figures}</th>"
              f"<th>sample ({KEY}=value){trend}</th><th>reason for the bound</th></tr>")
    # Failures first, then warnings: what a person opened the page for.
    rows = "".join(_result_row(r) for r in sorted(results, key=lambda r: _rank(_status(r))))
    return f"<section>{summary}<table>{header}{rows}</table></section>"


_RESULT = {"pass": "pass", "fail": "FAIL", "warn": "WARN", "skipped": "skipped"}


def _result_row(row: dict) -> str:
    status, figures = _status(row), _figures(row)
    result = _RESULT[status]
    if _accepted(row):
        result += "<br><small>accepted by the run's <code>accept</code> param</small>"
    expectation = _e(row["expectation_type"] or row["expectation"])
    if row["expectation_type"] and row["expectation"] != row["expectation_type"]:
        expectation += f"<br><small>{_e(row['expectation'])}</small>"
    if figures is not None and figures.get("check_id"):
        expectation += f"<br><small>check <code>{_e(figures['check_id'])}</code></small>"
    bound = f"<code>{_bound(row['kwargs'])}</code>"
    if figures is None:
        cells = f"<td>{_counts(row)}</td><td>{_samples(row)}</td>"
    else:
        if figures.get("bound") is not None:
            bound = f"{_e(figures['bound'])}" + (f"<br><small><code>{_bound(row['kwargs'])}</code></small>"
                                                 if row["kwargs"] else "")
        chart = trend_svg(row, figures, status) if status in ("fail", "warn") else ""
        # One cell over unexpected and sample: the figures, and the trend under them.
        cells = f"<td colspan='2' class='figures'>{_history_figures(row, figures)}{chart}</td>"
    column = _e(row["column_name"]) if row["column_name"] else ("<small>(table)</small>" if figures else "")
    return (f"<tr class='{status}'><td>{result}</td><td>{expectation}</td><td>{column}</td><td>{bound}</td>"
            f"{cells}<td>{_e(row['why'] or '')}</td></tr>")


def _counts(row: dict) -> str:
    """`3 of 7043 rows (0.04%)`, where the failing keys are kept, and the error if any."""
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
    return counts + _error(row)


def _samples(row: dict) -> str:
    return ", ".join(
        f"{_e(s.get(KEY))}={_e(s['value'])}" if s.get("value") is not None else _e(s.get(KEY))
        for s in row["samples"] or [])


def _error(row: dict) -> str:
    return f"<br><span class='error'>error: {_e(row['error'])}</span>" if row["error"] else ""


def _history_figures(row: dict, figures: dict) -> str:
    """This month's figure and the previous month's (with its as_of), or why the check was skipped."""
    metric = _e(figures.get("metric") or "value")
    lines = [f"{metric} this month: <strong>{_e(page_figure(figures.get('this')))}</strong>"]
    if figures.get("skipped"):
        lines.append(f"skipped: {_e(figures['skipped'])}")
    elif "previous" in figures:
        as_of = f" ({_e(figures['previous_as_of'])})" if figures.get("previous_as_of") else ""
        lines.append(f"previous{as_of}: {_e(page_figure(figures['previous']))}")
    return "<br>".join(lines) + _error(row)


def _bound(kwargs: dict) -> str:
    """`max_value=720, min_value=0` (jsonb keeps no key order: sorted)."""
    return _e(", ".join(f"{key}={json.dumps(value, default=str)}" for key, value in sorted((kwargs or {}).items())))


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1rem;color:#222}h1{font-size:1.3rem}h2{font-size:1.1rem}"
    "h2.failed{color:#b00020}h2.passed{color:#1b5e20}span.warn,p.outcome.warn{color:#b35900}"
    "ul.summary li.fail{color:#b00020}ul.summary li.fail a{font-weight:bold}"
    "p.outcome{font-weight:bold}p.outcome.fail{color:#b00020}"
    # Fixed layout: the page lives in the UI's iframe, every column (the reason last) must fit its width.
    "table{border-collapse:collapse;width:100%;table-layout:fixed}"
    "td,th{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top;font-size:.9rem;"
    "overflow-wrap:anywhere}"
    "th:nth-child(1){width:4.5rem}th:nth-child(2){width:18%}th:nth-child(3){width:10%}th:nth-child(4){width:15%}"
    "th:nth-child(5){width:10%}th:nth-child(6){width:17%}"
    "tr.fail{background:#fde7e9}tr.fail td:first-child{font-weight:bold;color:#b00020}"
    "tr.warn{background:#fff4e0}tr.warn td:first-child{font-weight:bold;color:#b35900}"
    "tr.skipped td:first-child{color:#666;font-style:italic}"
    "svg.trend{display:block;width:100%;max-width:240px;height:auto;margin-top:4px}"
    "code{font-size:.85rem}.run{color:#555}.error{color:#b00020}"
)
