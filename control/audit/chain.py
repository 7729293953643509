"""The audit chain's canonical encoding, its hash, and verification. Pure: no IO.

Row ``n`` is hashed as SHA-256 over the UTF-8 bytes of the JSON array::

    [seq, ts_ms, actor, action, target, params, result, prev_hash]

written with no whitespace (``separators=(",", ":")``), non-ASCII characters as themselves
(``ensure_ascii=False``), where ``params`` is the stored *text* of the parameters (itself
canonical JSON: sorted keys, no whitespace) and ``prev_hash`` is the hex hash of row ``n-1``
(64 zeros for row 1). The hash is written as 64 lower-case hex digits.

Hashing the stored parameter text, not a re-encoding of the parsed object, means a verifier
in any language needs only string and integer encoding to recompute a hash, and that any byte
changed in the stored row changes the hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "GENESIS_HASH",
    "AuditRecord",
    "ChainRow",
    "ChainVerifier",
    "Head",
    "VerifyResult",
    "canonical_encoding",
    "canonical_params",
    "clean_text",
    "parse_head",
    "row_hash",
    "verify_rows",
]

GENESIS_HASH = "0" * 64


class ChainRow(Protocol):
    """What verification reads from a row: the stored model, an export line or a test row."""

    @property
    def seq(self) -> int: ...
    @property
    def ts_ms(self) -> int: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def params(self) -> str: ...
    @property
    def result(self) -> str: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


@dataclass(frozen=True)
class AuditRecord:
    """One row as read back (from the database or an export): plain, immutable data."""

    seq: int
    ts_ms: int
    actor: str
    action: str
    target: str
    params: str
    result: str
    prev_hash: str
    hash: str


def clean_text(value: str) -> str:
    """``value`` with lone surrogates replaced, so it encodes as UTF-8 (and PostgreSQL takes it).

    A JSON body may carry ``"\\ud800"``; what is stored must be exactly what is hashed.
    """
    return value.encode("utf-8", "replace").decode("utf-8")


def canonical_params(params: Mapping[str, object] | None) -> str:
    """The parameters as canonical JSON text: sorted keys, no whitespace, UTF-8 characters.

    Values JSON cannot hold (datetimes, UUIDs, ...) are written as their ``str()``: an audit row
    must never fail to be written because a caller passed an unusual type.
    """
    text = json.dumps(
        dict(params or {}),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=str,
    )
    return clean_text(text)


def canonical_encoding(
    *,
    seq: int,
    ts_ms: int,
    actor: str,
    action: str,
    target: str,
    params: str,
    result: str,
    prev_hash: str,
) -> bytes:
    """The exact bytes hashed for one row (see the module docstring)."""
    fields = [seq, ts_ms, actor, action, target, params, result, prev_hash]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def row_hash(row: ChainRow) -> str:
    """The SHA-256 (hex) a row should carry, from its contents and ``prev_hash``."""
    encoded = canonical_encoding(
        seq=row.seq,
        ts_ms=row.ts_ms,
        actor=row.actor,
        action=row.action,
        target=row.target,
        params=row.params,
        result=row.result,
        prev_hash=row.prev_hash,
    )
    return hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True)
class Head:
    """The last row of a chain, as recorded elsewhere to anchor it: ``SEQ:HASH``."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


def parse_head(text: str) -> Head:
    """``"1234:9f86d0..."`` as a Head; ValueError with a readable message otherwise."""
    seq_text, sep, digest = text.strip().partition(":")
    digest = digest.lower()
    if (
        not sep
        or not seq_text.isdigit()
        or int(seq_text) < 1
        or len(digest) != 64
        or any(c not in "0123456789abcdef" for c in digest)
    ):
        raise ValueError(
            f"expected head SEQ:HASH (a sequence number and 64 hex digits), got {text!r}"
        )
    return Head(int(seq_text), digest)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""
    # The last row that was read (None for an empty chain): record it to anchor the chain.
    head: Head | None = None


