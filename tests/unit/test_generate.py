"""The scale generator: the real files' exact format, deterministic, realistic month-to-month change."""

from __future__ import annotations

import csv
import json
import math
import re
from datetime import date
from typing import TYPE_CHECKING

import pytest

from streamflow.registry import KEY, TABLES, table
from streamflow_dev import generate

if TYPE_CHECKING:
    from pathlib import Path

MONTHS = ("month_000", "month_001", "month_002")
SMALL, LARGE = 500, 3000


def run(out: Path, users: int, seed: int, jobs: int = 1) -> Path:
    generate.generate(out, users, len(MONTHS), seed, jobs=jobs, log=lambda _: None)
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return run(tmp_path_factory.mktemp("small"), SMALL, seed=7)


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Path:
    return run(tmp_path_factory.mktemp("large"), LARGE, seed=11)


def read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def by_user(path: Path) -> dict[str, list[str]]:
    return {row[0]: row for row in read(path)[1]}


def column(path: Path, name: str) -> list[str]:
    header, rows = read(path)
    return [row[header.index(name)] for row in rows]


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("month_*/*.csv"))}


def test_measured_changes_are_the_real_months(seeds):
    found = {(c.table, c.column): c for c in generate.measure_changes(seeds)}
    assert {key: c.changed for key, c in found.items()} == {
        ("usage_agg_30d", "watch_hours_30d"): 7043,
        ("usage_agg_30d", "rebuffer_events_7d"): 1828,
        ("payments_agg_90d", "failed_payments_90d"): 202,
        ("support_agg_90d", "support_tickets_90d"): 360,
        ("labels", "churn_label"): 2652,
    }
    labels = found[("labels", "churn_label")]
    assert labels.true_to_false == pytest.approx(1410 / 1869)
    assert labels.false_to_true == pytest.approx(1242 / 5174)
    assert found[("payments_agg_90d", "failed_payments_90d")].steps == {1: 202}


def test_every_file_is_written_with_the_real_header_line(small, seeds):
    for month in MONTHS:
        for source in TABLES:
            real = (seeds / "month_000" / source.file_name).read_bytes().split(b"\n", 1)[0]
            assert (small / month / source.file_name).read_bytes().split(b"\n", 1)[0] == real, (month, source.name)


def test_files_are_ascii_lf_unquoted_with_a_final_newline(small):
    for path in small.glob("month_*/*.csv"):
        data = path.read_bytes()
        data.decode("ascii")
        assert data.endswith(b"\n"), path
        assert b"\r" not in data, path
        assert b'"' not in data, path
        header, rows = read(path)
        assert all(len(row) == len(header) for row in rows), path


def test_cells_have_the_real_types_and_blanks_only_where_the_real_files_have_them(small, seeds):
    for source in TABLES:
        real_header, real_rows = read(seeds / "month_000" / source.file_name)
        blank_in_real = {name for i, name in enumerate(real_header) if any(row[i] == "" for row in real_rows)}
        assert blank_in_real <= {"plan_stream_tv", "plan_stream_movies"}
        for month in MONTHS:
            header, rows = read(small / month / source.file_name)
            for index, name in enumerate(header):
                values = {row[index] for row in rows}
                if name not in blank_in_real:
                    assert "" not in values, (month, source.name, name)
                kind = source.column(name).pg_type
                filled = values - {""}
                if kind == "boolean":
                    assert filled <= {"True", "False"}, (month, name, filled - {"True", "False"})
                elif kind == "integer":
                    assert all(re.fullmatch(r"\d+", v) for v in filled), (month, name)
                elif kind == "numeric":
                    assert all(re.fullmatch(r"\d+\.\d+", v) for v in filled), (month, name)
                elif kind == "date":
                    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) and date.fromisoformat(v) for v in filled)


def test_plan_stream_cells_are_blank_exactly_where_net_service_is_no(small):
    for month in MONTHS:
        header, rows = read(small / month / "subscriptions.csv")
        net = header.index("net_service")
        for name in ("plan_stream_tv", "plan_stream_movies"):
            at = header.index(name)
            assert all((row[at] == "") == (row[net] == "No") for row in rows), (month, name)
        assert any(row[net] == "No" for row in rows)


def test_month_000_rows_are_real_rows_under_fresh_ids(small, seeds):
    for source in TABLES:
        real = {tuple(row[1:]) for row in read(seeds / "month_000" / source.file_name)[1]}
        _, rows = read(small / "month_000" / source.file_name)
        assert all(tuple(row[1:]) in real for row in rows), source.name
        assert [row[0] for row in rows] == [generate.user_id(n) for n in range(1, SMALL + 1)]


