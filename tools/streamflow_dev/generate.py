"""Synthetic StreamFlow months at any scale, in exactly the real files' format.

    python -m streamflow_dev.generate --users 1000000 --months 3 --out .bench-data/1000000 --seed 8613

* **month_000** resamples the real `data/seeds/month_000` rows under fresh user ids
  (`gen-0000001`, ...): each user takes one real row index and gets that row of all six files,
  so a user's profile stays coherent (blank `plan_stream_*` exactly where `net_service` is `No`).
  Every cell is the real file's text, byte for byte.
* **Later months** are derived line by line from the previous month with the changes measured
  between the real `month_000` and `month_001` (`measure_changes`), column by column:
  integers move by the observed steps in the observed fraction of rows, numerics are scaled by
  the observed month-over-month ratios (written back as full float text, `repr`), booleans flip
  with the observed True->False and False->True probabilities. Columns that did not change
  between the real months (all of `users` and `subscriptions`, ...) are copied unchanged.
* **Leavers and joiners** (the real months have the same 7043 users, so these rates are the
  a plausible 1-2 % a month, not measurements): a user whose label says churn leaves with probability
  `LEAVE_IF_CHURN`, any other with `LEAVE_OTHERWISE` (about 1.5 % overall); `JOIN_RATE` of the
  population joins, drawn from the real users with `months_active` <= 1, signed up in the month.

Nothing is held per user: each file streams from the previous month's file (and its labels, for
who leaves). The six tables of a month are written by separate processes (`--jobs`); every
random draw comes from a stream seeded by (seed, month, purpose), so the output is byte-identical
for a given seed, whatever `--jobs`. Each month folder gets its completeness marker (`_manifest.json`,
`streamflow.completeness`) once its six files are written; `generate.json` (parameters and rates)
is written last.
"""

from __future__ import annotations

import argparse
import calendar
import csv
import json
import os
import random
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from streamflow import completeness, months
from streamflow.registry import KEY, TABLES, Table, table
from streamflow.settings import PROJECT_ROOT

REAL_SEEDS = PROJECT_ROOT / "data" / "seeds"
REAL_FIRST, REAL_NEXT = "month_000", "month_001"
LABELS = "labels"
LABEL_COLUMN = "churn_label"
MANIFEST = "generate.json"
ID_PREFIX = "gen-"
ID_DIGITS = 7

# Not measurable from the real months (same users in both): a plausible 1-2 % leave, 1-2 % join.
LEAVE_IF_CHURN = 0.045  # a user labelled churn=True last month
LEAVE_OTHERWISE = 0.005  # ~24-27 % churners -> ~1.5 % of all users leave per month
JOIN_RATE = 0.015
JOINER_MAX_MONTHS_ACTIVE = 1  # joiners resample the real newest customers


@dataclass(frozen=True)
class ColumnChange:
    """How one column changes from a month to the next, measured on the real months."""

    table: str
    column: str
    kind: str  # integer | numeric | boolean
    changed: int  # rows whose value differs between the real months
    rows: int
    fraction: float  # changed / rows (booleans: overall flips / rows)
    steps: dict[int, int] = field(default_factory=dict)  # integer: delta -> rows
    ratio_mean: float = 1.0  # numeric: new / old over the changed rows
    ratio_sd: float = 0.0
    ratio_min: float = 1.0
    ratio_max: float = 1.0
    true_to_false: float = 0.0  # boolean: P(False next | True now)
    false_to_true: float = 0.0  # boolean: P(True next | False now)


def _read(path: Path) -> tuple[str, list[list[str]]]:
    """A real file: its header line (exact text) and its rows."""
    with path.open(encoding="utf-8", newline="") as handle:
        header = handle.readline()
        return header, list(csv.reader(handle))


def measure_changes(seeds: Path = REAL_SEEDS) -> list[ColumnChange]:
    """Every column that changed between the real month_000 and month_001, and how.

    Raises:
        ValueError: the two months do not list the same users in the same order, or a text or
            date column changed (there is no model for those).
    """
    changes = []
    for source in TABLES:
        _, first = _read(seeds / REAL_FIRST / source.file_name)
        header, second = _read(seeds / REAL_NEXT / source.file_name)
        names = next(csv.reader([header]))
        if [row[0] for row in first] != [row[0] for row in second]:
            raise ValueError(f"{source.name}: {REAL_FIRST} and {REAL_NEXT} do not list the same users in the same order")
        for index, name in enumerate(names):
            if name == KEY:
                continue
            pairs = [(a[index], b[index]) for a, b in zip(first, second, strict=True)]
            moved = [(a, b) for a, b in pairs if a != b]
            if not moved:
                continue
            kind = source.column(name).pg_type
            base = {"table": source.name, "column": name, "kind": kind, "changed": len(moved), "rows": len(pairs),
                    "fraction": len(moved) / len(pairs)}
            if kind == "integer":
                changes.append(ColumnChange(**base, steps=dict(sorted(Counter(int(b) - int(a) for a, b in moved).items()))))
            elif kind == "numeric":
                ratios = [float(b) / float(a) for a, b in moved if float(a)]
                mean = sum(ratios) / len(ratios)
                sd = (sum((r - mean) ** 2 for r in ratios) / len(ratios)) ** 0.5
                changes.append(ColumnChange(**base, ratio_mean=mean, ratio_sd=sd, ratio_min=min(ratios),
                                            ratio_max=max(ratios)))
            elif kind == "boolean":
                was_true = sum(1 for a, _ in pairs if a == "True")
                was_false = sum(1 for a, _ in pairs if a == "False")
                changes.append(ColumnChange(
                    **base,
                    true_to_false=sum(1 for a, b in moved if (a, b) == ("True", "False")) / max(was_true, 1),
                    false_to_true=sum(1 for a, b in moved if (a, b) == ("False", "True")) / max(was_false, 1)))
            else:
                raise ValueError(f"{source.name}.{name} ({kind}) changed between the real months: no model for it")
    return changes


