"""Issue 3: the contract gate's bad-input corpus, generated from the real seed files.

Every bad input is a small mutation of a real month_000 file (a function from the file's bytes
to the mutated bytes plus what the error must say, all computed from the mutation itself).
Each one is applied over a warehouse loaded with the real month_000 and must:

* raise `ContractViolation` (or `MissingInput`) naming the file, the line(s), the column(s)
  and the offending value(s);
* leave every live table exactly as it was (content hashes before == after) and the
  connection idle, ready for the next load.

To make "nothing was written" observable, every bad file also carries a *canary*: one valid
change on its last line (a flipped boolean or an integer + 1). Were the gate to let the file
through even partly, that change would show in the hashes; `test_canary_alone_is_loaded`
proves it does.

The accepted variants (BOM, CRLF, quoted fields, boolean spellings) must load the 7043 rows
and leave the table byte-for-byte what the original file gave.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from streamflow.errors import ContractViolation, MissingInput
from streamflow.registry import KEY, TABLES, TABLES_BY_NAME, USERS, Table
from tests.golden import ROWS
from tests.helpers import apply_file, live_hashes, load_month, table_hash

MONTH = "month_000"
INJECTION = 'x"; DROP TABLE users; --'

# --------------------------------------------------------------------------- file surgery


class Lines:
    """A seed file as lines of cells, numbered as in the file (header = line 1).

    The real seeds have no quotes and LF endings, so splitting on commas is exact (checked).
    """

    def __init__(self, data: bytes):
        assert data.endswith(b"\n"), "seed format changed"
        assert b'"' not in data, "seed format changed"
        assert b"\r" not in data, "seed format changed"
        self.cells = [line.split(b",") for line in data[:-1].split(b"\n")]

    @property
    def header(self) -> list[str]:
        return [cell.decode() for cell in self.cells[0]]

    @property
    def last(self) -> int:
        return len(self.cells)

    def index(self, column: str) -> int:
        return self.header.index(column)

    def get(self, line: int, column: str) -> str:
        return self.cells[line - 1][self.index(column)].decode()

    def set(self, line: int, column: str, value: str | bytes) -> str:
        """Replace one cell; return what was there."""
        old = self.get(line, column)
        self.cells[line - 1][self.index(column)] = value if isinstance(value, bytes) else value.encode()
        return old

    def rename(self, column: str, new: str | bytes) -> None:
        self.set(1, column, new)

    def drop_column(self, column: str) -> None:
        position = self.index(column)
        for cells in self.cells:
            del cells[position]

    def add_column(self, name: str, value: str) -> None:
        self.cells[0].append(name.encode())
        for cells in self.cells[1:]:
            cells.append(value.encode())

    def dump(self) -> bytes:
        return b"".join(b",".join(cells) + b"\n" for cells in self.cells)


def with_canary(data: bytes, table: Table) -> bytes:
    """The real file with one valid change on its last line (see the module docstring)."""
    lines = Lines(data)
    column = canary_column(table)
    value = lines.get(lines.last, column)
    lines.set(lines.last, column, {"True": "False", "False": "True"}.get(value) or str(int(value) + 1))
    return lines.dump()


def canary_column(table: Table) -> str:
    """The last boolean or integer column the file carries."""
    return next(c.name for c in reversed(table.columns)
                if c.pg_type in ("boolean", "integer") and not c.optional)


# --------------------------------------------------------------------------- the bad inputs


@dataclass(frozen=True)
class Bad:
    """A mutated file (None: no file at all) and what the error about it must contain."""

    data: bytes | None
    lines: tuple[int, ...] = ()  # file line numbers ("line 5", "lines 4, 9")
    columns: tuple[str, ...] = ()  # column names or positions ("column 3")
    values: tuple[str, ...] = ()  # the offending values, as the message shows them
    also: tuple[str, ...] = ()  # other words the message must have
    error: type[Exception] = ContractViolation
    min_problems: int = 1
    cap: int | None = None  # STREAMFLOW_MAX_FILE_BYTES for this case


Mutation = Callable[[bytes], Bad]


def missing_file(data: bytes) -> Bad:
    return Bad(None, error=MissingInput, also=("file not found",))


def empty_file(data: bytes) -> Bad:
    return Bad(b"", lines=(1,), also=("empty",))


def header_only(data: bytes) -> Bad:
    header = data.split(b"\n", 1)[0] + b"\n"
    return Bad(header, lines=(2,), also=("no data rows",))


def unknown_column(name: str, value: str) -> Mutation:
    def mutate(data: bytes) -> Bad:
        lines = Lines(data)
        lines.add_column(name, value)
        return Bad(lines.dump(), lines=(1,), columns=(name, f"column {len(lines.header)}"), values=(repr(name),))
    return mutate


def missing_column(column: str) -> Mutation:
    def mutate(data: bytes) -> Bad:
        lines = Lines(data)
        lines.drop_column(column)
        return Bad(lines.dump(), lines=(1,), columns=(repr(column),), also=("missing",))
    return mutate


def duplicated_column(column: str) -> Mutation:
    def mutate(data: bytes) -> Bad:
        lines = Lines(data)
        position = lines.index(column)
        for cells in lines.cells:
            cells.append(cells[position])
        return Bad(lines.dump(), lines=(1,), columns=(repr(column),), also=("appears 2 times",))
    return mutate


def renamed_column(column: str, new: str) -> Mutation:
    def mutate(data: bytes) -> Bad:
        lines = Lines(data)
        lines.rename(column, new)
        position = lines.index(new) + 1
        return Bad(lines.dump(), lines=(1,), columns=(f"column {position}", repr(column)), values=(repr(new),),
                   also=("unknown column", "missing"), min_problems=2)
    return mutate


def header_cell(column: str, raw: bytes, shown: str) -> Mutation:
    """Replace a header cell by raw bytes; `shown` is how the message must render it."""
    def mutate(data: bytes) -> Bad:
        lines = Lines(data)
        position = lines.index(column) + 1
        lines.rename(column, raw)
        return Bad(lines.dump(), lines=(1,), columns=(f"column {position}",), values=(shown,))
    return mutate


def header_trailing_comma(data: bytes) -> Bad:
    header, body = data.split(b"\n", 1)
    position = header.count(b",") + 2
    return Bad(header + b",\n" + body, lines=(1,), columns=(f"column {position}",), values=("''",))


def bad_value(column: str, value: str, line: int = 5) -> Mutation:
    """One cell replaced by a value its column's type cannot take (or a bad key)."""
    def mutate(data: bytes) -> Bad:
        lines = Lines(data)
        lines.set(line, column, value)
        return Bad(lines.dump(), lines=(line,), columns=(column,), values=(f"line {line} {value!r}",))
    return mutate


