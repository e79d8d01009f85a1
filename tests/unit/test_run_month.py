"""RunMonth: the run's month, its one XCom encoding, the snapshot policy's default applied once."""

from __future__ import annotations

import json

import pytest

from streamflow.errors import DataError
from streamflow.run import DEFAULT_SNAPSHOT_POLICY, RunMonth
from streamflow.staging import schema_for


def test_a_month_named_outright_gets_its_as_of_the_default_policy_and_its_staging_schema():
    run = RunMonth.named("month_001", "manual__x")
    assert (run.month, run.as_of, run.snapshot_policy, run.accept) == ("month_001", "2024-02-29",
                                                                       DEFAULT_SNAPSHOT_POLICY, ())
    assert run.staging_schema == schema_for("manual__x")
    assert run.restamp


def test_the_xcom_encoding_is_plain_json_and_reads_back_equal():
    run = RunMonth.named("month_000", "scheduled__2024-02-01T00:00:00+00:00", "immutable", ["b.x", "a.y", "b.x"])
    encoded = run.to_xcom()
    assert json.loads(json.dumps(encoded)) == encoded
    assert encoded["accept"] == ["a.y", "b.x"]
    assert RunMonth.from_xcom(encoded) == run
    assert not run.restamp


def test_an_unknown_policy_is_a_data_error():
    with pytest.raises(DataError, match="snapshot_policy 'sometimes'"):
        RunMonth.named("month_000", "r", "sometimes")
