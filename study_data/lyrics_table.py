"""Reading a lyrics table: its bytes decoded, its separator (CSV or TSV) and its columns found by name (any case)
or named by the column flags, into the Kaggle layout study_data/lyrics.py splits (bad input: one UserError)."""

import csv
import io
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from lyrics_cifar_search.suite_common import UserError

COLUMN_CANDIDATES = {
    "text": ("lyrics", "text"),
    "label": ("genre", "target", "label"),
    "artist": ("artist",),
    "language": ("language",),
}


def _decode(path, raw):
    if not raw.strip():
        raise UserError(f"data file {path} is empty: pass a CSV or TSV with a header row and lyrics rows")
    if b"\x00" in raw[:65536]:
        raise UserError(f"data file {path} is binary, not a CSV/TSV table: pass a lyrics CSV or TSV")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"data file {path} is not UTF-8 text (bad byte at offset {e.start}): "
                        "re-save it as UTF-8") from None


def _find_column(columns, role, explicit):
    lower = {c.strip().lower(): c for c in columns}
    if explicit:
        if explicit in columns:
            return explicit
        if explicit.lower() in lower:
            return lower[explicit.lower()]
        return None
    for name in COLUMN_CANDIDATES[role]:
        if name in lower:
            return lower[name]
    return None


def _header_names(header, sep):
    """A header line's column names (none if the csv module cannot split it, e.g. a field over its limit)."""
    try:
        return next(csv.reader([header], delimiter=sep), [])
    except csv.Error:
        return []


def header_has_artist(path: str | Path, columns: Optional[dict] = None) -> bool:
    """Whether a table's header names an artist column (read before any row is prepared)."""
    columns = columns or {}
    if not Path(path).is_file():
        return True  # loading the table says what is wrong
    try:
        with open(path, "rb") as f:
            header = f.readline(1 << 20).decode("utf-8-sig", errors="replace")
    except OSError:
        return True
    for sep in ("\t", ",", ";", "|"):
        names = _header_names(header.rstrip("\r\n"), sep)
        if _find_column(names, "text", columns.get("text")) and _find_column(names, "label", columns.get("label")):
            return _find_column(names, "artist", columns.get("artist")) is not None
    return True  # no recognisable header: loading the table says why


def parse_table(path: str | Path, raw: bytes, columns: Optional[dict] = None) -> pd.DataFrame:
    columns = columns or {}
    text = _decode(path, raw)
    header = text.split("\n", 1)[0]
    # The extension decides first; a header that only splits on another
    # delimiter (a TSV saved as .csv, say) decides otherwise.
    first = "\t" if Path(path).suffix.lower() in (".tsv", ".tab") else ","
    seps = [first] + [s for s in (",", "\t", ";", "|") if s != first]
    sep = first
    for s in seps:
        names = _header_names(header, s)
        if _find_column(names, "text", columns.get("text")) and _find_column(names, "label", columns.get("label")):
            sep = s
            break
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, csv.Error) as e:
        raise UserError(f"data file {path} is not a readable CSV/TSV table: {str(e).splitlines()[0]}") from None
    if len(df) == 0:
        raise UserError(f"data file {path} has a header but no rows: pass a table with lyrics rows")
    found = {}
    for role in ("text", "label", "artist", "language"):
        found[role] = _find_column(list(df.columns), role, columns.get(role))
        if columns.get(role) and found[role] is None:
            raise UserError(f"column {columns[role]!r} (--{role}-column) is not in {path}; "
                            f"its columns are: {', '.join(map(str, df.columns))}")
    for role, flag in (("text", "lyrics/text"), ("label", "genre/target/label")):
        if found[role] is None:
            raise UserError(f"{path} has no {role} column (looked for {flag}, any case); its columns are: "
                            f"{', '.join(map(str, df.columns))}. Name it with --{role}-column")
    out = pd.DataFrame({
        "row": np.arange(len(df)),  # follows the row through dropping, sampling and splitting
        "text": df[found["text"]].astype(str),
        "label": df[found["label"]].astype(str).str.strip(),
        "artist": df[found["artist"]].astype(str).str.strip() if found["artist"] else "",
        "language": df[found["language"]].astype(str).str.strip() if found["language"] else "",
    })
    out.attrs["has_artist"] = found["artist"] is not None
    return out
