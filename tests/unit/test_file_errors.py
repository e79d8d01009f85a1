"""What a bad file's error says, before and after COPY: `header.read_header` and `copy_stream.copy_problem`.

Pure functions on files in tmp_path: no server. The integration tests load the same kinds of
damage through PostgreSQL; these pin the wording people read, line and column included.
"""

from __future__ import annotations

import pytest

from streamflow.copy_stream import copy_problem
from streamflow.errors import ContractViolation, MissingInput
from streamflow.header import read_header
from streamflow.registry import table

LABELS = table("labels")


def written(tmp_path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def problems_of(path, source=LABELS) -> list[str]:
    with pytest.raises(ContractViolation) as raised:
        read_header(path, source)
    assert str(raised.value).startswith(f"{path}: {len(raised.value.problems)} contract problem(s), nothing was written")
    return raised.value.problems


def test_a_good_header_gives_its_names_and_byte_length_a_bom_and_spaces_aside(tmp_path):
    path = written(tmp_path, "labels.csv", b"\xef\xbb\xbfuser_id, churn_label\r\n0001-A,True\r\n")
    assert read_header(path, LABELS) == (["user_id", "churn_label"], len(b"\xef\xbb\xbfuser_id, churn_label\r\n"))


def test_an_unknown_a_duplicated_and_a_missing_column_are_each_named_with_their_position(tmp_path):
    path = written(tmp_path, "labels.csv", b"user_id,churn,user_id\n")
    assert problems_of(path) == [
        "line 1, column 2: unknown column 'churn' (table labels has user_id, churn_label)",
        "line 1: column 'user_id' appears 2 times",
        "line 1: required column 'churn_label' is missing",
    ]


def test_an_empty_file_and_a_missing_file_say_so(tmp_path):
    assert problems_of(written(tmp_path, "labels.csv", b"\n")) == ["line 1: file is empty (no header row)"]
    with pytest.raises(MissingInput, match=r"labels.csv: file not found \(table labels\)"):
        read_header(tmp_path / "nowhere" / "labels.csv", LABELS)


def test_a_header_that_is_not_utf8_names_the_column_and_the_byte(tmp_path):
    path = written(tmp_path, "labels.csv", b"user_id,churn_\xe9label\n")
    assert problems_of(path) == [
        "line 1, column 2 (churn_\\xe9label): header is not UTF-8 (byte b'\\xe9' at offset 14)"]


def test_a_file_over_the_size_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMFLOW_MAX_FILE_BYTES", "10")
    path = written(tmp_path, "labels.csv", b"user_id,churn_label\n")
    assert problems_of(path) == ["file is 20 bytes, over the 10-byte cap (STREAMFLOW_MAX_FILE_BYTES)"]


@pytest.mark.parametrize(("body", "where"), [
    (b"0001-A,True,extra\n", "line 2, column 3: COPY said no (the header has 2 columns; extra value(s) 'extra')"),
    (b"0001-A,True\n0002-B\n", "line 3, column \"churn_label\": COPY said no (line '0002-B')"),
    (b"0001-A,True\n\"0002-B,True\n0003-C,False\n", "line 3, column \"user_id\": COPY said no"
     " (a quote opened on this line is not closed on it: '\"0002-B,True')"),
    (b"0001-A,Tr\x00ue\n", "line 2, column \"churn_label\": COPY said no (value 'Tr\\x00ue')"),
    (b"0001-A,True\n0002-\xff,False\n", "line 3, column \"user_id\": COPY said no (value '0002-\\xff')"),
], ids=["extra value", "short line", "unclosed quote", "NUL", "not UTF-8"])
def test_a_malformed_record_is_located_by_file_line_and_column_with_its_value(tmp_path, body, where):
    path = written(tmp_path, "labels.csv", b"user_id,churn_label\n" + body)
    assert copy_problem(ValueError("COPY said no"), path, ["user_id", "churn_label"]) == where


def test_a_well_formed_file_falls_back_to_copys_own_line_counted_from_the_header(tmp_path):
    """A type error COPY found (a well-formed record): its line moves one down, to count the header."""
    path = written(tmp_path, "usage.csv", b"user_id,watch_hours_30d\n0001-A,abc\n")

    class Diag:
        message_primary = 'invalid input syntax for type numeric: "abc"'
        context = "COPY usage_agg_30d, line 1, column watch_hours_30d: \"abc\""

    class CopyError(Exception):
        diag = Diag()

    assert copy_problem(CopyError(), path, ["user_id", "watch_hours_30d"]) == (
        'line 2, column "watch_hours_30d": invalid input syntax for type numeric: "abc"')
