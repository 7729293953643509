"""The tamper-evident audit trail: append-only rows chained by SHA-256."""

from control.audit.chain import (
    GENESIS_HASH,
    AuditRecord,
    ChainVerifier,
    Head,
    VerifyResult,
    parse_head,
    row_hash,
    verify_rows,
)
from control.audit.export import ExportFormat, export_chunks, format_records, parse_export
from control.audit.reader import iter_records, read_head, read_page, verify_database
from control.audit.trail import append_audit

__all__ = [
    "GENESIS_HASH",
    "AuditRecord",
    "ChainVerifier",
    "ExportFormat",
    "Head",
    "VerifyResult",
    "append_audit",
    "export_chunks",
    "format_records",
    "iter_records",
    "parse_export",
    "parse_head",
    "read_head",
    "read_page",
    "row_hash",
    "verify_database",
    "verify_rows",
]