def duplicate_key(first: int, second: int, padding: str = "") -> Mutation:
    """Line `second` gets line `first`'s user_id (optionally padded with blanks, the same key once
    trimmed: then refused as padded too)."""
    def mutate(data: bytes) -> Bad:
        lines = Lines(data)
        user = lines.get(first, KEY)
        written = padding + user + padding
        lines.set(second, KEY, written)
        padded = (f"1 padded user_id(s) (surrounding whitespace): line {second} {written!r}",) if padding else ()
        return Bad(lines.dump(), lines=(first, second), columns=(KEY,), values=(repr(user),),
                   also=(f"{user!r} on lines {first}, {second}", *padded), min_problems=2 if padding else 1)
    return mutate


def padded_key(pattern: str, *lines_padded: int) -> Mutation:
    """The user_id of each line wrapped as `pattern` says ("  {}"): a known user once trimmed, refused as written."""
    def mutate(data: bytes) -> Bad:
        lines = Lines(data)
        written = [pattern.format(lines.get(line, KEY)) for line in lines_padded]
        for line, value in zip(lines_padded, written, strict=True):
            lines.set(line, KEY, value)
        listed = ", ".join(f"line {line} {value!r}" for line, value in zip(lines_padded, written, strict=True))
        return Bad(lines.dump(), lines=lines_padded, columns=(KEY,),
                   also=(f"{len(written)} padded user_id(s) (surrounding whitespace): {listed}",))
    return mutate