def user_id(number: int) -> str:
    return f"{ID_PREFIX}{number:0{ID_DIGITS}d}"


def _stream(seed: int, month: str, purpose: str) -> random.Random:
    """An independent, reproducible random stream (str seeds hash with SHA-512, not PYTHONHASHSEED)."""
    return random.Random(f"streamflow-generate/{seed}/{month}/{purpose}")


@dataclass(frozen=True)
class _Job:
    """One table of one month, for a worker process."""

    table: str
    seeds: str
    out: str
    seed: int
    month: str
    previous: str | None  # None: month_000 (resampled)
    users: int  # month_000: how many
    joiners: tuple[tuple[str, int, str], ...]  # (user_id, real row index, signup_date)
    changes: tuple[ColumnChange, ...]


def _write_table(job: _Job) -> tuple[str, int]:
    """Write one table's file for one month; return (table, rows written)."""
    source = table(job.table)
    header, real = _read(Path(job.seeds) / REAL_FIRST / source.file_name)
    names = next(csv.reader([header]))
    target = Path(job.out) / job.month / source.file_name
    rows = 0
    with target.open("w", encoding="utf-8", newline="") as handle:
        handle.write(header)
        writer = csv.writer(handle, lineterminator="\n")
        if job.previous is None:
            picks = _stream(job.seed, job.month, "rows")
            size = len(real)
            for number in range(1, job.users + 1):
                row = list(real[picks.randrange(size)])
                row[0] = user_id(number)
                writer.writerow(row)
            rows = job.users
        else:
            rows = _carry_over(job, source, names, writer)
        signup = names.index("signup_date") if "signup_date" in names else None
        for uid, index, signup_date in job.joiners:
            row = list(real[index])
            row[0] = uid
            if signup is not None:
                row[signup] = signup_date
            writer.writerow(row)
        rows += len(job.joiners)
    return job.table, rows


def _carry_over(job: _Job, source: Table, names: list[str], writer) -> int:
    """Previous month's rows minus leavers, with the measured changes applied; return rows written."""
    leave = _stream(job.seed, job.month, "leave")
    draw = _stream(job.seed, job.month, source.name)
    plans = [(names.index(c.column), c) for c in job.changes if c.table == source.name]
    steps = {c.column: (list(c.steps), list(c.steps.values())) for _, c in plans if c.kind == "integer"}
    previous = Path(job.out) / job.previous
    written = 0
    with (previous / source.file_name).open(encoding="utf-8", newline="") as rows_file, \
            (previous / f"{LABELS}.csv").open(encoding="utf-8", newline="") as labels_file:
        rows_file.readline()
        label_header = next(csv.reader([labels_file.readline()]))
        label_at = label_header.index(LABEL_COLUMN)
        for row, label in zip(csv.reader(rows_file), csv.reader(labels_file), strict=True):
            if row[0] != label[0]:
                raise ValueError(f"{job.previous}: {source.file_name} and {LABELS}.csv disagree on user order "
                                 f"({row[0]} vs {label[0]})")
            # One leave draw per user in every table: the same users leave from all six files.
            if leave.random() < (LEAVE_IF_CHURN if label[label_at] == "True" else LEAVE_OTHERWISE):
                continue
            for index, change in plans:
                value = row[index]
                if value == "":
                    continue
                if change.kind == "boolean":
                    flip = change.true_to_false if value == "True" else change.false_to_true
                    if draw.random() < flip:
                        row[index] = "False" if value == "True" else "True"
                elif draw.random() < change.fraction:
                    if change.kind == "integer":
                        values, weights = steps[change.column]
                        row[index] = str(max(0, int(value) + draw.choices(values, weights)[0]))
                    else:
                        ratio = min(max(draw.gauss(change.ratio_mean, change.ratio_sd), change.ratio_min),
                                    change.ratio_max)
                        row[index] = repr(float(value) * ratio)
            writer.writerow(row)
            written += 1
    return written


