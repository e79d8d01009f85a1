"""What a run prints at the end: the tables of its phases, the targets judged (kept in
bench/results.json, docs/performance.md re-rendered), and the BENCH line."""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

from bench.dag import SCHEDULER_IDLE_S
from bench.figures import fmt, ratio
from bench.settings import FIRST, NEXT, RESULTS_JSON, ROOT, VALIDATION_RETRY_WORK_MEM
from streamflow_dev.performance_doc import history_growth

if TYPE_CHECKING:
    from pathlib import Path

    from bench.processes import Measured
    from bench.server import Server


def failure_reason(measured: Measured) -> str:
    """The last error line a failed child printed."""
    lines = [line.strip() for line in measured.tail.splitlines() if "Error" in line or line.startswith("failed:")]
    lines = lines or measured.tail.strip().splitlines() or ["(no output)"]
    return lines[-1][:300]


def report(n: int, data: Path, server: Server, m: dict, skip_course: bool, skip_dag: bool,
           load: tuple[tuple[float, ...], tuple[float, ...]]) -> str:
    """Print the tables; return the BENCH line."""
    from streamflow.registry import TABLES

    manifest = json.loads((data / "generate.json").read_text())
    months = {p["month"]: p for p in manifest["per_month"]}
    dag = m.get("dag") or {}
    print()
    print(f"StreamFlow bench: N={n} users in {FIRST}, {months[NEXT]['users']} in {NEXT} "
          f"({months[NEXT]['joined']} joined, {months[NEXT]['left']} left), seed {manifest['seed']}; "
          f"{os.cpu_count()} CPUs; PostgreSQL {server.version()} "
          f"({'BENCH_DSN' if server.pgdata is None else 'embedded, shared_buffers 256MB'}); "
          f"load average {load[0][0]:.2f} at start, {load[1][0]:.2f} at end")
    rows = [
        ("keyed raw COPY floor, month_000, serial", m.get("copy")),
        ("project upsert, first load (empty tables)", m.get("upsert_first")),
        ("project upsert, next month", m.get("upsert_next")),
        ("project upsert, same month again (unchanged)", m.get("upsert_same")),
        ("course (pandas to_sql), first load", m.get("course_first")),
        ("course, next month", m.get("course_next")),
        ("validation, six tables, every row (GX)", m.get("validate")),
        (f"  same, work_mem {VALIDATION_RETRY_WORK_MEM} (diagnostic)", m.get("validate_more_memory")),
        ("snapshot stamping, five tables, one as_of", m.get("snapshot")),
        ("DAG parse (DagBag, Airflow imported)", dag.get("parse")),
        (f"DAG {FIRST}, airflow dags test", dag.get(FIRST)),
        (f"DAG {NEXT}, airflow dags test", dag.get(NEXT)),
        ("(setup) airflow db migrate", dag.get("migrate")),
    ]
    print()
    print(f"| {'phase':<46} | {'rows':>9} | {'seconds':>8} | {'rows/s':>9} | {'client CPU s':>12} "
          f"| {'server CPU s':>12} | {'peak RSS MB':>11} |")
    print(f"|{'-' * 48}|{'-' * 11}|{'-' * 10}|{'-' * 11}|{'-' * 14}|{'-' * 14}|{'-' * 13}|")
    for label, measured in rows:
        if measured is None:
            if not label.startswith(("DAG", "(setup)", " ")):
                print(f"| {label:<46} | {'':>9} | {'skipped':>8} | {'':>9} | {'':>12} | {'':>12} | {'':>11} |")
            continue
        count = measured.result.get("rows")
        rate = f"{count / measured.s:,.0f}" if count and measured.s else ""
        seconds = f"{measured.s:8.3f}" if measured.s < 1 else f"{measured.s:8.2f}"
        if not measured.ok:
            seconds = f"{'FAILED':>8}"
            rate = f"({measured.wall_s:.0f} s)"
        print(f"| {label:<46} | {count or '':>9} | {seconds} | {rate:>9} | {measured.client_cpu_s:12.1f} "
              f"| {fmt(measured.server_cpu_s, 1):>12} | {measured.rss_mb:11.0f} |")
    snap = m.get("snapshot")
    if snap and snap.ok:
        print(f"| {'snapshot stamping again, same as_of':<46} | {snap.result['again']['rows']:>9} | "
              f"{snap.result['again']['s']:8.2f} | {'':>9} | {'':>12} | {'':>12} | {'':>11} |")
    if dag.get(NEXT) and dag[NEXT].result.get("tasks"):
        d = dag[NEXT].result
        print(f"| {f'DAG {NEXT}: sum of its task durations':<46} | {'':>9} | {d['task_sum_s']:8.2f} | {'':>9} "
              f"| {'':>12} | {'':>12} | {'':>11} |")

    print()
    print("Per table, seconds:")
    columns = [("copy", "COPY floor"), ("upsert_first", "upsert 1st"), ("upsert_next", "upsert next"),
               ("upsert_same", "upsert same"), ("course_first", "course 1st"), ("course_next", "course next")]
    print("| table            | " + " | ".join(f"{title:>11}" for _, title in columns) + " |")
    print("|" + "-" * 18 + "|" + "|".join("-" * 13 for _ in columns) + "|")
    for table in TABLES:
        cells = []
        for key, _ in columns:
            found = m.get(key)
            cells.append(f"{found.result['tables'][table.name]['s']:11.2f}" if found and found.ok else f"{'':>11}")
        print(f"| {table.name:<16} | " + " | ".join(cells) + " |")
    # The project's load is the six writes above (into staging) and one publish of all six.
    cells = [f"{m[key].result['publish_s']:11.2f}" if m.get(key) and m[key].ok and "publish_s" in m[key].result
             else f"{'':>11}" for key, _ in columns]
    print(f"| {'publish (1 txn)':<16} | " + " | ".join(cells) + " |")

    history = m.get("history")
    if history and history.ok:
        per_month = history.result["months"]
        print()
        print(f"History: {len(per_month)} months one after another, N={history.result['n']}; each month run, then at once run again "
              f"(same files); seconds ({history.result['stamps_catalogued']} stamps catalogued at the end):")
        print("| month     | load | validate | stamp | total | CPU s | re-run load | validate | re-stamp | total | CPU s |")
        print("|-----------|-----:|---------:|------:|------:|------:|------------:|---------:|---------:|------:|------:|")
        for entry in per_month:
            first, again = entry["first"], entry["again"]
            print(f"| {entry['month']} | {first['load']:4.2f} | {first['validate']:8.2f} | {first['stamp']:5.2f} "
                  f"| {first['total']:5.2f} | {fmt(first.get('cpu'), 1):>5} | {again['load']:11.2f} "
                  f"| {again['validate']:8.2f} | {again['stamp']:8.2f} | {again['total']:5.2f} "
                  f"| {fmt(again.get('cpu'), 1):>5} |")

    first_load, copy_floor = m.get("upsert_first"), m.get("copy")
    if first_load and first_load.ok and copy_floor and copy_floor.ok:
        print()
        print(f"Staging cost of the first load (month_000, N={n}) against the serial keyed raw-COPY floor "
              f"({copy_floor.s:.2f} s):")
        for label, seconds in (("write: six typed COPYs into UNLOGGED staging", first_load.result["stage_s"]),
                               ("publish: one transaction, keys set aside and built after the insert",
                                first_load.result["publish_s"]),
                               ("first load (write + publish)", first_load.s)):
            print(f"    {label:<66} {seconds:7.2f} s  {fmt(ratio(seconds, copy_floor.s))}x floor")

    anatomy = m.get("anatomy")
    if anatomy and anatomy.ok:
        print()
        print(f"Anatomy of one table's load (each step alone, emptied keyed table, rolled back; N={n}, "
              f"server work_mem {anatomy.result['work_mem']}):")
        for name, steps in anatomy.result["tables"].items():
            floor = steps.get("raw COPY into the keyed table (the floor)")
            print(f"  {name}:")
            for label, seconds in steps.items():
                print(f"    {label:<66} {seconds:7.2f} s  {fmt(ratio(seconds, floor))}x floor")
            total = steps["write: typed COPY into UNLOGGED staging (stage_file)"] + steps[
                "publish MERGE, the same rows already there"]
            label = "write + MERGE over the same rows (= a month again, unreplayed)"
            print(f"    {label:<66} {total:7.2f} s  {fmt(ratio(total, floor))}x floor")
    if m.get("validate_reason"):
        print()
        print(f"Validation failed: {m['validate_reason']}")
    if dag.get("parameters"):
        print()
        print(f"The DAG ran on a warehouse with {dag['parameters']} (validation fails without it): dag_month_s is NA.")

    if dag.get(NEXT) and dag[NEXT].result.get("tasks"):
        print()
        print(f"DAG {NEXT} task durations (s): " + ", ".join(
            f"{task}={info['s']:.2f}" for task, info in dag[NEXT].result["tasks"].items() if info["s"] is not None))

    scheduler = dag.get("scheduler") or {}
    if scheduler.get("months"):
        idle = scheduler["idle_cpu_per_s"]
        print()
        print("Airflow's CPU per month under a running scheduler (catch-up of both months; CPU s per process tree; "
              f"idle {sum(idle.values()):.3f} CPU s per second, sampled over {SCHEDULER_IDLE_S} s once settled, "
              "taken off per second of the month's wall time):")
        names = list(idle)
        print("| month     | wall s | " + " | ".join(f"{name:>13}" for name in names)
              + " | - idle | - task callables | = Airflow |")
        print("|-----------|-------:|" + "|".join("-" * 14 + ":" for _ in names) + "|-------:|-----------------:|----------:|")
        for month, found in scheduler["months"].items():
            print(f"| {month} | {found['wall_s']:6.1f} | "
                  + " | ".join(f"{found['gross_s'][name]:13.1f}" for name in names)
                  + f" | {found['idle_s']:6.1f} | {fmt(found['task_code_cpu_s'], 1):>16} | {found['airflow_s']:9.1f} |"
                  + ("" if found["ok"] else " (run failed)"))
    if scheduler.get("error"):
        print()
        print(f"Scheduler months not measured: {scheduler['error']}")

    def s(key):
        found = m.get(key)
        return found.s if found and found.ok else None

    upsert_s, floor_s = s("upsert_first"), s("copy")
    course_next, upsert_next = s("course_next"), s("upsert_next")
    same_s = s("upsert_same")
    rss = max((m[k].rss_mb for k in ("upsert_first", "upsert_next", "upsert_same") if m.get(k)), default=None)
    dag_month = dag[NEXT].wall_s if dag.get(NEXT) and dag[NEXT].ok and not dag.get("parameters") else None
    snap_s = s("snapshot")
    figures_s = m["validate"].result.get("figures_s") if m.get("validate") and m["validate"].ok else None
    with_figures = s("validate") + figures_s if figures_s is not None else None
    parse = dag["parse"].s if dag.get("parse") and dag["parse"].ok else None

    def cpu(key):
        found = m.get(key)
        return found.client_cpu_s + found.server_cpu_s if found and found.ok and found.server_cpu_s is not None else None

    # A wall time cannot beat the CPU it needs spread over every core: what bounds the DAG month.
    dag_cpu = (dag[NEXT].client_cpu_s + dag[NEXT].server_cpu_s  # the API server's own CPU not counted
               if dag.get(NEXT) and dag[NEXT].ok and dag[NEXT].server_cpu_s is not None else None)
    cores = os.cpu_count() or 1
    scheduled = (dag.get("scheduler") or {}).get("months", {}).get(NEXT) or {}
    per_month_history = history.result["months"] if history and history.ok else []
    targets = [
        ("first load <= 1.15x keyed raw-COPY floor", ratio(upsert_s, floor_s), lambda v: v <= 1.15, "x",
         f"CPU (client+server): {fmt(ratio(cpu('upsert_first'), cpu('copy')))}x"),
        ("next month >= 5.5x faster than the course", ratio(course_next, upsert_next), lambda v: v >= 5.5, "x",
         f"CPU: {fmt(ratio(cpu('course_next'), cpu('upsert_next')))}x"),
        ("same month again < 1/3 of first load", ratio(same_s, upsert_s), lambda v: v < 1 / 3, "x", ""),
        ("DAG month <= serial keyed raw-COPY floor", ratio(dag_month, floor_s), lambda v: v <= 1, "x",
         f"wall {fmt(dag[NEXT].wall_s) if dag.get(NEXT) else 'NA'} s, task sum "
         f"{fmt(dag[NEXT].result.get('task_sum_s')) if dag.get(NEXT) else 'NA'} s, floor {fmt(floor_s)} s"
         + (f"; CPU {fmt(dag_cpu, 1)} s / {cores} cores: >= {fmt(dag_cpu / cores, 1)} s of wall" if dag_cpu else "")
         + (f" ({dag['parameters']})" if dag.get("parameters") else "")),
        ("peak RSS of an upsert process < 256 MB", rss, lambda v: v < 256, "MB", ""),
        ("validation with the month figures <= 1.3x rows alone", ratio(with_figures, s("validate")),
         lambda v: v <= 1.3, "x", f"row rules {fmt(s('validate'))} s + figures and checks against history "
                                  f"{fmt(figures_s)} s = {fmt(with_figures)} s"),
        ("validation, six tables, every row < 15 s", s("validate"), lambda v: v < 15, "s",
         f"with work_mem {VALIDATION_RETRY_WORK_MEM}: {fmt(s('validate_more_memory'))} s" if m.get("validate_more_memory") else ""),
        ("stamping five snapshots < 30 s", snap_s, lambda v: v < 30, "s", ""),
        ("DAG parse < 1 s", parse, lambda v: v < 1, "s", ""),
        ("last month / month 2 (run) <= 1.2", history_growth(per_month_history, "first"), lambda v: v <= 1.2, "x",
         f"{len(per_month_history)} months; CPU (client+server): "
         f"{fmt(history_growth(per_month_history, 'first', 'cpu'), 3)}x" if per_month_history else ""),
        ("last month / month 2 (re-run) <= 1.2", history_growth(per_month_history, "again"), lambda v: v <= 1.2, "x",
         f"CPU: {fmt(history_growth(per_month_history, 'again', 'cpu'), 3)}x" if per_month_history else ""),
        ("Airflow CPU per DAG month <= 10 s", dag.get("airflow_cpu_scheduler_s"), lambda v: v <= 10, "s",
         f"under a running scheduler ({NEXT}; scheduler + dag-processor + API server, idle and the task "
         f"callables' {fmt(scheduled.get('task_code_cpu_s'), 1)} s taken off); `airflow dags test` "
         f"({NEXT}, its tree + the API server, the callables' {fmt(dag.get('task_code_cpu_s'), 1)} s included): "
         f"{fmt(dag.get('airflow_cpu_s'), 1)} s"),
    ]
    print()
    print(f"Targets (set for N=1,000,000 on 2 cores; this run: N={n}):")
    judged = []
    for label, value, test, unit, note in targets:
        verdict = "NA" if value is None else ("met" if test(value) else "NOT met")
        print(f"  {label:<42} {fmt(value, 3 if unit == 'x' else 2):>8} {unit:<3} {verdict:<8} {note}")
        judged.append({"target": label, "value": value, "unit": unit, "verdict": verdict, "note": note})
    validated = m["validate"].result["tables"] if m.get("validate") and m["validate"].ok else None
    save_results(n, judged, validated, load)
    print()
    print("In the BENCH line, upsert_s, copy_floor_s and vs_floor are the first load (empty tables); course_s and "
          "speedup_vs_course the next month (course next / upsert next).")
    return (f"BENCH n={n} upsert_s={fmt(upsert_s)} course_s={fmt(None if skip_course else course_next)} "
            f"copy_floor_s={fmt(floor_s)} speedup_vs_course={fmt(ratio(course_next, upsert_next))} "
            f"vs_floor={fmt(ratio(upsert_s, floor_s))} reload_unchanged_s={fmt(same_s)} "
            f"peak_rss_mb={fmt(rss, 0)} validate_s={fmt(s('validate'))} validate_figures_s={fmt(with_figures)} "
            f"snapshot_s={fmt(snap_s)} "
            f"dag_month_s={fmt(None if skip_dag else dag_month)} months={len(per_month_history)} "
            f"history_n={fmt(history.result['n'] if per_month_history else None)} "
            f"month_growth={fmt(history_growth(per_month_history, 'first'))} "
            f"restamp_growth={fmt(history_growth(per_month_history, 'again'))} "
            f"airflow_cpu_s={fmt(dag.get('airflow_cpu_s'), 1)} "
            f"airflow_cpu_scheduler_s={fmt(dag.get('airflow_cpu_scheduler_s'), 1)} "
            f"task_code_cpu_s={fmt(dag.get('task_code_cpu_s'), 1)}")


