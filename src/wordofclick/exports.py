"""Writing tables for people: CSV cells that spreadsheets will not run, and reading them back."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# A cell starting with one of these is run as a formula by Excel, LibreOffice and Google Sheets
# (OWASP "CSV injection"); tab and carriage return start one too in some of them.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# What csv_safe puts before such a cell.
GUARD = "'"


def csv_safe(value: str) -> str:
    """Neutralise a cell that a spreadsheet would read as a formula by prefixing a quote.

    >>> csv_safe('=HYPERLINK("http://x")')
    '\\'=HYPERLINK("http://x")'
    >>> csv_safe("-3 stars")
    "'-3 stars"
    """
    if value and value.startswith(FORMULA_PREFIXES):
        return GUARD + value
    return value


def csv_unsafe(value: str) -> str:
    """Undo :func:`csv_safe`: drop a leading quote only when a formula prefix follows it.

    >>> csv_unsafe("'+Plus Mobile")
    '+Plus Mobile'
    >>> csv_unsafe("'Tis the season")
    "'Tis the season"
    """
    if value and value.startswith(GUARD) and value[1:2] and value[1:2] in FORMULA_PREFIXES:
        return value[1:]
    return value


def _plain_strings(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array | None:
    """``column`` as string or large_string if it holds text (dictionary-encoded and string_view
    included), else None."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        value_type = kind.value_type
        if pa.types.is_large_string(value_type):
            return column.cast(pa.large_string())
        if pa.types.is_string(value_type) or pa.types.is_string_view(value_type):
            return column.cast(pa.string())
        return None
    if pa.types.is_string_view(kind):
        return column.cast(pa.string())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column
    return None


def csv_safe_table(table: pa.Table) -> pa.Table:
    """Apply :func:`csv_safe` to every string column of ``table`` (numbers are left alone).

    Dictionary-encoded and string_view text columns are cast to plain strings first, so that
    they are guarded too.
    """
    columns = []
    for column in table.columns:
        text = _plain_strings(column)
        if text is not None:
            starts = pc.starts_with(text, FORMULA_PREFIXES[0])
            for prefix in FORMULA_PREFIXES[1:]:
                starts = pc.or_(starts, pc.starts_with(text, prefix))
            guard, empty = pa.scalar(GUARD, text.type), pa.scalar("", text.type)
            column = pc.if_else(starts, pc.binary_join_element_wise(guard, text, empty), text)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def csv_unsafe_table(table: pa.Table) -> pa.Table:
    """Apply :func:`csv_unsafe` to every string column of ``table`` (the inverse of
    :func:`csv_safe_table` on its text columns)."""
    columns = []
    for column in table.columns:
        text = _plain_strings(column)
        if text is not None:
            guarded = pc.and_(
                pc.starts_with(text, GUARD),
                pc.is_in(pc.utf8_slice_codeunits(text, 1, 2),
                         value_set=pa.array(FORMULA_PREFIXES, type=text.type)),
            )
            column = pc.if_else(guarded, pc.utf8_slice_codeunits(text, 1), text)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _sql_literal(char: str) -> str:
    return f"chr({ord(char)})" if not char.isprintable() else "'" + char.replace("'", "''") + "'"


def csv_unsafe_sql(expression: str) -> str:
    """A DuckDB expression applying :func:`csv_unsafe` to the VARCHAR ``expression``.

    >>> csv_unsafe_sql("company").startswith("CASE WHEN starts_with(company, '''')")
    True
    """
    prefixes = ", ".join(_sql_literal(prefix) for prefix in FORMULA_PREFIXES)
    return (
        f"CASE WHEN starts_with({expression}, {_sql_literal(GUARD)}) "
        f"AND substring({expression}, 2, 1) IN ({prefixes}) "
        f"THEN substring({expression}, 2) ELSE {expression} END"
    )
