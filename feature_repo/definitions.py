"""Feast definitions over the snapshot tables, derived from the table registry (include/streamflow/registry.py).

One `PostgreSQLSource` and one `FeatureView` per snapshot table, the entity `user` (join key `user_id`)
and the feature service `training_set`: the columns of `training_set(as_of)` (sql/005), in its order.
Each snapshot row is one event: `as_of` (a DATE, the month end) is the event timestamp.

Three things in the source queries make `get_historical_features` reproduce `training_examples`:

* NUMERIC is read as `float8`. Feast reads NUMERIC as `Decimal` and pyarrow's decimal → double
  conversion is off by one ulp for thousands of values; PostgreSQL's own cast rounds correctly.
* The event timestamp is `as_of` at 00:00 UTC (`as_of::timestamp AT TIME ZONE 'UTC'`), a timestamptz.
  Feast compares it with the entity rows' timestamptz: left a DATE, PostgreSQL would convert it in the
  session's time zone, and a session in UTC+14 got every feature NULL without an error. The cost: the
  time filter is on an expression, so PostgreSQL reads every month's partition, not only the month asked.
* The labels view also serves `as_of` itself, the month its row was stamped at: `training_set(as_of)`
  has it, and it shows which month a request at an arbitrary time was answered from.

TTL: 31 days, the longest gap between two month ends. A request at any time reads the latest month
stamped at or before it (mid-February reads January: nothing from after the request). A month not
stamped (yet) reads as the month before it for at most one month end, visible by `as_of`; after that,
NULL. A shorter TTL would leave the days before a month end NULL in long months.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, ValueType
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.types import Bool, Float64, Int32, String, UnixTimestamp

# The registry is the pipeline's, in include/: found from this file so that a bare `feast apply` here works.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

from streamflow.registry import KEY, SNAPSHOTTED, quote_ident  # noqa: E402

#: The timestamp column each source query adds (a timestamptz: `as_of` at 00:00 UTC).
EVENT_TIMESTAMP = "event_timestamp"
#: The snapshot column that holds the month; served by the labels view (the example's own as_of).
AS_OF = "as_of"
#: Long enough to cover any instant until the next month end (31 days between 2024-07-31 and 2024-08-31).
SNAPSHOT_TTL = timedelta(days=31)
TRAINING_SET_SERVICE = "training_set"
LABELS_TABLE = "labels"

# registry pg_type → (Feast type, how the source query reads the column)
FEAST_TYPES = {
    "numeric": (Float64, "{}::float8"),  # not Decimal: see the module docstring
    "integer": (Int32, "{}"),
    "boolean": (Bool, "{}"),
    "text": (String, "{}"),
}

user = Entity(name="user", join_keys=[KEY], value_type=ValueType.STRING,
              description="A StreamFlow user; every snapshot table is keyed by it.")


def source_query(source) -> str:
    """The SELECT a snapshot table's Feast source runs: key, as_of, the UTC event timestamp, typed features."""
    features = [FEAST_TYPES[source.column(name).pg_type][1].format(quote_ident(name)) + " AS " + quote_ident(name)
                for name in source.snapshot_columns]
    as_of = quote_ident(AS_OF)
    return (f"SELECT {quote_ident(KEY)}, {as_of}, ({as_of}::timestamp AT TIME ZONE 'UTC') AS {quote_ident(EVENT_TIMESTAMP)}, "
            f"{', '.join(features)} FROM {quote_ident(source.snapshot_table)}")


def feature_view(source) -> FeatureView:
    fields = [Field(name=name, dtype=FEAST_TYPES[source.column(name).pg_type][0]) for name in source.snapshot_columns]
    if source.name == LABELS_TABLE:
        fields.insert(0, Field(name=AS_OF, dtype=UnixTimestamp))
    return FeatureView(
        name=source.name,
        entities=[user],
        ttl=SNAPSHOT_TTL,
        schema=fields,
        online=True,
        source=PostgreSQLSource(name=source.snapshot_table, query=source_query(source), timestamp_field=EVENT_TIMESTAMP),
        description=f"{source.snapshot_table}: one row per user and month end (as_of)",
        tags={"snapshot_table": source.snapshot_table},
    )


FEATURE_VIEWS = [feature_view(source) for source in SNAPSHOTTED]
# The registry's order is training_set()'s: subscriptions, usage, payments, support, labels.
training_set = FeatureService(name=TRAINING_SET_SERVICE, features=FEATURE_VIEWS,
                              description="training_set(as_of) of sql/005: every snapshot feature and churn_label")

# `feast apply` collects the objects bound to module-level names only (not inside a list): one name per view.
globals().update({view.name: view for view in FEATURE_VIEWS})
