"""Peacetime-to-wartime conversion (平战转换) of shelters: plans, orders, the timed and
verified workflow, site postures and reports (docs/conversion.md)."""

from control.conversions.errors import (
    Conflict,
    ConversionError,
    InvalidInput,
    NotAllowed,
    NotFound,
    PlanError,
    Unavailable,
)
from control.conversions.models import (
    Confirmation,
    Decision,
    OrderPublic,
    OrderRequest,
    PlanPublic,
)
from control.conversions.reports import ConversionReport, report_csv, report_html
from control.conversions.service import ConversionService

__all__ = [
    "Confirmation",
    "Conflict",
    "ConversionError",
    "ConversionReport",
    "ConversionService",
    "Decision",
    "InvalidInput",
    "NotAllowed",
    "NotFound",
    "OrderPublic",
    "OrderRequest",
    "PlanError",
    "PlanPublic",
    "Unavailable",
    "report_csv",
    "report_html",
]
