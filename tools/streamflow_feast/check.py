"""Does Feast serve exactly the training sets? `feast apply`, then historical features at each stamped month
end and at one mid-month time, and the online store, compared with `training_examples`; exit 1 on any difference.

Runs in .venv-feast with feature_store.yaml's settings in the environment (`make feast-check` sets them
from .env), on the feature repo whose `definitions` module is on the path (feature_repo/). What Feast
serves is copied into a temporary table with the columns of `training_examples` and hashed with the
manifest's own expression (sql/006): equal md5s mean the very rows the `training_set` DAG built, same
users, labels and values. (A NUMERIC is compared through the shortest decimal of the float Feast serves:
the extract's own text for these files, which were written from floats.)

    python -m streamflow_feast.check [--mid-month 2024-02-15T12:00:00+00:00] [--report result.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import definitions
import psycopg
from definitions import AS_OF, EVENT_TIMESTAMP, LABELS_TABLE, SNAPSHOT_TTL, TRAINING_SET_SERVICE
from feast import FeatureStore
from feast.repo_config import load_repo_config
from feast.repo_operations import apply_total
from psycopg import sql

from streamflow.registry import KEY, SNAPSHOTTED, table

#: The repo of the definitions imported above (the path decides which: feature_repo/, or a test's copy).
FEATURE_REPO = Path(definitions.__file__).resolve().parent
LABELS_SNAPSHOTS = table(LABELS_TABLE).snapshot_table
SERVED = "feast_served"  # the temporary table the served rows are compared in
MID_MONTH_DAY, MID_MONTH_HOUR = 15, 12
STARTED_IN = Path.cwd()  # `feast apply` changes directory: paths are shown relative to where the check started

# Feast's entity-query schema probe hands pandas a psycopg connection, and pandas warns on every call.
warnings.filterwarnings("ignore", message="pandas only supports SQLAlchemy connectable")


@dataclass
class Comparison:
    """What Feast served for one request, against the training set it must equal."""

    request: str  # "2024-01-31T00:00:00Z", "... (mid-month)", "online"
    expected_as_of: str  # the training set it must equal
    rows: int = 0
    churners: int = 0
    md5: str = ""
    served_as_ofs: dict[str, int] = field(default_factory=dict)  # the as_of of the served rows → rows
    manifest: dict | None = None  # the latest build of expected_as_of in training_set_manifest
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def render(self) -> str:
        lines = [f"  {self.request}: Feast {self.rows} rows, {self.churners} churners, md5 {self.md5}"]
        if self.manifest is None:
            lines.append(f"      training_examples {self.expected_as_of}: none built")
        else:
            lines.append(f"      training_examples {self.expected_as_of}: {self.manifest['rows']} rows, "
                         f"{self.manifest['churners']} churners, md5 {self.manifest['content_md5']}: "
                         f"{'match' if not self.problems else 'DIFFERENT'} ({self.seconds:.1f} s)")
        return "\n".join(lines)


def utc_midnight(day: date) -> datetime:
    """The event timestamp of a snapshot month: `as_of` at 00:00 UTC, as the source queries make it."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def utc_label(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shown(path: Path) -> Path:
    return path.relative_to(STARTED_IN) if path.is_relative_to(STARTED_IN) else path


def warehouse(store: FeatureStore) -> psycopg.Connection:
    """A connection to the warehouse Feast reads, with Feast's own settings (feature_store.yaml)."""
    config = store.config.offline_store
    return psycopg.connect(host=config.host, port=config.port, dbname=config.database, user=config.user,
                           password=config.password, sslmode=config.sslmode, autocommit=True)