def unknown_user(value: str, line: int = 8) -> Mutation:
    def mutate(data: bytes) -> Bad:
        lines = Lines(data)
        lines.set(line, KEY, value)
        return Bad(lines.dump(), lines=(line,), columns=(KEY,), values=(f"line {line} {value!r}",),
                   also=(f"not in table {USERS}",))
    return mutate


def raw_bytes_in_cell(column: str, insert: bytes, line: int = 5) -> Mutation:
    """Bytes that are not valid UTF-8 text (or a NUL) inserted in the middle of one cell."""
    def mutate(data: bytes) -> Bad:
        lines = Lines(data)
        old = lines.get(line, column)
        lines.set(line, column, old[:2].encode() + insert + old[2:].encode())
        escaped = f"\\x{insert[0]:02x}"  # how the message writes the byte inside the value
        return Bad(lines.dump(), lines=(line,), columns=(column,),
                   values=(f"0x{insert[0]:02x}", f"'{old[:2]}{escaped}{old[2:]}'"))
    return mutate


def too_many_fields(extra: str, line: int = 5) -> Mutation:
    def mutate(data: bytes) -> Bad:
        lines = Lines(data)
        lines.cells[line - 1].append(extra.encode())
        return Bad(lines.dump(), lines=(line,), columns=(f"column {len(lines.header) + 1}",), values=(repr(extra),),
                   also=("extra data",))
    return mutate


def too_few_fields(line: int = 5) -> Mutation:
    def mutate(data: bytes) -> Bad:
        lines = Lines(data)
        dropped = lines.header[-1]
        del lines.cells[line - 1][-1]
        shown = b",".join(lines.cells[line - 1]).decode()
        return Bad(lines.dump(), lines=(line,), columns=(dropped,), values=(shown,), also=("missing data",))
    return mutate


def unterminated_quote(column: str, line: int = 5) -> Mutation:
    def mutate(data: bytes) -> Bad:
        lines = Lines(data)
        old = lines.set(line, column, b'"' + lines.get(line, column).encode())
        return Bad(lines.dump(), lines=(line,), columns=(column,), values=('"' + old,), also=("unterminated",))
    return mutate


def over_cap(data: bytes) -> Bad:
    cap = 4096
    assert len(data) > 20 * cap
    return Bad(data, values=(f"{len(data)} bytes", f"{cap}-byte cap"), also=("STREAMFLOW_MAX_FILE_BYTES",), cap=cap)


def several_errors(data: bytes) -> Bad:
    """Five different problems in one subscriptions file: every one is reported."""
    lines = Lines(data)
    lines.set(3, "months_active", "12x")
    lines.set(4, "paperless_billing", "maybe")
    lines.set(6, "monthly_fee", "abc")
    lines.set(7, KEY, "")
    user = lines.get(9, KEY)
    lines.set(11, KEY, user)
    lines.set(13, KEY, "0000-NOBODY")
    return Bad(lines.dump(), lines=(3, 4, 6, 7, 9, 11, 13),
               columns=("months_active", "paperless_billing", "monthly_fee", KEY),
               values=("line 3 '12x'", "line 4 'maybe'", "line 6 'abc'", "line 7 ''", f"{user!r} on lines 9, 11",
                       "line 13 '0000-NOBODY'"),
               min_problems=5)