def _joiners(seed: int, run: months.MonthRun, count: int, first_id: int, pool: list[int]) -> tuple:
    """`count` new users: fresh ids, a real newest-customer row each, a signup date in the month."""
    draw = _stream(seed, run.month, "join")
    days = calendar.monthrange(run.period_start.year, run.period_start.month)[1]
    return tuple(
        (user_id(first_id + offset), pool[draw.randrange(len(pool))],
         run.period_start.replace(day=draw.randrange(days) + 1).isoformat())
        for offset in range(count)
    )


def generate(out: Path, users: int, month_count: int, seed: int, seeds: Path = REAL_SEEDS,
             jobs: int | None = None, log=print) -> dict:
    """Write `month_000` .. `month_{month_count-1}` under `out`; return the manifest.

    Args:
        out: target folder (month folders are replaced; other content is left alone).
        users: users in month_000.
        month_count: months to write (>= 1).
        seed: any integer; the same seed gives byte-identical files.
        seeds: the real data (month_000 and month_001 folders).
        jobs: worker processes (default: min(6, CPUs)); 1 runs in this process.
    """
    if users < 1 or month_count < 1:
        raise ValueError("users and months must be >= 1")
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    changes = tuple(measure_changes(seeds))
    real_ids = {t.name: [row[0] for row in _read(seeds / REAL_FIRST / t.file_name)[1]] for t in TABLES}
    if any(ids != real_ids[TABLES[0].name] for ids in real_ids.values()):
        raise ValueError(f"the real {REAL_FIRST} files do not list the same users in the same order")
    header, subscriptions = _read(seeds / REAL_FIRST / table("subscriptions").file_name)
    tenure = next(csv.reader([header])).index("months_active")
    # Row indices are shared by the six files (same users, same order): one index = one whole user.
    pool = [index for index, row in enumerate(subscriptions) if int(row[tenure]) <= JOINER_MAX_MONTHS_ACTIVE]
    jobs = jobs or min(len(TABLES), os.cpu_count() or 1)
    started = time.monotonic()
    population, next_id, per_month = users, users + 1, []
    executor = ProcessPoolExecutor(jobs) if jobs > 1 else None
    try:
        for index in range(month_count):
            run = months.month_for_index(index)
            folder = out / run.month
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir()
            joiners = () if index == 0 else _joiners(seed, run, round(population * JOIN_RATE), next_id, pool)
            work = [_Job(t.name, str(seeds), str(out), seed, run.month, None if index == 0 else f"month_{index - 1:03d}",
                         users, joiners, changes) for t in TABLES]
            # Every table of month N reads month N-1 only (its own file and labels.csv): tables run in parallel.
            results = dict(executor.map(_write_table, work) if executor else map(_write_table, work))
            if len(set(results.values())) != 1:
                raise RuntimeError(f"{run.month}: tables disagree on the number of users: {results}")
            completeness.write_marker(folder)  # last: the month is complete only now
            rows = next(iter(results.values()))
            per_month.append({"month": run.month, "users": rows, "joined": len(joiners),
                              "left": population - (rows - len(joiners)) if index else 0})
            log(f"{run.month}: {rows} users ({per_month[-1]['joined']} joined, {per_month[-1]['left']} left)")
            population, next_id = rows, next_id + len(joiners)
    finally:
        if executor:
            executor.shutdown()
    manifest = {
        "users": users, "months": month_count, "seed": seed, "id_prefix": ID_PREFIX,
        "leave_if_churn": LEAVE_IF_CHURN, "leave_otherwise": LEAVE_OTHERWISE, "join_rate": JOIN_RATE,
        "generator_sha256": _own_digest(), "seconds": round(time.monotonic() - started, 2),
        "per_month": per_month, "changes": [asdict(c) for c in changes],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _own_digest() -> str:
    import hashlib

    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamflow_dev.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, required=True, help="users in month_000")
    parser.add_argument("--months", type=int, default=3, help="month folders to write (default 3)")
    parser.add_argument("--out", type=Path, required=True, help="target folder (gets month_NNN/ folders)")
    parser.add_argument("--seed", type=int, default=8613, help="random seed (default 8613)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default min(6, CPUs))")
    parser.add_argument("--seeds", type=Path, default=REAL_SEEDS, help="the real month_000/month_001 folders")
    args = parser.parse_args(argv)
    manifest = generate(args.out, args.users, args.months, args.seed, args.seeds, args.jobs)
    for change in manifest["changes"]:
        print(f"  {change['table']}.{change['column']}: {change['changed']}/{change['rows']} rows change"
              f" ({change['fraction']:.2%})", file=sys.stderr)
    print(f"wrote {args.months} month(s) under {args.out} in {manifest['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
