"""The audit chain's pure parts: canonical encoding, verification, redaction, export format."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
from collections.abc import Iterator

import pytest

from control.audit import (
    GENESIS_HASH,
    AuditRecord,
    ExportFormat,
    Head,
    format_records,
    parse_export,
    parse_head,
    row_hash,
    verify_rows,
)
from control.audit.chain import canonical_encoding, canonical_params
from control.audit.redact import MASK, body_params, redact


def make_chain(n: int, *, start: int = 1, prev: str = GENESIS_HASH) -> list[AuditRecord]:
    rows: list[AuditRecord] = []
    for seq in range(start, start + n):
        row = AuditRecord(
            seq=seq,
            ts_ms=1_700_000_000_000 + seq,
            actor=f"user{seq % 3}",
            action="http.POST /api/v1/x",
            target=f"site=s{seq}",
            params=canonical_params({"n": seq, "名": "值"}),
            result="200",
            prev_hash=prev,
            hash="",
        )
        row = dataclasses.replace(row, hash=row_hash(row))
        rows.append(row)
        prev = row.hash
    return rows


def rehash(row: AuditRecord, **changes: object) -> AuditRecord:
    changed = dataclasses.replace(row, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(changed, hash=row_hash(changed))


# -- the canonical encoding -----------------------------------------------------------------


def test_canonical_encoding_is_the_documented_json_array() -> None:
    row = AuditRecord(
        seq=7,
        ts_ms=1_700_000_000_123,
        actor="李雷",
        action="http.POST /api/v1/sirens/{siren}/test",
        target="siren=s-1",
        params=canonical_params({"b": [1, 2.5, None, True], "a": 'x"y'}),
        result="202",
        prev_hash="ab" * 32,
        hash="",
    )
    expected = (
        '[7,1700000000123,"李雷","http.POST /api/v1/sirens/{siren}/test","siren=s-1",'
        '"{\\"a\\":\\"x\\\\\\"y\\",\\"b\\":[1,2.5,null,true]}","202",'
        f'"{"ab" * 32}"]'
    ).encode()
    assert row.params == '{"a":"x\\"y","b":[1,2.5,null,true]}'
    encoded = canonical_encoding(
        **{k: v for k, v in dataclasses.asdict(row).items() if k != "hash"}
    )
    assert encoded == expected
    assert row_hash(row) == hashlib.sha256(expected).hexdigest()


def test_canonical_params_sorted_compact_utf8_and_total() -> None:
    assert canonical_params(None) == "{}"
    assert canonical_params({"z": 1, "a": {"y": 2, "b": 3}}) == '{"a":{"b":3,"y":2},"z":1}'
    assert canonical_params({"名": "值"}) == '{"名":"值"}'
    # Unusual values are written as text rather than failing the append.
    assert canonical_params({"at": dataclasses}) == f'{{"at":"{dataclasses}"}}'
    # A lone surrogate (legal in a JSON body) cannot be UTF-8: replaced before it is stored.
    assert canonical_params({"k": "\ud800"}) == '{"k":"?"}'


def test_genesis_and_every_link() -> None:
    rows = make_chain(5)
    assert rows[0].prev_hash == GENESIS_HASH == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert all(len(r.hash) == 64 and r.hash == r.hash.lower() for r in rows)


# -- verification --------------------------------------------------------------------------


def test_intact_chain_verifies_and_reports_its_head() -> None:
    rows = make_chain(10)
    result = verify_rows(rows)
    assert (result.ok, result.checked, result.first_bad_seq) == (True, 10, None)
    assert result.head == Head(10, rows[-1].hash)
    assert verify_rows(rows, Head(10, rows[-1].hash)).ok
    assert verify_rows(rows, Head(4, rows[3].hash)).ok


def test_empty_chain() -> None:
    assert verify_rows([]).ok
    result = verify_rows([], Head(3, "a" * 64))
    assert (result.ok, result.first_bad_seq) == (False, 1)


def test_edited_field_names_the_row() -> None:
    rows = make_chain(10)
    rows[3] = dataclasses.replace(rows[3], result="403")
    result = verify_rows(rows)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 3)
    assert "row 4 was altered" in result.reason


@pytest.mark.parametrize("field", ["ts_ms", "actor", "action", "target", "params", "prev_hash"])
def test_every_field_is_covered_by_the_hash(field: str) -> None:
    rows = make_chain(3)
    value: object = 1 if field == "ts_ms" else "x"
    rows[1] = dataclasses.replace(rows[1], **{field: value})  # type: ignore[arg-type]
    assert verify_rows(rows).first_bad_seq == 2


def test_deleted_rows_name_the_first_missing_seq() -> None:
    rows = make_chain(10)
    result = verify_rows(rows[:3] + rows[4:])
    assert (result.first_bad_seq, result.checked) == (4, 3)
    assert "row 4 is missing" in result.reason
    assert verify_rows(rows[:3] + rows[6:]).reason.startswith("rows 4..6 are missing")
    assert verify_rows(rows[1:]).first_bad_seq == 1


def test_deleted_row_with_renumbering() -> None:
    rows = make_chain(10)
    renumbered = rows[:3] + [dataclasses.replace(r, seq=r.seq - 1) for r in rows[4:]]
    result = verify_rows(renumbered)
    assert result.first_bad_seq == 4
    assert "removed and the rest renumbered" in result.reason


def test_inserted_forged_row_is_named() -> None:
    rows = make_chain(10)
    forged = rehash(rows[4], actor="mallory", prev_hash=rows[3].hash)  # seq 5, a valid hash
    shifted = [dataclasses.replace(r, seq=r.seq + 1) for r in rows[4:]]
    result = verify_rows([*rows[:4], forged, *shifted])
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert "row 5 was inserted" in result.reason


def test_inserted_first_row_is_named() -> None:
    rows = make_chain(3)
    forged = rehash(rows[0], actor="mallory")
    shifted = [dataclasses.replace(r, seq=r.seq + 1) for r in rows]
    assert verify_rows([forged, *shifted]).first_bad_seq == 1


def test_swapped_rows_name_the_first() -> None:
    rows = make_chain(10)
    a, b = rows[2], rows[6]
    rows[2] = dataclasses.replace(b, seq=3)
    rows[6] = dataclasses.replace(a, seq=7)
    result = verify_rows(rows)
    assert result.first_bad_seq == 3


def test_edited_and_rehashed_row_is_named_by_its_successor() -> None:
    rows = make_chain(10)
    rows[3] = rehash(rows[3], actor="mallory")
    result = verify_rows(rows)
    assert (result.first_bad_seq, result.checked) == (4, 4)
    assert "row 4 was altered and re-hashed" in result.reason


def test_truncation_needs_the_recorded_head() -> None:
    rows = make_chain(10)
    head = Head(10, rows[-1].hash)
    assert verify_rows(rows[:8]).ok  # the chain alone cannot tell
    result = verify_rows(rows[:8], head)
    assert (result.ok, result.first_bad_seq) == (False, 9)
    assert "rows 9..10 are missing from the end" in result.reason


def test_rewrite_from_a_row_on_is_caught_only_by_the_head() -> None:
    rows = make_chain(10)
    # Rebuild every hash from row 3 on, as an attacker with write access could.
    tail: list[AuditRecord] = []
    prev = rows[1].hash
    for r in rows[2:]:
        changed = rehash(r, actor="mallory" if r.seq == 3 else r.actor, prev_hash=prev)
        tail.append(changed)
        prev = changed.hash
    forged = rows[:2] + tail
    assert verify_rows(forged).ok
    result = verify_rows(forged, Head(10, rows[-1].hash))
    assert (result.ok, result.first_bad_seq) == (False, 10)
    assert "rewritten at or before row 10" in result.reason


def test_verification_stops_reading_at_the_first_bad_row() -> None:
    rows = make_chain(10)
    rows[1] = dataclasses.replace(rows[1], actor="x")
    read: list[int] = []

    def stream() -> Iterator[AuditRecord]:
        for r in rows:
            read.append(r.seq)
            yield r

    assert verify_rows(stream()).first_bad_seq == 2
    assert read == [1, 2]


def test_parse_head() -> None:
    digest = "AB" * 32
    assert parse_head(f" 12:{digest} ") == Head(12, digest.lower())
    assert str(Head(12, "ab" * 32)) == f"12:{'ab' * 32}"
    for bad in ["", "12", f"0:{digest}", f"x:{digest}", "12:abc", f"12:{'g' * 64}"]:
        with pytest.raises(ValueError, match="SEQ:HASH"):
            parse_head(bad)


# -- what a request body contributes --------------------------------------------------------


def test_redact_masks_secret_keys_at_any_depth() -> None:
    body = {
        "username": "ops",
        "Password": "p",
        "new_password": "q",
        "nested": {"client_secret": "s", "items": [{"API-Key": "k", "keep": 1}]},
        "access_token": "t",
        "Authorization": "Bearer x",
        "passenger_count": 3,
    }
    assert redact(body) == {
        "username": "ops",
        "Password": MASK,
        "new_password": MASK,
        "nested": {"client_secret": MASK, "items": [{"API-Key": MASK, "keep": 1}]},
        "access_token": MASK,
        "Authorization": MASK,
        "passenger_count": 3,
    }


def test_body_params() -> None:
    assert body_params(b"", "application/json") == {}
    assert body_params(b'{"password":"p","n":1}', "application/json; charset=utf-8") == {
        "password": MASK,
        "n": 1,
    }
    assert body_params(b"username=a&password=b", "application/x-www-form-urlencoded") == {
        "username": "a",
        "password": MASK,
    }
    assert body_params(b'[{"token":"t"}]', "application/json") == {"_body": [{"token": MASK}]}
    assert body_params(b'"secret-string"', "application/json") == {
        "_body": "15 bytes of application/json, not recorded"
    }
    assert body_params(b'{"x": NaN}', "application/json")["_body"] == (
        "10 bytes of application/json, not recorded"
    )
    assert body_params(b"\x00\x01", "application/octet-stream") == {
        "_body": "2 bytes of application/octet-stream, not recorded"
    }
    assert body_params(b"{", "application/json", complete=False) == {
        "_body": "1+ bytes, too large to record"
    }


# -- exports --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_export_round_trips_exactly(fmt: ExportFormat) -> None:
    rows = make_chain(2)
    # Quotes, commas, newlines, a spreadsheet formula: all must come back byte for byte.
    rows[1] = rehash(rows[1], actor='a,"b"\nc', target="=cmd|' /C calc'!A0")
    text = format_records(rows, fmt, header=True)
    parsed = list(parse_export(io.StringIO(text, newline=""), fmt))
    assert parsed == rows
    assert verify_rows(parsed).ok


def test_export_lines_carry_a_readable_time() -> None:
    line = format_records(make_chain(1), ExportFormat.jsonl, header=True)
    assert line.startswith('{"seq":1,"ts_ms":1700000000001,"time":"2023-11-14T22:13:20.001Z",')
    header = format_records([], ExportFormat.csv, header=True)
    assert header == "seq,ts_ms,time,actor,action,target,params,result,prev_hash,hash\n"


def test_malformed_export_names_the_record() -> None:
    with pytest.raises(ValueError, match="record 2"):
        list(
            parse_export(
                [format_records(make_chain(1), ExportFormat.jsonl, header=True), "{"],
                ExportFormat.jsonl,
            )
        )
