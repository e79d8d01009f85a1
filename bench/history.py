"""The history phase, in a child process: MONTHS months one after another on one warehouse, each run
and then run again; and the plot of their seconds (bench/history.svg)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.figures import fmt
from bench.processes import ServerCpu


def timed_month(conn, sqlalchemy_url: str, folder: Path, run_id: str) -> dict[str, float]:
    """One month as the DAG's tasks run it, one step after another, each step timed (seconds).

    `streamflow_dev.run_month` (the tests' driver too): stage the six tables, validate the staged
    month, publish it, stamp the five snapshots. `load` is stage + publish.
    """
    from streamflow.run import RunMonth
    from streamflow_dev.run_month import run_month

    seconds = {}
    run_month(conn, RunMonth.named(folder.name, run_id), sqlalchemy_url=sqlalchemy_url, stamp=True, seconds=seconds)
    steps = {"validate": seconds["validate"], "load": sum(seconds["stage"].values()) + seconds["publish"],
             "stamp": seconds["stamp"]}
    steps["total"] = steps["load"] + steps["validate"] + steps["stamp"]
    return steps


def phase_history(args: dict) -> dict:
    """MONTHS months one after another on one warehouse, each run, then at once run again (a re-run:
    the same files, nothing changed). Per month: load, validate and stamp seconds of both runs."""
    import logging

    import great_expectations  # noqa: F401 - imported once, outside the timed months
    import psycopg

    logging.getLogger("streamflow").setLevel(logging.WARNING)  # the per-table log lines of 2 x 17 steps a month
    data = Path(args["data"])
    os.environ["STREAMFLOW_SEEDS_DIR"] = str(data)
    server_cpu = ServerCpu(Path(args["pgdata"])) if args.get("pgdata") else None

    def cpu_s() -> float | None:
        """This process's and the server's CPU so far: a month's work, whatever else loads the machine."""
        server = server_cpu() if server_cpu else None
        return None if server is None else time.process_time() + server

    def measured_month(folder: Path, run_id: str) -> dict[str, float]:
        """`timed_month` with the month's CPU (bench process + server) next to its seconds."""
        before = cpu_s()
        steps = timed_month(conn, args["url"], folder, run_id)
        after = cpu_s()
        steps["cpu"] = after - before if before is not None and after is not None else None
        return steps

    per_month = []
    with psycopg.connect(args["conninfo"], autocommit=True) as conn:
        for index in range(args["months"]):
            folder = data / f"month_{index:03d}"
            first = measured_month(folder, f"bench__{folder.name}")
            again = measured_month(folder, f"bench__{folder.name}__again")
            per_month.append({"month": folder.name, "first": first, "again": again})
            print(f"    {folder.name}: " + "  ".join(
                f"{label} load {steps['load']:5.2f} validate {steps['validate']:5.2f} stamp {steps['stamp']:5.2f}"
                f" = {steps['total']:6.2f} s (CPU {fmt(steps['cpu'], 1)} s)"
                for label, steps in (("run", first), ("re-run", again))), flush=True)
        partitions = conn.execute("SELECT count(*) FROM snapshot_stamps").fetchone()[0]
    return {"s": sum(m["first"]["total"] + m["again"]["total"] for m in per_month), "months": per_month,
            "stamps_catalogued": partitions}


def plot_history(per_month: list[dict], n: int, path: Path) -> None:
    """The per-month seconds as an SVG line chart (no plotting library needed): wall time of the run
    and of the re-run, and their CPU (this process + the server), which the machine's load does not move."""
    width, height, left, bottom, top, right = 780, 340, 56, 40, 30, 215
    series = [("run: load + validate + stamp", "first", "total", "#1f77b4", ""),
              ("re-run (same files)", "again", "total", "#d62728", ""),
              ("run, CPU s", "first", "cpu", "#1f77b4", ' stroke-dasharray="5,4"'),
              ("re-run, CPU s", "again", "cpu", "#d62728", ' stroke-dasharray="5,4"')]
    series = [s for s in series if all(m[s[1]].get(s[2]) is not None for m in per_month)]
    peak = max(m[key][measure] for m in per_month for _, key, measure, _, _ in series) * 1.15
    count = len(per_month)

    def x(i: int) -> float:
        return left + (width - left - right) * i / max(count - 1, 1)

    def y(v: float) -> float:
        return height - bottom - (height - bottom - top) * v / peak

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="11"><rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="18" font-size="13">Seconds per month, {n:,} users, months one after another '
           f'(make bench MONTHS={count})</text>']
    step = 5 if peak > 25 else 2 if peak > 8 else 1
    for tick in range(0, int(peak) + 1, step):
        out.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>'
                   f'<line x1="{left}" y1="{y(tick):.1f}" x2="{x(count - 1)}" y2="{y(tick):.1f}" stroke="#ddd"/>')
    out.append(f'<line x1="{left}" y1="{y(0)}" x2="{x(count - 1)}" y2="{y(0)}" stroke="black"/>'
               f'<line x1="{left}" y1="{y(0)}" x2="{left}" y2="{top}" stroke="black"/>')
    for i in range(count):
        if i % max(count // 12, 1) == 0 or i == count - 1:
            out.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle">{i + 1}</text>')
    out.append(f'<text x="{(left + x(count - 1)) / 2:.0f}" y="{height - 6}" text-anchor="middle">month</text>')
    for row, (label, key, measure, colour, dash) in enumerate(series):
        points = " ".join(f"{x(i):.1f},{y(m[key][measure]):.1f}" for i, m in enumerate(per_month))
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{points}"/>')
        out.append(f'<line x1="{width - right + 10}" y1="{top + 16 + 18 * row}" x2="{width - right + 34}" '
                   f'y2="{top + 16 + 18 * row}" stroke="{colour}" stroke-width="2"{dash}/>'
                   f'<text x="{width - right + 40}" y="{top + 20 + 18 * row}">{label}</text>')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n</svg>\n", encoding="utf-8")
