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
from control.audit.trail import AuditRow, append_audit, append_audits

__all__ = [
    "GENESIS_HASH",
    "AuditRecord",
    "AuditRow",
    "ChainVerifier",
    "ExportFormat",
    "Head",
    "VerifyResult",
    "append_audit",
    "append_audits",
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
