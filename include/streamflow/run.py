"""The month a DAG run loads, as one frozen object: what every step after `resolve_month` is given.

`RunMonth` holds the month folder, its as_of, the snapshot policy (its default applied here, once),
the checks against history the run accepts, the run id and the run's staging schema. It crosses
XCom in one encoding, a plain JSON-able dict (`to_xcom` / `from_xcom`); no step reads that dict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from streamflow import months, staging
from streamflow.errors import DataError
from streamflow.snapshots import SNAPSHOT_POLICIES

#: What a run does when its as_of is already stamped, unless told otherwise.
DEFAULT_SNAPSHOT_POLICY = SNAPSHOT_POLICIES[0]


@dataclass(frozen=True)
class RunMonth:
    """One run's month.

    Args:
        month: the month folder, `month_NNN`.
        as_of: the last day of that month, YYYY-MM-DD: the date its snapshots carry.
        run_id: the DAG run's id (its staging schema and its ledger rows).
        snapshot_policy: one of SNAPSHOT_POLICIES; None or empty: DEFAULT_SNAPSHOT_POLICY.
        accept: ids of checks against history whose failure the run accepts (kept sorted, once each).

    Raises:
        DataError: an unknown snapshot policy.
    """

    month: str
    as_of: str
    run_id: str
    snapshot_policy: str | None = None
    accept: tuple[str, ...] = ()
    staging_schema: str = field(init=False)

    def __post_init__(self) -> None:
        policy = self.snapshot_policy or DEFAULT_SNAPSHOT_POLICY
        if policy not in SNAPSHOT_POLICIES:
            raise DataError(f"snapshot_policy {policy!r} is not one of {', '.join(SNAPSHOT_POLICIES)}")
        object.__setattr__(self, "snapshot_policy", policy)
        object.__setattr__(self, "accept", tuple(sorted(set(self.accept or ()))))
        object.__setattr__(self, "staging_schema", staging.schema_for(self.run_id))

    @classmethod
    def named(cls, month_name: str, run_id: str, snapshot_policy: str | None = None,
              accept: list[str] | tuple[str, ...] = ()) -> RunMonth:
        """The run of a month named outright (`month_NNN`): its as_of follows from the name."""
        month = months.month_from_name(month_name)
        return cls(month.month, month.as_of.isoformat(), run_id, snapshot_policy, tuple(accept))

    @property
    def restamp(self) -> bool:
        """Bring an as_of already stamped up to the live state (policy `restamp`), or leave it (`immutable`)."""
        return self.snapshot_policy == "restamp"

    def to_xcom(self) -> dict:
        """The one encoding between tasks: plain JSON values (the staging schema only for the reader's eye)."""
        return {**asdict(self), "accept": list(self.accept)}

    @classmethod
    def from_xcom(cls, value: dict) -> RunMonth:
        """The object `to_xcom` encoded."""
        return cls(value["month"], value["as_of"], value["run_id"], value["snapshot_policy"], tuple(value["accept"]))
