"""How a row rule's outcome reads in the task log: `validation.describe_failure` and `summarise`.

(The checks against history render through the same functions: tests/unit/test_history.py.)
"""

from __future__ import annotations

from streamflow import validation
from streamflow.validation import Outcome


def row_rule(**changes) -> Outcome:
    fields = {"table": "usage_agg_30d", "expectation": "expect_column_values_to_be_between",
              "column": "watch_hours_30d", "kwargs": {"min_value": 0, "max_value": 744}, "success": False,
              "element_count": 7043, "unexpected_count": 2, "unexpected_percent": 2 / 7043 * 100,
              "samples": [{"user_id": "6388-TABGU", "value": -24.5}, {"user_id": "4183-MYFRB", "value": None}],
              "why": "hours in 30 days cannot be negative or above 744", "expectation_type":
              "expect_column_values_to_be_between"}
    return Outcome(**{**fields, **changes})


def test_a_failed_row_rule_names_table_column_rule_counts_and_sample_keys_with_values():
    assert validation.describe_failure(row_rule()).splitlines() == [
        'FAILED usage_agg_30d.watch_hours_30d: expect_column_values_to_be_between {"min_value": 0, "max_value": 744}',
        "    unexpected: 2 of 7043 rows (0.03%)",
        "    sample (user_id=value): 6388-TABGU=-24.5, 4183-MYFRB",
        "    rule: hours in 30 days cannot be negative or above 744",
    ]


def test_a_warn_level_rule_reads_as_a_warning_and_an_error_is_shown():
    lines = validation.describe_failure(row_rule(severity="warn", error="column missing", samples=[],
                                                 unexpected_count=None, column=None)).splitlines()
    assert lines[0].startswith("WARNING usage_agg_30d.*: expect_column_values_to_be_between")
    assert lines[1:] == ["    error: column missing", "    rule: hours in 30 days cannot be negative or above 744"]


def test_the_summary_counts_passes_failures_and_warnings_and_puts_blocking_failures_first():
    passed = row_rule(success=True, unexpected_count=None, samples=[])
    warned = row_rule(severity="warn", column="skips_7d")
    failed = row_rule()
    lines = validation.summarise([passed, warned, failed]).splitlines()
    assert lines[0] == "usage_agg_30d: 1/3 expectations passed, 1 failed, 1 warning(s)"
    verdicts = [line.split(" ", 1)[0] for line in lines if not line.startswith("    ")]
    assert verdicts[1:] == ["FAILED", "WARNING"]
    assert validation.blocks_publish(failed)
    assert not validation.blocks_publish(warned)


def test_figures_are_written_to_four_significant_digits_and_the_rest_as_is():
    assert [validation.figure_text(v) for v in (0.265384, 1869, "2024-01-31", 1234567.0)] == [
        "0.2654", "1869", "2024-01-31", "1.235e+06"]