BAD_CASES = [
    # the file itself
    pytest.param(USERS, missing_file, id="missing-file"),
    pytest.param(USERS, empty_file, id="empty-file-0-bytes"),
    pytest.param("subscriptions", header_only, id="header-only"),
    pytest.param("subscriptions", over_cap, id="file-over-size-cap"),
    # the header
    pytest.param(USERS, unknown_column("loyalty_tier", "gold"), id="unknown-column"),
    pytest.param("labels", missing_column(KEY), id="missing-user_id-column"),
    pytest.param("subscriptions", missing_column("monthly_fee"), id="missing-required-column-monthly_fee"),
    pytest.param(USERS, missing_column("signup_date"), id="missing-suite-required-column-signup_date"),
    pytest.param(USERS, duplicated_column("has_family"), id="duplicated-column"),
    pytest.param("subscriptions", renamed_column("monthly_fee", "monthly_fees"), id="renamed-column-monthly_fees"),
    pytest.param("labels", renamed_column(KEY, "User_ID"), id="renamed-column-case-User_ID"),
    pytest.param("payments_agg_90d", header_trailing_comma, id="header-trailing-comma"),
    pytest.param(USERS, header_cell("user_gender", b"user_g\xe9nder", "\\xe9"), id="header-not-utf8"),
    pytest.param(USERS, header_cell("user_gender", INJECTION.encode(), repr(INJECTION)), id="header-sql-injection"),
    pytest.param("labels", header_cell("churn_label", b'"x""; DROP TABLE users; --"', repr(INJECTION)),
                 id="header-sql-injection-quoted"),
    # values that do not parse as their column's type
    pytest.param(USERS, bad_value("has_family", "maybe"), id="bad-boolean-maybe"),
    pytest.param("labels", bad_value("churn_label", "Truee", line=17), id="bad-boolean-Truee"),
    pytest.param("subscriptions", bad_value("months_active", "12x"), id="bad-integer-12x"),
    pytest.param("usage_agg_30d", bad_value("skips_7d", "3.5", line=9), id="bad-integer-3.5"),
    pytest.param("payments_agg_90d", bad_value("failed_payments_90d", "99999999999"), id="bad-integer-overflow"),
    pytest.param("subscriptions", bad_value("monthly_fee", "abc", line=2), id="bad-numeric-abc"),
    pytest.param("support_agg_90d", bad_value("ticket_avg_resolution_hrs_90d", "1.2.3"), id="bad-numeric-1.2.3"),
    pytest.param(USERS, bad_value("signup_date", "2022-02-30"), id="bad-date-2022-02-30"),
    pytest.param(USERS, bad_value("signup_date", "05/02/2022", line=6), id="bad-date-not-iso-05.02.2022"),
    # keys
    pytest.param(USERS, duplicate_key(4, 9), id="duplicate-user_id"),
    pytest.param("labels", duplicate_key(3, 12, padding=" "), id="duplicate-user_id-after-trim"),
    pytest.param(USERS, padded_key("  {}", 4), id="padded-user_id-leading"),
    pytest.param("usage_agg_30d", padded_key("{} ", 6, 15), id="padded-user_id-trailing"),
    pytest.param("subscriptions", padded_key(" {} ", 3, 7, 11), id="padded-user_id-both-sides"),
    pytest.param(USERS, padded_key("\t{}", 5), id="padded-user_id-tab"),
    pytest.param("labels", padded_key("{}\u00a0", 9), id="padded-user_id-no-break-space"),
    pytest.param("subscriptions", bad_value(KEY, "", line=6), id="blank-user_id"),
    pytest.param("usage_agg_30d", bad_value(KEY, "   ", line=7), id="whitespace-only-user_id"),
    pytest.param(USERS, bad_value(KEY, "\t\u00a0", line=3), id="tab-and-no-break-space-only-user_id"),
    pytest.param("labels", unknown_user("0000-NOTAUSER"), id="unknown-user_id-labels"),
    pytest.param("usage_agg_30d", unknown_user("9999-ZZZZZ", line=20), id="unknown-user_id-usage"),
    pytest.param("labels", unknown_user("x'); DROP TABLE users; --", line=4), id="user_id-sql-injection"),
    # bytes and shape of a data line
    pytest.param("subscriptions", raw_bytes_in_cell("contract_type", b"\xff"), id="non-utf8-data"),
    pytest.param(USERS, raw_bytes_in_cell("user_gender", b"\x00", line=10), id="nul-byte-data"),
    pytest.param("payments_agg_90d", too_many_fields("7"), id="too-many-fields"),
    pytest.param("usage_agg_30d", too_few_fields(), id="too-few-fields"),
    pytest.param("subscriptions", unterminated_quote("contract_type"), id="unterminated-quote"),
    # all at once
    pytest.param("subscriptions", several_errors, id="several-errors-all-reported"),
]


# --------------------------------------------------------------------------- helpers


def settled_hashes(conn: psycopg.Connection) -> dict[str, str]:
    """`live_hashes`, then end the read transaction so `apply_file` gets an idle connection."""
    hashes = live_hashes(conn)
    conn.commit()
    return hashes