def rebuild_and_apply() -> None:
    """Delete the registry and the online store that feature_store.yaml names, then `feast apply` from nothing.

    `feast apply` over an existing registry keeps the online tables and their rows ("No changes to
    infrastructure"), so a materialization that wrote nothing would be read back from an earlier run's
    rows and pass. From an empty registry, apply creates the online tables anew, empty.
    """
    config = load_repo_config(FEATURE_REPO, FEATURE_REPO / "feature_store.yaml")
    # Relative paths are the repo's, as Feast reads them (an absolute one stays itself). Only a SQLite
    # online store is a file to remove; another kind would keep its rows across the rebuild.
    registry = FEATURE_REPO / config.registry.path
    for path in (registry, FEATURE_REPO / getattr(config.online_store, "path", "")):
        if path.is_file():
            path.unlink()
    registry.parent.mkdir(parents=True, exist_ok=True)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # what `feast apply` prints, summed up below
        apply_total(config, FEATURE_REPO, skip_source_validation=False)
    created: dict[str, list[str]] = {}
    for line in printed.getvalue().splitlines():  # "Created feature view labels", "Created sqlite table ..."
        if line.startswith("Created ") and " " in line[len("Created "):]:
            kind, name = line[len("Created "):].rsplit(" ", 1)
            created.setdefault(kind, []).append(name)
    print(f"feast apply ({shown(FEATURE_REPO)}/, registry {shown(registry)}):\n"
          + "\n".join(f"  {kind}: {', '.join(sorted(names))}" for kind, names in created.items()))


def stamped_as_ofs(conn: psycopg.Connection) -> list[date]:
    """The as_ofs whose snapshots are all stamped (snapshot_stamps, sql/008), oldest first."""
    tables = [t.snapshot_table for t in SNAPSHOTTED]
    return [as_of for (as_of,) in conn.execute(
        "SELECT as_of FROM snapshot_stamps WHERE snapshot_table = ANY(%s) GROUP BY as_of"
        " HAVING count(DISTINCT snapshot_table) = %s ORDER BY as_of", (tables, len(tables)))]


def latest_manifests(conn: psycopg.Connection) -> dict[date, dict]:
    """The latest build of each as_of in training_set_manifest (what training_examples holds)."""
    rows = conn.execute("SELECT DISTINCT ON (as_of) as_of, rows, churners, content_md5 FROM training_set_manifest"
                        " ORDER BY as_of, id DESC").fetchall()
    return {as_of: {"rows": n, "churners": churners, "content_md5": md5} for as_of, n, churners, md5 in rows}


def entity_query(conn: psycopg.Connection, at: datetime, population_as_of: date) -> str:
    """The entity rows as SQL (feature_store.yaml's embed_query: Feast writes no table for them): every user
    of the labels snapshot at `population_as_of`, each asking for its features at `at` (a UTC literal)."""
    return sql.SQL("SELECT {key}, {at}::timestamptz AS {ts} FROM {labels} WHERE {as_of} = {population}").format(
        key=sql.Identifier(KEY), at=sql.Literal(at.isoformat()), ts=sql.Identifier(EVENT_TIMESTAMP),
        labels=sql.Identifier(LABELS_SNAPSHOTS), as_of=sql.Identifier(AS_OF),
        population=sql.Literal(population_as_of)).as_string(conn)


def historical_rows(store: FeatureStore, conn: psycopg.Connection, at: datetime, population_as_of: date) -> list[dict]:
    job = store.get_historical_features(entity_df=entity_query(conn, at, population_as_of),
                                        features=store.get_feature_service(TRAINING_SET_SERVICE))
    return job.to_arrow().to_pylist()  # not to_df(): pandas turns an int column holding a NULL into floats


def online_rows(store: FeatureStore, users: list[str]) -> list[dict]:
    served = store.get_online_features(features=store.get_feature_service(TRAINING_SET_SERVICE),
                                       entity_rows=[{KEY: user} for user in users]).to_dict()
    return [dict(zip(served, values, strict=True)) for values in zip(*served.values(), strict=True)]


def as_date(value) -> date | None:
    """Feast serves the DATE `as_of` as a timestamp (UnixTimestamp): naive UTC offline, aware online."""
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    return value


def load_served(conn: psycopg.Connection, rows: list[dict]) -> list[str]:
    """Copy the served rows into a temporary table with training_examples' columns; return them.

    Without its constraints (CREATE TABLE AS): a NULL `as_of`, a month Feast found nothing for, must
    show up as a difference, not as an error.
    """
    served = sql.Identifier(SERVED)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(served))
    conn.execute(sql.SQL("CREATE TEMP TABLE {} AS SELECT * FROM training_examples WITH NO DATA").format(served))
    columns = [c.name for c in conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(served)).description]
    missing = sorted(set(columns) - set(rows[0])) if rows else []
    if missing:
        raise SystemExit(f"Feast's {TRAINING_SET_SERVICE} service does not serve {', '.join(missing)}")
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
            served, sql.SQL(", ").join(map(sql.Identifier, columns)))) as copy:
        for row in rows:
            copy.write_row([as_date(row[c]) if c == AS_OF else row[c] for c in columns])
    return columns