class ChainVerifier:
    """Checks rows fed in ``seq`` order, one at a time, so a chain of any length streams through.

    Each row must have the next sequence number, link to the previous row's hash, and carry
    the hash of its own contents. When a check fails, the verifier names the row that is most
    likely at fault, using the last two hashes it has seen:

    - a row whose own hash is wrong was edited (or moved: the sequence number is hashed);
    - a row that links to the row *two* back means the row between them was inserted;
    - a row whose own hash is right but whose link is wrong means the row before it was
      edited and given a fresh hash.
    """

    def __init__(self, expect_head: Head | None = None) -> None:
        self.expect_head = expect_head
        self.checked = 0
        self.failure: VerifyResult | None = None
        self._last: Head | None = None
        self._before_last: Head | None = None
        # The hash seen at the anchored sequence number, as the rows stream past.
        self._anchor_hash: str | None = None

    @property
    def broken(self) -> bool:
        return self.failure is not None

    def feed(self, row: ChainRow) -> bool:
        """Check one more row; False once the chain is broken (later rows are not read)."""
        if self.failure is not None:
            return False
        fault = self._check(row)
        if fault is not None:
            bad_seq, reason = fault
            self.failure = VerifyResult(False, self.checked, bad_seq, reason, self._last)
            return False
        self.checked += 1
        if self.expect_head is not None and row.seq == self.expect_head.seq:
            self._anchor_hash = row.hash
        self._before_last, self._last = self._last, Head(row.seq, row.hash)
        return True

    def _check(self, row: ChainRow) -> tuple[int, str] | None:
        last, before = self._last, self._before_last
        expected_seq = last.seq + 1 if last is not None else 1
        if row.seq > expected_seq:
            missing = _rows(expected_seq, row.seq - 1)
            return expected_seq, f"{missing} missing (deleted): the next row present is {row.seq}"
        if row.seq < expected_seq:
            return row.seq, f"row {row.seq} is out of order: expected {expected_seq}"
        expected_prev = last.hash if last is not None else GENESIS_HASH
        own_ok = row_hash(row) == row.hash
        if row.prev_hash == expected_prev:
            if own_ok:
                return None
            return row.seq, f"row {row.seq} was altered: its hash does not match its contents"
        assert last is not None  # row 1 carrying the genesis hash always links
        before_hash = before.hash if before is not None else GENESIS_HASH
        if row.prev_hash == before_hash:
            return last.seq, (
                f"row {last.seq} was inserted: row {row.seq} links to the row before it"
            )
        if own_ok:
            # Both rows carry the hash of their own contents: either row last.seq was edited
            # and given a fresh hash, or row row.seq was forged with a wrong link. The data
            # cannot tell which; the earlier row is the first one no later row vouches for.
            return last.seq, (
                f"rows {last.seq} and {row.seq} do not link: row {last.seq} was altered and"
                f" re-hashed, or row {row.seq} was forged"
            )
        return row.seq, (
            f"row {row.seq} was altered: neither its hash nor its link to row {last.seq} matches"
            " (or rows before it were removed and the rest renumbered)"
        )

    def finish(self) -> VerifyResult:
        """The verdict after the last row, checked against a head recorded earlier, if given.

        The chain alone cannot show that rows were cut from its end: a shorter chain is still a
        valid chain. A head recorded elsewhere (seq and hash) can.
        """
        if self.failure is not None:
            return self.failure
        last, expect_head = self._last, self.expect_head
        if expect_head is not None:
            if last is None or last.seq < expect_head.seq:
                end = last.seq if last is not None else 0
                return VerifyResult(
                    False,
                    self.checked,
                    end + 1,
                    f"the chain ends at row {end} but the recorded head is row {expect_head.seq}:"
                    f" {_rows(end + 1, expect_head.seq)} missing from the end (truncated)",
                    last,
                )
            if self._anchor_hash != expect_head.hash:
                return VerifyResult(
                    False,
                    self.checked,
                    expect_head.seq,
                    f"row {expect_head.seq} differs from the recorded head: the chain was"
                    f" rewritten at or before row {expect_head.seq}",
                    last,
                )
        return VerifyResult(True, self.checked, None, "", last)


def _rows(first: int, last: int) -> str:
    return f"row {first} is" if first == last else f"rows {first}..{last} are"


def verify_rows(rows: Iterable[ChainRow], expect_head: Head | None = None) -> VerifyResult:
    """Verify a whole chain given in ``seq`` order (the pure form of ``audit verify``)."""
    verifier = ChainVerifier(expect_head)
    for row in rows:
        if not verifier.feed(row):
            break
    return verifier.finish()
