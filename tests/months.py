"""The months the Airflow tests run, in one table: how each is built and what it must come to.

The two real months are the shipped extracts (data/seeds/, their figures in tests/golden.py); every
other scenario is a real month copied and broken on purpose. A test takes its scenario by name
(`MONTHS["negative_watch_hours"]`) or parametrizes over several (`ids=scenario_id`), builds it
into the seeds folder its deployment reads (`scenario.build(seeds, target)`: the user_ids it broke)
and asserts what the row says: whether the month publishes, the task that fails, the failures
validation_results keeps, the lines the failing task's log carries.

Each scenario is proved by one harness (docs/testing.md points here):

* january, february: `stack/` (catch-up: the figures; a backfill and triggers: re-runs change
  nothing); `test_make_targets.py` and `waiting/` load them on their way to what they prove.
* negative_watch_hours: `test_dag_end_to_end.py` (live and snapshot tables byte-identical, the
  failing keys kept, the file corrected and published); `test_make_targets.py` (what `make run` says).
* negative_watch_hours_and_blank_devices: `stack/` as month_002 (the task log, the Validation view
  through the API and in a browser, no asset event, no training set).
* january_without_its_last_user, january_with_a_label_flipped: `stack/` (a REST trigger of month_000
  once February is loaded: refused at its stage task, nothing changes).
* without_marker: `test_dag_end_to_end.py` (a manual run refused at once, then `require_marker: false`).
* cut_after_marker: `waiting/` as month_002 (the marker ends the wait, `resolve_month` refuses the month).

(`stack/`, `waiting/`: under tests/integration/. `faults/` runs generated months of 200,000 users,
not these: its faults need files that take seconds to stream.)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamflow.completeness import MARKER_NAME, describe_file
from tests.golden import CHURNERS, ROWS
from tests.helpers import copy_month_with_negative_watch_hours, rewrite_marker

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

#: The column of usage_agg_30d.csv that `negative_watch_hours_and_blank_devices` leaves blank on every
#: other line: a month-level damage (its null fraction jumps) that no row rule sees.
BLANKED_COLUMN = "unique_devices_30d"
#: The failing block validate.usage_agg_30d logs for the negative watch hours.
NEGATIVE_WATCH_HOURS_LOG = "FAILED usage_agg_30d.watch_hours_30d: expect_column_values_to_be_between"
#: What a month February overtook says when its files are not the ones it was loaded from.
OLDER_THAN_FEBRUARY_LOG = "refusing to apply as_of 2024-01-31 : month_001 (as_of 2024-02-29)"


@dataclass(frozen=True)
class Scenario:
    """One month a test runs: the real month it is built from and what it must come to."""

    name: str
    source: str  # the real month folder (data/seeds/) it is copied from
    make: Callable[[Path, Path], list[str]]  # (source folder, target folder) -> the user_ids it broke
    publishes: bool
    failed_task: str | None = None  # the task that fails the run (the first one, at try 1)
    #: (column, unexpected count) of each failed row validation_results keeps, in order (None: a
    #: check against history, which counts no rows).
    failures: tuple[tuple[str, int | None], ...] = ()
    #: The lines the failing task's log (or `airflow dags test`'s output) carries, of the month's folder.
    log: Callable[[Path], tuple[str, ...]] = lambda folder: ()
    way_out: dict | None = None  # the run conf that loads the month anyway
    way_out_log: Callable[[Path], str] = lambda folder: ""  # ... and what that run logs
    as_of: str | None = None  # a real month's: its figures follow
    rows: int = ROWS
    churners: int | None = None

    def build(self, seeds: Path, target: Path) -> list[str]:
        """Write the month into `target` (a month folder, absent) from `seeds / self.source`."""
        return self.make(seeds / self.source, target)


def scenario_id(scenario: Scenario) -> str:
    return scenario.name


def _copy(source: Path, target: Path) -> list[str]:
    shutil.copytree(source, target)
    return []


def _negative_watch_hours_and_blank_devices(source: Path, target: Path) -> list[str]:
    """`copy_month_with_negative_watch_hours`, and BLANKED_COLUMN blank on every other line."""
    broken = copy_month_with_negative_watch_hours(source, target)
    usage = target / "usage_agg_30d.csv"
    header, *lines = usage.read_text(encoding="utf-8").splitlines(keepends=True)
    at = header.rstrip("\n").split(",").index(BLANKED_COLUMN)
    for index in range(0, len(lines), 2):
        fields = lines[index].rstrip("\n").split(",")
        fields[at] = ""
        lines[index] = ",".join(fields) + "\n"
    usage.write_text(header + "".join(lines), encoding="utf-8")
    rewrite_marker(target)
    return broken


def _without_marker(source: Path, target: Path) -> list[str]:
    shutil.copytree(source, target)
    (target / MARKER_NAME).unlink()
    return []


def _cut_after_marker(source: Path, target: Path) -> list[str]:
    """labels.csv cut short after the marker was written: a copy not finished."""
    shutil.copytree(source, target)
    rewrite_marker(target)
    labels = target / "labels.csv"
    labels.write_bytes(labels.read_bytes()[:-100])
    return []


def _without_last_user(source: Path, target: Path) -> list[str]:
    """users.csv without its last line, delivered whole (a marker that describes it)."""
    shutil.copytree(source, target)
    users = target / "users.csv"
    users.write_bytes(users.read_bytes().rsplit(b"\n", 2)[0] + b"\n")
    rewrite_marker(target)
    return []


def _label_flipped(source: Path, target: Path) -> list[str]:
    """The first churner's label flipped to False, delivered whole."""
    shutil.copytree(source, target)
    labels = target / "labels.csv"
    labels.write_text(labels.read_text().replace(",True\n", ",False\n", 1))
    rewrite_marker(target)
    return []