def write_month_file(tmp_path, table: Table, data: bytes | None):
    path = tmp_path / "month_x" / table.file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is not None:
        path.write_bytes(data)
    return path


def assert_names(message: str, bad: Bad, path) -> None:
    assert str(path) in message
    for line in bad.lines:
        assert re.search(rf"\blines? (?:\d+, )*{line}\b", message), f"line {line} not named in:\n{message}"
    for expected in (*bad.columns, *bad.values, *bad.also):
        assert expected in message, f"{expected!r} not in:\n{message}"


@pytest.fixture
def loaded(conn, seeds):
    """The warehouse with the real month_000 in every live table."""
    load_month(conn, seeds, MONTH)
    return conn


def empty_target(conn, table: Table) -> None:
    """Empty the table a bad file is aimed at (and, for users, what references it): a first load."""
    conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.Identifier(table.name)))
    conn.commit()


# --------------------------------------------------------------------------- tests


def test_corpus_is_large_enough():
    assert len(BAD_CASES) >= 25


@pytest.mark.parametrize("target", ["loaded", "empty"])
@pytest.mark.parametrize(("table_name", "mutate"), BAD_CASES)
def test_bad_input_is_refused_and_nothing_changes(loaded, seeds, tmp_path, monkeypatch, table_name, mutate, target):
    """Over a loaded table (the staged MERGE) and into an empty one (the first load's direct COPY,
    which must fall back and give the very same diagnosis)."""
    conn, table = loaded, TABLES_BY_NAME[table_name]
    if target == "empty":
        empty_target(conn, table)
    bad = mutate(with_canary((seeds / MONTH / table.file_name).read_bytes(), table))
    path = write_month_file(tmp_path, table, bad.data)
    if bad.cap is not None:
        monkeypatch.setenv("STREAMFLOW_MAX_FILE_BYTES", str(bad.cap))
    before = settled_hashes(conn)

    with pytest.raises((ContractViolation, MissingInput)) as caught:
        apply_file(conn, table, path)

    error = caught.value
    assert type(error) is bad.error
    assert_names(str(error), bad, path)
    if isinstance(error, ContractViolation):
        assert error.path == str(path)
        assert len(error.problems) >= bad.min_problems, error.problems
    # the write step leaves the connection as it found it: idle, usable, nothing half-done.
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert live_hashes(conn) == before


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_canary_alone_is_loaded(loaded, seeds, tmp_path, table):
    """The control of the test above: the canary by itself does change the live table."""
    conn = loaded
    path = write_month_file(tmp_path, table, with_canary((seeds / MONTH / table.file_name).read_bytes(), table))
    before = settled_hashes(conn)

    result = apply_file(conn, table, path)

    assert (result.rows, result.inserted, result.updated) == (ROWS, 0, 1)
    after = live_hashes(conn)
    assert after[table.name] != before[table.name]
    assert {k: v for k, v in after.items() if k != table.name} == {k: v for k, v in before.items() if k != table.name}


@pytest.mark.parametrize("table_name", [USERS, "labels"])
def test_sql_injection_header_leaves_users_intact(loaded, seeds, tmp_path, table_name):
    conn, table = loaded, TABLES_BY_NAME[table_name]
    lines = Lines((seeds / MONTH / table.file_name).read_bytes())
    lines.rename(lines.header[-1], INJECTION)
    path = write_month_file(tmp_path, table, lines.dump())
    conn.commit()

    with pytest.raises(ContractViolation, match=re.escape(repr(INJECTION))):
        apply_file(conn, table, path)

    assert conn.execute("SELECT to_regclass('public.users') IS NOT NULL").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == ROWS


# --------------------------------------------------------------------------- accepted without fuss


def as_text_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


def to_csv(rows: list[list[str]], quoting: int = csv.QUOTE_MINIMAL, terminator: str = "\n") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, quoting=quoting, lineterminator=terminator).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def booleans_as(true: str, false: str) -> Callable[[bytes, Table], bytes]:
    def rewrite(data: bytes, table: Table) -> bytes:
        rows = as_text_rows(data)
        flags = [i for i, name in enumerate(rows[0]) if table.column(name).pg_type == "boolean"]
        assert flags, f"{table.name} has no boolean column"
        for row in rows[1:]:
            for i in flags:
                row[i] = {"True": true, "False": false, "": ""}[row[i]]
        return to_csv(rows)
    return rewrite


