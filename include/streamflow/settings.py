"""Runtime settings, read from the environment when asked for (never at import)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "sql"

#: Airflow connection id of the warehouse (`AIRFLOW_CONN_STREAMFLOW_POSTGRES` in the environment).
WAREHOUSE_CONN_ID = "streamflow_postgres"

#: A CSV larger than this is refused before anything is read (bytes); override per deployment.
DEFAULT_MAX_FILE_BYTES = 2 * 1024**3


def seeds_dir() -> Path:
    """Root folder holding the `month_NNN/` folders (`STREAMFLOW_SEEDS_DIR`, default `data/seeds`)."""
    configured = Path(os.environ.get("STREAMFLOW_SEEDS_DIR") or "data/seeds")
    return configured if configured.is_absolute() else PROJECT_ROOT / configured


def max_file_bytes() -> int:
    """Size cap for one CSV (`STREAMFLOW_MAX_FILE_BYTES`)."""
    return int(os.environ.get("STREAMFLOW_MAX_FILE_BYTES") or DEFAULT_MAX_FILE_BYTES)


def ui_url() -> str:
    """Where people open the Airflow UI (`STREAMFLOW_UI_URL`): task logs link to views under it."""
    return (os.environ.get("STREAMFLOW_UI_URL") or "http://localhost:8080").rstrip("/")


def last_scheduled_month() -> str | None:
    """`STREAMFLOW_LAST_MONTH` (YYYY-MM): the schedule's last month; None for open-ended."""
    return os.environ.get("STREAMFLOW_LAST_MONTH") or None


def schedule_last_interval_end() -> datetime | None:
    """Where the schedule's last data interval ends: the 1st after `STREAMFLOW_LAST_MONTH` (UTC), or None."""
    last = last_scheduled_month()
    if not last:
        return None
    from streamflow.months import month_for_year_month

    end = month_for_year_month(last).as_of + timedelta(days=1)
    return datetime(end.year, end.month, end.day, tzinfo=UTC)


#: Seconds before a task's first retry (a lost connection); doubled for each next one.
DEFAULT_RETRY_DELAY_S = 30


def retry_delay_seconds() -> float:
    """`STREAMFLOW_RETRY_DELAY_S`: the first retry's delay (tests that kill tasks shorten it)."""
    return float(os.environ.get("STREAMFLOW_RETRY_DELAY_S") or DEFAULT_RETRY_DELAY_S)


#: How long a scheduled run waits for its month's completeness marker before it fails (days).
DEFAULT_MONTH_WAIT_DAYS = 7.0
#: How often the deferred wait looks at the month folder (seconds).
DEFAULT_MONTH_POLL_S = 300.0


def month_wait_days() -> float:
    """`STREAMFLOW_MONTH_WAIT_DAYS`: a scheduled run's bounded wait for its month (fractions allowed)."""
    return float(os.environ.get("STREAMFLOW_MONTH_WAIT_DAYS") or DEFAULT_MONTH_WAIT_DAYS)


def month_poll_seconds() -> float:
    """`STREAMFLOW_MONTH_POLL_S`: seconds between two looks at a month folder while a run waits."""
    return float(os.environ.get("STREAMFLOW_MONTH_POLL_S") or DEFAULT_MONTH_POLL_S)


#: A month not published this many days after its interval ends fires its Deadline Alert.
DEFAULT_PUBLISH_DEADLINE_DAYS = 10.0


def publish_deadline_days() -> float:
    """`STREAMFLOW_PUBLISH_DEADLINE_DAYS`: days after a month's end by which it must be published (0: no alert)."""
    return float(os.environ.get("STREAMFLOW_PUBLISH_DEADLINE_DAYS") or DEFAULT_PUBLISH_DEADLINE_DAYS)


def alert_webhook_url() -> str | None:
    """`STREAMFLOW_ALERT_WEBHOOK_URL`: where late-month alerts are POSTed (empty: logged only)."""
    return os.environ.get("STREAMFLOW_ALERT_WEBHOOK_URL") or None