def compare(conn: psycopg.Connection, request: str, rows: list[dict], expected_as_of: date,
            manifest: dict | None) -> Comparison:
    """The served rows against training_examples at `expected_as_of`: counts, hash, and each column that differs."""
    columns = load_served(conn, rows)
    served = sql.Identifier(SERVED)
    result = Comparison(request, str(expected_as_of), manifest=manifest)
    # The manifest's expression (sql/006): md5 of the rows' text in user_id byte order.
    result.rows, result.churners, result.md5 = conn.execute(sql.SQL(
        "SELECT count(*), count(*) FILTER (WHERE t.churn_label),"
        " md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t.{key} COLLATE \"C\"), '')) FROM {served} AS t").format(
        key=sql.Identifier(KEY), served=served)).fetchone()
    result.served_as_ofs = {str(as_of): n for as_of, n in conn.execute(sql.SQL(
        "SELECT {as_of}, count(*) FROM {served} GROUP BY 1 ORDER BY 1").format(
        as_of=sql.Identifier(AS_OF), served=served))}
    if manifest is None:
        result.problems.append(f"no training set built for {expected_as_of} (training_set_manifest)")
    else:
        for name in ("rows", "churners"):
            if getattr(result, name) != manifest[name]:
                result.problems.append(f"{name}: Feast {getattr(result, name)}, training_examples {manifest[name]}")
        if result.md5 != manifest["content_md5"]:
            result.problems.append(f"md5: Feast {result.md5}, training_examples {manifest['content_md5']}")
    result.problems += column_differences(conn, columns, expected_as_of)
    return result


def column_differences(conn: psycopg.Connection, columns: list[str], expected_as_of: date) -> list[str]:
    """Users missing or extra, and per column the users whose served value differs (with the first of them)."""
    key = sql.Identifier(KEY)
    checks = [sql.SQL("count(*) FILTER (WHERE s.{key} IS NULL), count(*) FILTER (WHERE e.{key} IS NULL)").format(key=key)]
    for name in columns:
        differs = sql.SQL("e.{key} IS NOT NULL AND s.{key} IS NOT NULL AND e.{c} IS DISTINCT FROM s.{c}").format(
            key=key, c=sql.Identifier(name))
        checks.append(sql.SQL(
            "count(*) FILTER (WHERE {differs}), (array_agg(concat(e.{key}, ': Feast ', coalesce(s.{c}::text, 'NULL'),"
            " ', training_examples ', coalesce(e.{c}::text, 'NULL')) ORDER BY e.{key}) FILTER (WHERE {differs}))[1]"
        ).format(differs=differs, key=key, c=sql.Identifier(name)))
    found = conn.execute(sql.SQL(
        "SELECT {checks} FROM (SELECT * FROM training_examples WHERE as_of = %s) AS e FULL JOIN {served} AS s"
        " ON s.{key} = e.{key}").format(checks=sql.SQL(", ").join(checks), served=sql.Identifier(SERVED), key=key),
        (expected_as_of,)).fetchone()
    missing, extra = found[:2]
    problems = [f"{n} users {what}" for n, what in ((missing, "of training_examples not served"),
                                                    (extra, "served that training_examples does not have")) if n]
    for name, count, example in zip(columns, found[2::2], found[3::2], strict=True):
        if count:
            problems.append(f"{name}: {count} users differ (first: {example})")
    return problems