def test_numeric_text_is_never_rounded(small, seeds):
    """Copied numerics keep the real text byte for byte; changed ones are full float text (repr)."""
    changed = {(c.table, c.column) for c in generate.measure_changes(seeds)}
    for source in TABLES:
        for name in (c.name for c in source.columns if c.pg_type == "numeric"):
            real = column(seeds / "month_000" / source.file_name, name)
            real_digits = sorted(significant_digits(v) for v in real)
            for month in MONTHS:
                values = column(small / month / source.file_name, name)
                if month == "month_000" or (source.name, name) not in changed:
                    assert set(values) <= set(real), (month, name)
                    continue
                new = [v for v in values if v not in set(real)]
                assert len(new) > 0.9 * len(values), (month, name)
                assert all(repr(float(v)) == v for v in new), (month, name)
                digits = sorted(significant_digits(v) for v in new)
                assert digits[len(digits) // 2] >= real_digits[len(real_digits) // 2], (month, name)


def significant_digits(text: str) -> int:
    return len(text.replace(".", "").lstrip("0"))


def test_same_seed_same_bytes_whatever_the_jobs_and_another_seed_differs(small, tmp_path):
    again = run(tmp_path / "again", SMALL, seed=7, jobs=2)
    assert file_bytes(again) == file_bytes(small)
    other = run(tmp_path / "other", SMALL, seed=8)
    assert file_bytes(other).keys() == file_bytes(small).keys()
    assert file_bytes(other)["month_000/users.csv"] != file_bytes(small)["month_000/users.csv"]
    assert file_bytes(other)["month_001/labels.csv"] != file_bytes(small)["month_001/labels.csv"]


def test_every_file_of_a_month_lists_the_users_of_users_csv_once(small):
    for month in MONTHS:
        users = column(small / month / "users.csv", KEY)
        assert len(users) == len(set(users))
        for source in TABLES:
            assert column(small / month / source.file_name, KEY) == users, (month, source.name)


def test_users_join_and_leave_and_continuing_profiles_do_not_change(large):
    seen: set[str] = set()
    for previous, month in zip(MONTHS, MONTHS[1:], strict=False):
        before, after = by_user(large / previous / "users.csv"), by_user(large / month / "users.csv")
        seen |= before.keys()
        left, joined = before.keys() - after.keys(), after.keys() - before.keys()
        assert 0.005 < len(left) / len(before) < 0.03, (month, len(left))
        assert 0.005 < len(joined) / len(before) < 0.03, (month, len(joined))
        assert not joined & seen, "a joiner reuses an id"
        first_day = date(2024, 1 + MONTHS.index(month), 1)  # month_001 is February 2024
        signup = read(large / month / "users.csv")[0].index("signup_date")
        assert all(date.fromisoformat(after[u][signup]).replace(day=1) == first_day for u in joined), month
        for name in ("users.csv", "subscriptions.csv"):
            old, new = by_user(large / previous / name), by_user(large / month / name)
            assert all(new[u] == old[u] for u in before.keys() & after.keys()), (month, name)


def test_leavers_are_mostly_last_months_churners(large):
    labels = by_user(large / "month_000" / "labels.csv")
    left = labels.keys() - by_user(large / "month_001" / "users.csv").keys()
    churners = sum(labels[u][1] == "True" for u in left)
    assert churners > 0.5 * len(left)


def test_change_fractions_match_the_real_months(large, seeds):
    """Among users present in both months, each column changes as often as between the real months."""
    changes = {(c.table, c.column): c for c in generate.measure_changes(seeds)}
    for previous, month in zip(MONTHS, MONTHS[1:], strict=False):
        for source in TABLES:
            before, after = by_user(large / previous / source.file_name), by_user(large / month / source.file_name)
            common = sorted(before.keys() & after.keys())
            header = read(large / month / source.file_name)[0]
            for index, name in enumerate(header):
                if name == KEY:
                    continue
                moved = sum(before[u][index] != after[u][index] for u in common)
                change = changes.get((source.name, name))
                if change is None:
                    assert moved == 0, (month, source.name, name)
                    continue
                if change.kind == "boolean":
                    trues = sum(before[u][index] == "True" for u in common)
                    expected = (trues * change.true_to_false + (len(common) - trues) * change.false_to_true) / len(common)
                else:
                    expected = change.fraction
                sigma = math.sqrt(max(expected * (1 - expected), 1e-4) / len(common))
                assert abs(moved / len(common) - expected) < 4 * sigma, (month, source.name, name, moved / len(common))


def test_label_flips_are_about_the_real_37_percent(large):
    before, after = by_user(large / "month_000" / "labels.csv"), by_user(large / "month_001" / "labels.csv")
    common = before.keys() & after.keys()
    assert 0.32 < sum(before[u] != after[u] for u in common) / len(common) < 0.43


def test_the_cli_writes_a_manifest(tmp_path, capsys):
    assert generate.main(["--users", "20", "--months", "2", "--out", str(tmp_path), "--seed", "3", "--jobs", "1"]) == 0
    manifest = json.loads((tmp_path / generate.MANIFEST).read_text())
    assert (manifest["users"], manifest["months"], manifest["seed"]) == (20, 2, 3)
    assert [m["month"] for m in manifest["per_month"]] == ["month_000", "month_001"]
    assert table("labels").file_name in {p.name for p in (tmp_path / "month_001").iterdir()}
    assert "wrote 2 month(s)" in capsys.readouterr().out


def test_every_generated_month_gets_a_completeness_marker_that_matches_its_files(small):
    from streamflow.completeness import MARKER_NAME, verify

    folders = sorted(p for p in small.iterdir() if p.is_dir())
    assert tuple(p.name for p in folders) == MONTHS
    for folder in folders:
        assert (folder / MARKER_NAME).is_file()
        assert set(verify(folder)) == {t.file_name for t in TABLES}