def with_bom(data: bytes, table: Table) -> bytes:
    return b"\xef\xbb\xbf" + data


def with_crlf(data: bytes, table: Table) -> bytes:
    return data.replace(b"\n", b"\r\n")


def all_quoted(data: bytes, table: Table) -> bytes:
    return to_csv(as_text_rows(data), quoting=csv.QUOTE_ALL)


def everything_at_once(data: bytes, table: Table) -> bytes:
    mixed = booleans_as("YES", "no")(data, table)
    return b"\xef\xbb\xbf" + to_csv(as_text_rows(mixed), quoting=csv.QUOTE_ALL, terminator="\r\n")


WITH_BOOLEANS = [t.name for t in TABLES if any(c.pg_type == "boolean" for c in t.columns)]
ACCEPTED = (
    [pytest.param(rewrite, t.name, id=f"{name}-{t.name}") for name, rewrite in
     (("bom", with_bom), ("crlf", with_crlf), ("all-quoted", all_quoted)) for t in TABLES]
    + [pytest.param(booleans_as(true, false), name, id=f"{true}-{false}-{name}") for true, false in
       (("true", "false"), ("t", "f"), ("1", "0"), ("yes", "no"), ("YES", "No"), ("TrUe", "fAlSe"))
       for name in WITH_BOOLEANS]
    + [pytest.param(everything_at_once, "subscriptions", id="bom+crlf+quoted+YES-no-subscriptions")]
)


@pytest.mark.parametrize(("rewrite", "table_name"), ACCEPTED)
def test_accepted_variants_load_identically(conn, seeds, tmp_path, rewrite, table_name):
    """Over the original load nothing is inserted or updated; into an empty table, the same content hash."""
    table, users = TABLES_BY_NAME[table_name], TABLES_BY_NAME[USERS]
    original = seeds / MONTH / table.file_name
    if table.depends_on_users:
        apply_file(conn, users, seeds / MONTH / users.file_name)
    apply_file(conn, table, original)
    expected = settled_hashes(conn)
    variant = rewrite(original.read_bytes(), table)
    assert variant != original.read_bytes()
    path = write_month_file(tmp_path, table, variant)

    over = apply_file(conn, table, path)

    assert (over.rows, over.inserted, over.updated, over.unchanged) == (ROWS, 0, 0, ROWS)
    assert live_hashes(conn) == expected
    conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.Identifier(table.name)))
    conn.commit()

    fresh = apply_file(conn, table, path)

    assert (fresh.rows, fresh.inserted, fresh.updated) == (ROWS, ROWS, 0)
    assert table_hash(conn, table.name) == expected[table.name]


# Where a lone \. line sits, and the line number the error must name (header = line 1).
END_MARKERS = {
    "first-data-line": (lambda lines: [lines[0], "\\.", *lines[1:]], 2),
    "middle": (lambda lines: [*lines[:100], "\\.", *lines[100:]], 101),
    "last-line-unterminated": (lambda lines: [*lines, "\\."], ROWS + 2),
}


@pytest.mark.parametrize("target", ["loaded", "empty"])
@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize(("place", "line"), END_MARKERS.values(), ids=END_MARKERS.keys())
def test_a_lone_end_of_data_marker_is_refused(loaded, seeds, tmp_path, target, ending, place, line):
    """PostgreSQL before 18 would stop reading at it and drop the rest without an error."""
    conn, table = loaded, TABLES_BY_NAME["labels"]
    if target == "empty":
        empty_target(conn, table)
    lines = place((seeds / MONTH / table.file_name).read_text().splitlines())
    data = ending.join(lines) + ("" if lines[-1] == "\\." else ending)
    path = write_month_file(tmp_path, table, data.encode())
    before = settled_hashes(conn)

    with pytest.raises(ContractViolation, match=re.escape(f"line {line}: a line holding only \\. ")):
        apply_file(conn, table, path)

    assert live_hashes(conn) == before