def save_results(n: int, judged: list[dict], validated: dict | None, load: tuple) -> None:
    """Keep this run's measured targets in bench/results.json, per N (docs/performance.md is rendered
    from it): each target's latest figure with its date and the machine's load; a target this run
    did not measure (a SKIP_ flag) keeps the figure of the run that last did."""
    saved = json.loads(RESULTS_JSON.read_text(encoding="utf-8")) if RESULTS_JSON.exists() else {}
    kept = saved.setdefault(str(n), {"targets": {}})
    stamp = {"measured": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(),
             "load_average": [round(load[0][0], 2), round(load[1][0], 2)]}
    for target in judged:
        if target["value"] is not None:
            kept["targets"][target["target"]] = {**{k: v for k, v in target.items() if k != "target"}, **stamp}
    if validated:
        kept["validation"] = {"tables": {name: {"row_rules_s": round(t["s"], 2), "figures_s": round(t["figures_s"], 2)}
                                         for name, t in validated.items() if t.get("figures_s") is not None}, **stamp}
    RESULTS_JSON.write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    from streamflow_dev import performance_doc

    print(f"  {RESULTS_JSON.relative_to(ROOT)} kept; {performance_doc.OUTPUT.relative_to(ROOT)}: "
          f"{'rewritten' if performance_doc.write() else 'unchanged'}")