def _cut_log(folder: Path) -> tuple[str, ...]:
    labels = folder / "labels.csv"
    return ("the month's files are not the ones its marker describes, nothing was loaded", f"{labels}: sha256 is ",
            f"{labels}: rows is {describe_file(labels)['rows']}, the marker says {ROWS}")


SCENARIOS = (
    Scenario("january", "month_000", _copy, publishes=True, as_of="2024-01-31", churners=CHURNERS["2024-01-31"]),
    Scenario("february", "month_001", _copy, publishes=True, as_of="2024-02-29", churners=CHURNERS["2024-02-29"]),
    Scenario("negative_watch_hours", "month_001", copy_month_with_negative_watch_hours, publishes=False,
             failed_task="validate.usage_agg_30d", failures=(("watch_hours_30d", 3),),
             log=lambda folder: (NEGATIVE_WATCH_HOURS_LOG, f"unexpected: 3 of {ROWS} rows")),
    Scenario("negative_watch_hours_and_blank_devices", "month_001", _negative_watch_hours_and_blank_devices,
             publishes=False, failed_task="validate.usage_agg_30d",
             failures=(("watch_hours_30d", 3), (BLANKED_COLUMN, None)),
             log=lambda folder: (NEGATIVE_WATCH_HOURS_LOG, f"unexpected: 3 of {ROWS} rows",
                                 f"FAILED usage_agg_30d.{BLANKED_COLUMN}: null fraction against the previous month")),
    # January's files other than the ones it was loaded from, once February is loaded (the message names it).
    Scenario("january_without_its_last_user", "month_000", _without_last_user, publishes=False,
             failed_task="stage_users", log=lambda folder: (OLDER_THAN_FEBRUARY_LOG,)),
    Scenario("january_with_a_label_flipped", "month_000", _label_flipped, publishes=False,
             failed_task="stage_labels", log=lambda folder: (OLDER_THAN_FEBRUARY_LOG,)),
    Scenario("without_marker", "month_000", _without_marker, publishes=False,
             log=lambda folder: (f"{folder.name} is not complete, missing: {folder / MARKER_NAME}",
                                 '"require_marker": false'),  # the way out is named
             way_out={"require_marker": False},
             way_out_log=lambda folder: f"{folder.name}: loading WITHOUT checking its completeness marker"),
    Scenario("cut_after_marker", "month_001", _cut_after_marker, publishes=False, failed_task="resolve_month",
             log=_cut_log),
)
MONTHS = {scenario.name: scenario for scenario in SCENARIOS}
REAL_MONTHS = (MONTHS["january"], MONTHS["february"])
