"""`make bench [N=...] [MONTHS=...] [SKIP_COURSE=1] [SKIP_DAG=1]`: the project's upsert at scale, side by side.

One process tree, one PostgreSQL, the same generated files (`streamflow_dev.generate`, cached in
`.bench-data/<N>/`). Every measured phase runs in its own child process (bench/bench.py with
`--phase`), so its wall time and its peak RSS (`os.wait4` rusage of that child) are its own:

* the keyed raw-COPY floor: `COPY table FROM STDIN` of month_000 into the empty keyed tables;
* the project's load (`streamflow_dev.run_month`: `streamflow.pipeline.stage_table` of all six tables
  into the run's staging schema, then `publish_month`, what the DAG's write and publish tasks run): first load (empty
  tables), next month over it, the same month again (nothing changed);
* the course's way (implemented here only, as the baseline): `pandas.read_csv`,
  `DataFrame.to_sql` into a `tmp_<table>` table, `INSERT ... SELECT ... ON CONFLICT DO UPDATE`;
* the validation of all six tables, every row (`streamflow.validation.run_suite`), and the
  stamping of the five snapshots at one as_of (`sql/queries/stamp_snapshot.sql`, as the DAG renders it);
* the DAG: parse time, then month_000 and month_001 through `airflow dags test --use-executor`
  (LocalExecutor, independent tasks side by side, an API server for their reports), wall time
  next to the sum of the task durations Airflow recorded (`task_instance.duration`).

Each approach gets its own fresh database. The server is an embedded PostgreSQL started in a
temp dir on a free port and stopped at exit, unless `BENCH_DSN` (a libpq URL/conninfo of a role
that may CREATE DATABASE) points at an existing one; the bench's databases are dropped at the end.

An "anatomy" phase times the steps of one table's load apart (raw COPY, with and without its
foreign-key checks, the write into staging, the publish into an empty and into a full table):
what bounds a load, and what staging costs.
Child and server CPU seconds are printed next to wall times: on a shared machine they are the
load-independent part of a measurement.

A "history" phase runs MONTHS months one after another on one warehouse (load, validate, stamp;
then the same month again at once, as a re-run does) and prints each month's seconds, the growth
of the last month over month 2 (`month_growth=`, `restamp_growth=` on the BENCH line) and draws
them into `bench/history.svg` (figures in `bench/history.json`, from which docs/performance.md is
regenerated). During the DAG months, Airflow's own CPU is measured (`airflow_cpu_s=`: `airflow dags test`'s process
tree, executor workers and task processes included, plus the API server's), and apart the CPU
the task callables logged (`task_code_cpu_s=`: the pipeline's own client work, a part of it).
Then the same two months run as deployed, by catch-up on a scheduler (+ dag-processor) already
running: `airflow_cpu_scheduler_s=` is Airflow's CPU per month there, the callables' CPU and the
processes' idle CPU taken off (see `scheduler_months`); the ≤ 10 s target judges that figure.

Settings (environment): N (users in month_000, default 300000), MONTHS (default 24), HISTORY_N
(the history phase's users, default N but at most 100000), SKIP_COURSE=1, SKIP_DAG=1,
SKIP_ANATOMY=1, BENCH_SEED, BENCH_DATA_DIR (default .bench-data), BENCH_DSN,
BENCH_STATEMENT_TIMEOUT (per statement, default 900s), BENCH_VALIDATE_TIMEOUT (default 120s).
The last line printed is the BENCH line.

The modules, by job (bench/bench.py is the entry point, of the parent and of every child):

* `settings`: the repository's paths, the two months, the defaults;
* `cli`: the command line and the order of the phases (`main`);
* `processes`: a phase run in a child process and measured (`run_child`, `Measured`, `ServerCpu`);
* `child`: the child side, the phase `--phase` names;
* `data`, `server`: the generated months and the PostgreSQL the phases run against;
* `load`: the raw-COPY floor, the project's load, the course's way, the stamping;
* `validate`: validation of a staged month, with and without its figures;
* `anatomy`: one table's load, step by step;
* `history`: MONTHS months one after another, and their plot;
* `dag`: the DAG's parse, its months through `airflow dags test`, then under a running scheduler;
* `report`, `figures`: the printed tables, the targets, bench/results.json and the BENCH line.
"""
