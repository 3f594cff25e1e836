"""Writing tables for people: CSV cells that spreadsheets will not execute."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# A cell starting with one of these is run as a formula by Excel, LibreOffice and Google Sheets
# (OWASP "CSV injection"); tab and carriage return start one too in some of them.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: str) -> str:
    """Neutralise a cell that a spreadsheet would read as a formula by prefixing a quote.

    >>> csv_safe('=HYPERLINK("http://x")')
    '\\'=HYPERLINK("http://x")'
    >>> csv_safe("-3 stars")
    "'-3 stars"
    """
    if value and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_safe_table(table: pa.Table) -> pa.Table:
    """Apply :func:`csv_safe` to every string column of ``table`` (numbers are left alone)."""
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            starts = pc.starts_with(column, FORMULA_PREFIXES[0])
            for prefix in FORMULA_PREFIXES[1:]:
                starts = pc.or_(starts, pc.starts_with(column, prefix))
            column = pc.if_else(starts, pc.binary_join_element_wise("'", column, ""), column)
        columns.append(column)
    return pa.table(columns, names=table.column_names)