def mid_month_time(stamped: list[date]) -> datetime:
    """A time inside a month: the 15th, 12:00 UTC, of the latest stamped month when a month is stamped before
    it (its answer is then that earlier month), else of the month after it."""
    latest = stamped[-1]
    at = datetime(latest.year, latest.month, MID_MONTH_DAY, MID_MONTH_HOUR, tzinfo=UTC)
    if not any(as_of < at.date() for as_of in stamped):
        at = datetime(latest.year + latest.month // 12, latest.month % 12 + 1, MID_MONTH_DAY, MID_MONTH_HOUR, tzinfo=UTC)
    return at


def month_answering(stamped: list[date], at: datetime) -> date | None:
    """The month a request at `at` must be answered from: the latest stamped at or before it, within the TTL."""
    before = [as_of for as_of in stamped if utc_midnight(as_of) <= at]
    return before[-1] if before and at - utc_midnight(before[-1]) <= SNAPSHOT_TTL else None


def timed(function, *args):
    started = time.monotonic()
    return function(*args), time.monotonic() - started


def aware_timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:  # a naive time would be read in some session's time zone: the pitfall itself
        raise argparse.ArgumentTypeError(f"{text}: give a UTC offset, e.g. {text}+00:00")
    return moment


def check(store: FeatureStore, conn: psycopg.Connection, mid_month: datetime | None) -> list[Comparison]:
    """Every comparison, printed as it is made."""
    stamped, manifests = stamped_as_ofs(conn), latest_manifests(conn)
    if not stamped:
        raise SystemExit("feast-check: no month is stamped in this warehouse (`make run` loads them)")
    zone = conn.execute("SHOW TimeZone").fetchone()[0]
    print(f"Historical features (service {TRAINING_SET_SERVICE}, PostgreSQL offline store, session time zone {zone})"
          " against training_examples:")
    results = []
    for as_of in stamped:
        rows, seconds = timed(historical_rows, store, conn, utc_midnight(as_of), as_of)
        results.append(compare(conn, utc_label(utc_midnight(as_of)), rows, as_of, manifests.get(as_of)))
        results[-1].seconds = seconds
        print(results[-1].render(), flush=True)

    at = mid_month or mid_month_time(stamped)
    answer = month_answering(stamped, at)
    if answer is None:
        raise SystemExit(f"feast-check: no month stamped within the TTL ({SNAPSHOT_TTL.days} days) before {utc_label(at)}")
    rows, seconds = timed(historical_rows, store, conn, at, answer)
    mid = compare(conn, f"{utc_label(at)} (mid-month)", rows, answer, manifests.get(answer))
    mid.seconds = seconds
    results.append(mid)
    later = [str(as_of) for as_of in stamped if as_of > answer]
    print(mid.render() + "\n      served rows by as_of: " + ", ".join(f"{d}: {n}" for d, n in mid.served_as_ofs.items())
          + ("; leak-free" + (f", nothing from {', '.join(later)}" if later else "") if not mid.problems
             else f"; NOT {answer}'s training set"), flush=True)

    latest = stamped[-1]
    with contextlib.redirect_stdout(io.StringIO()):  # Feast's progress bars
        _, materialize_seconds = timed(store.materialize, utc_midnight(latest), utc_midnight(latest))
    users = [user for (user,) in conn.execute(sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(
        sql.Identifier(KEY), sql.Identifier(LABELS_SNAPSHOTS), sql.Identifier(AS_OF)), (latest,))]
    rows, seconds = timed(online_rows, store, users)
    online = compare(conn, "online", rows, latest, manifests.get(latest))
    online.seconds = materialize_seconds + seconds
    results.append(online)
    print(f"Online store ({store.config.online_store.type}): {latest} materialized, all {len(users)} users of its"
          f" snapshot read back:\n{online.render()}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamflow_feast.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mid-month", type=aware_timestamp, help="the time inside a month to check, with its "
                        f"UTC offset (default: the {MID_MONTH_DAY}th, {MID_MONTH_HOUR}:00 UTC, of the latest stamped month)")
    parser.add_argument("--report", type=Path, help="also write the comparisons here as JSON")
    args = parser.parse_args(argv)
    report = args.report.resolve() if args.report else None  # before apply, which changes directory
    rebuild_and_apply()
    store = FeatureStore(repo_path=FEATURE_REPO)
    with warehouse(store) as conn:
        results = check(store, conn, args.mid_month)
    if report:
        report.write_text(json.dumps([asdict(result) for result in results], indent=1), encoding="utf-8")
    problems = [(result.request, problem) for result in results for problem in result.problems]
    for request, problem in problems:
        print(f"DIFFERENCE {request}: {problem}", file=sys.stderr)
    print(f"feast-check: {'OK' if not problems else f'{len(problems)} difference(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
