"""The completeness marker: what it records, what `verify` refuses, what the wait looks for."""

from __future__ import annotations

import json
import shutil

import pytest

from streamflow import completeness
from streamflow.completeness import MARKER_NAME, MarkerMismatch, MissingMarker
from streamflow.errors import MissingInput
from streamflow.registry import TABLES
from tests.conftest import ROOT

SEEDS = ROOT / "data" / "seeds"


@pytest.mark.parametrize("month", ["month_000", "month_001"])
def test_the_real_months_ship_a_marker_that_matches_their_files(month):
    marker = json.loads((SEEDS / month / MARKER_NAME).read_text())
    assert marker == completeness.build_marker(SEEDS / month)  # what `make data` / the CLI would write
    assert {name: entry["rows"] for name, entry in marker["files"].items()} == {t.file_name: 7043 for t in TABLES}
    assert completeness.verify(SEEDS / month) == {name: entry["sha256"] for name, entry in marker["files"].items()}


@pytest.fixture
def month(tmp_path):
    folder = tmp_path / "month_001"
    shutil.copytree(SEEDS / "month_001", folder)
    return folder


def test_rows_count_data_lines_with_or_without_a_final_newline(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"h\n1\n2\n")
    (tmp_path / "b.csv").write_bytes(b"h\n1\n2")
    (tmp_path / "c.csv").write_bytes(b"")
    assert [completeness.describe_file(tmp_path / n)["rows"] for n in ("a.csv", "b.csv", "c.csv")] == [2, 2, 0]


def test_a_file_changed_after_the_marker_is_refused_naming_file_and_values(month):
    usage = month / "usage_agg_30d.csv"
    before = completeness.describe_file(usage)
    usage.write_bytes(usage.read_bytes().replace(b"\n", b"\n\n", 1).rsplit(b"\n", 2)[0] + b"\n")
    after = completeness.describe_file(usage)
    with pytest.raises(MarkerMismatch) as refused:
        completeness.verify(month)
    message = str(refused.value)
    assert f"{usage}: sha256 is {after['sha256']}, the marker says {before['sha256']}" in message
    assert "nothing was loaded" in message
    assert "users.csv" not in message  # only what differs


def test_a_half_copied_file_differs_in_rows_and_bytes(month):
    labels = month / "labels.csv"
    labels.write_bytes(labels.read_bytes()[:50_000])
    with pytest.raises(MarkerMismatch, match=r"labels.csv: rows is \d+, the marker says 7043"):
        completeness.verify(month)


def test_no_marker_is_its_own_error_and_the_wait_lists_it_last(month):
    (month / MARKER_NAME).unlink()
    assert completeness.waiting_for(month) == [str(month / MARKER_NAME)]
    with pytest.raises(MissingMarker, match="no completeness marker"):
        completeness.verify(month)
    (month / "labels.csv").unlink()
    assert completeness.waiting_for(month) == [str(month / "labels.csv"), str(month / MARKER_NAME)]
    assert completeness.waiting_for(month.parent / "month_009") == [f"{month.parent / 'month_009'}/"]


@pytest.mark.parametrize(("content", "expected"), [
    ("{not json", "not a JSON manifest"),
    ("[]", "not a JSON object"),
    ('{"format": "other/1", "files": {}}', "not a streamflow-month-manifest/1 manifest"),
])
def test_a_marker_that_is_not_a_manifest_is_refused(month, content, expected):
    (month / MARKER_NAME).write_text(content)
    with pytest.raises(MarkerMismatch, match=expected):
        completeness.verify(month)


def test_a_marker_of_another_month_or_with_other_files_is_refused(month):
    marker = json.loads((month / MARKER_NAME).read_text())
    (month / MARKER_NAME).write_text(json.dumps({**marker, "month": "month_000"}))
    with pytest.raises(MarkerMismatch, match="describes month 'month_000', not 'month_001'"):
        completeness.verify(month)
    files = dict(marker["files"])
    files["extra.csv"] = files.pop("labels.csv")
    (month / MARKER_NAME).write_text(json.dumps({**marker, "files": files}))
    with pytest.raises(MarkerMismatch) as refused:
        completeness.verify(month)
    assert "lists 'extra.csv', which is not a file of a month" in str(refused.value)
    assert "does not list 'labels.csv'" in str(refused.value)


def test_writing_a_marker_needs_all_six_files_and_is_atomic(month):
    (month / MARKER_NAME).unlink()
    (month / "users.csv").rename(month / "users.csv.part")
    with pytest.raises(MissingInput, match="cannot write its completeness marker, missing: .*users.csv"):
        completeness.write_marker(month)
    assert not (month / MARKER_NAME).exists()
    (month / "users.csv.part").rename(month / "users.csv")
    assert completeness.main([str(month)]) == 0
    assert completeness.verify(month)
    assert sorted(p.name for p in month.iterdir() if p.name.startswith((".", "_"))) == [MARKER_NAME]
