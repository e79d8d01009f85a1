"""The one declaration of the six tables: file, key, columns and types, snapshot.

The write and the publish, the contract gate, the expectation suites and the snapshot SQL are all driven
from `TABLES`. `sql/schema/001_live_tables.sql` holds the live tables' DDL (the course's schema
kept verbatim; `tests/integration/test_schema.py` proves it agrees); the snapshot tables are
created from `SNAPSHOTTED` (`sql/schema/002_snapshot_table.sql`, rendered per table by
`streamflow.schema`).
"""

from __future__ import annotations

from dataclasses import dataclass

KEY = "user_id"

#: Airflow asset URIs of the snapshot tables, in the postgres provider's form
#: (`postgres://host:port/database/schema/table`). The authority is a logical name, the compose
#: service of the warehouse, not read from the connection: DAG files are parsed without access to
#: connections, and an asset's identity must not change when the server moves or a port differs.
WAREHOUSE_ASSET_PREFIX = "postgres://warehouse:5432/streamflow/public/"


@dataclass(frozen=True)
class Column:
    """One table column: its PostgreSQL type and whether a month's file must carry it."""

    name: str
    pg_type: str  # text | date | boolean | integer | numeric
    optional: bool = False  # may be absent from a file; the live value is then left as it is


@dataclass(frozen=True)
class Table:
    """A live table fed by one CSV per month, keyed by `user_id`."""

    name: str
    columns: tuple[Column, ...]
    snapshot_table: str | None = None  # None: the table is not snapshotted
    snapshot_columns: tuple[str, ...] = ()

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if not column.optional)

    @property
    def depends_on_users(self) -> bool:
        return self.name != USERS

    @property
    def snapshot_asset_uri(self) -> str:
        """The Airflow asset URI of the snapshot table (what its snapshot task declares as outlet)."""
        if not self.snapshot_table:
            raise ValueError(f"table {self.name} has no snapshot table")
        return WAREHOUSE_ASSET_PREFIX + self.snapshot_table

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)


def _columns(*spec: str, optional: tuple[str, ...] = ()) -> tuple[Column, ...]:
    """`"name type"` pairs → Columns; the key column comes first in every table."""
    pairs = [item.split() for item in spec]
    return tuple(Column(name, pg_type, optional=name in optional) for name, pg_type in pairs)


USERS = "users"

TABLES: tuple[Table, ...] = (
    Table(
        name=USERS,
        columns=_columns(
            "user_id text", "signup_date date", "user_gender text",
            "user_is_senior boolean", "has_family boolean", "has_dependents boolean",
        ),
    ),
    Table(
        name="subscriptions",
        columns=_columns(
            "user_id text", "months_active integer", "plan_stream_tv boolean",
            "plan_stream_movies boolean", "contract_type text", "paperless_billing boolean",
            "monthly_fee numeric", "total_paid numeric", "net_service text",
            "add_on_security boolean", "add_on_backup boolean",
            "add_on_device_protect boolean", "add_on_support boolean",
            # Not in the course's files yet: a month may start sending them.
            optional=("add_on_security", "add_on_backup", "add_on_device_protect", "add_on_support"),
        ),
        snapshot_table="subscriptions_profile_snapshots",
        snapshot_columns=(
            "months_active", "monthly_fee", "paperless_billing",
            "plan_stream_tv", "plan_stream_movies", "net_service",
        ),
    ),
    Table(
        name="usage_agg_30d",
        columns=_columns(
            "user_id text", "watch_hours_30d numeric", "avg_session_mins_7d numeric",
            "unique_devices_30d integer", "skips_7d integer", "rebuffer_events_7d integer",
        ),
        snapshot_table="usage_agg_30d_snapshots",
        snapshot_columns=(
            "watch_hours_30d", "avg_session_mins_7d", "unique_devices_30d",
            "skips_7d", "rebuffer_events_7d",
        ),
    ),
    Table(
        name="payments_agg_90d",
        columns=_columns("user_id text", "failed_payments_90d integer"),
        snapshot_table="payments_agg_90d_snapshots",
        snapshot_columns=("failed_payments_90d",),
    ),
    Table(
        name="support_agg_90d",
        columns=_columns(
            "user_id text", "support_tickets_90d integer", "ticket_avg_resolution_hrs_90d numeric",
        ),
        snapshot_table="support_agg_90d_snapshots",
        snapshot_columns=("support_tickets_90d", "ticket_avg_resolution_hrs_90d"),
    ),
    Table(
        name="labels",
        columns=_columns("user_id text", "churn_label boolean"),
        snapshot_table="labels_snapshots",
        snapshot_columns=("churn_label",),
    ),
)

TABLES_BY_NAME: dict[str, Table] = {table.name: table for table in TABLES}
SNAPSHOTTED: tuple[Table, ...] = tuple(table for table in TABLES if table.snapshot_table)
DEPENDENT_TABLES: tuple[Table, ...] = tuple(table for table in TABLES if table.depends_on_users)


def table(name: str) -> Table:
    """Look a table up by name, with an error that lists the known ones."""
    try:
        return TABLES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES_BY_NAME)}") from None


def quote_ident(name: str) -> str:
    """SQL identifier quoting, the rule of `psycopg.sql.Identifier` (tested against it).

    Used where psycopg is not installed (the Feast repo's definitions).
    """
    return '"' + name.replace('"', '""') + '"'

