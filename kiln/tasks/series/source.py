"""Read a series file: the time column parsed (ISO dates and year-months such as 1950-01, `YYYY/MM/DD HH:MM`,
compact integers such as 19580329, plain years such as 1700, year-quarters such as 1959Q1, or `time_format=`), the target and covariates as numbers, one code per series.

Nothing is fixed here: rows whose time does not parse are counted and left out (the audit lists them),
and a column that is not there fails with the nearest names. The user's file is only ever read.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kiln.errors import DataError, received
from kiln.tasks.common.tabular import MISSING, missing_mask, read_table, sniff_delimiter, sniff_encoding

SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".parquet", ".pq")
# tried in order when time_format is not given; the first that parses (nearly) every cell wins
FORMATS = ("ISO8601", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%m/%d/%Y",
           "%d.%m.%Y %H:%M", "%d.%m.%Y", "%Y%m")
COMPACT = {8: "%Y%m%d", 10: "%Y%m%d%H", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S", 6: "%Y%m", 4: "%Y"}
QUARTER = "%YQ%q"  # year-quarter cells (1959Q1, 1959-Q1, 1959 q1): not a strftime code, parsed here, stored like one
QUARTER_RE = r"(\d{4})\s*-?\s*[Qq]([1-4])"


@dataclass
class SeriesFrame:
    """Parsed rows: `time` (datetime64), `series` (str), `y` and covariate columns (float, NaN when missing)."""

    frame: pd.DataFrame
    path: str
    time_format: str
    unparsed: pd.DataFrame  # rows whose time did not parse: row number and the cell
    covariates: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)


def find(frame: pd.DataFrame, name: str | None, key: str, component: str, what: str) -> str:
    """`name` when the file has it; else one line with the nearest column names."""
    cols = [str(c) for c in frame.columns]
    if name is None:
        raise DataError(received(component, key, "<unset>", f"a series file needs the {what} column named",
                                 f"Pass {key}=COLUMN (columns: {', '.join(cols[:12])})"))
    if name in cols:
        return name
    low = {c.lower(): c for c in cols}
    if str(name).lower() in low:
        return low[str(name).lower()]
    near = difflib.get_close_matches(str(name), cols, n=3, cutoff=0.3)
    hint = f"Did you mean {' or '.join(near)}?" if near else f"Columns: {', '.join(cols[:12])}"
    raise DataError(received(component, key, name, "the file has no such column", hint))


def parse_times(cells: pd.Series, time_format: str | None, component: str, column: str, clean: bool = False) -> tuple[pd.Series, str]:
    """(datetime64 values, NaT where a cell does not parse; the format used). Fails when almost nothing parses.
    clean=True: `cells` are already stripped strings with missing cells as NA (the typed reader's)."""
    if clean:
        text = cells
    else:
        text = cells.astype(object).where(~pd.Series(missing_mask(cells), index=cells.index), None)
        text = text.map(lambda v: None if v is None else str(v).strip())
    present = text.notna()
    if not present.any():
        raise DataError(received(component, "time", column, "the column holds no values", "Pass time= the timestamp column"))
    candidates = [time_format] if time_format else _candidates(text[present])
    best, best_fmt = None, None
    for fmt in candidates:
        try:
            parsed = quarters(text) if fmt == QUARTER else pd.to_datetime(text, format=fmt, errors="coerce") if fmt != "ISO8601" else \
                pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True).dt.tz_localize(None)
        except (ValueError, TypeError, OverflowError):
            continue
        if best is None or parsed.notna().sum() > best.notna().sum():
            best, best_fmt = parsed, fmt
        if best.notna().sum() == present.sum():
            break
    ok = 0 if best is None else int(best.notna().sum())
    if ok < 0.5 * int(present.sum()):
        example = text[present].iloc[0] if best is None else text[present & best.isna()].iloc[0]
        fix = f"Pass time_format= (e.g. time_format={_hint(str(example))})" if not time_format else "Check time_format= against the file"
        raise DataError(received(component, "time", column, f"{int(present.sum()) - ok} of {int(present.sum())} cells do not parse as "
                                 f"timestamps (e.g. {example!r})", fix))
    return best.astype("datetime64[ns]"), best_fmt


def _candidates(text: pd.Series) -> list[str]:
    sample = text.iloc[: 200]
    if sample.str.fullmatch(r"\d+").all():
        n = sample.str.len().mode().iloc[0]
        return [COMPACT[n]] if n in COMPACT else []
    if sample.str.fullmatch(QUARTER_RE).all():
        return [QUARTER]
    return list(FORMATS)


def _hint(cell: str) -> str:
    """A time_format= that fits the shape of `cell` (digits: year-first compact codes)."""
    if cell.isdigit():
        return "%Y%m%d" if len(cell) >= 8 else "%Y"
    return "%d.%m.%Y %H:%M" if "." in cell else "%Y-%m-%d %H:%M"


def quarters(text: pd.Series) -> pd.Series:
    """datetime64 of year-quarter cells (1959Q1 -> 1959-01-01, the quarter's first day); NaT where a cell is not one."""
    parts = text.astype(object).where(text.notna(), "").astype(str).str.strip().str.extract(f"^{QUARTER_RE}$")
    year, q = pd.to_numeric(parts[0], errors="coerce"), pd.to_numeric(parts[1], errors="coerce")
    return pd.to_datetime(pd.DataFrame({"year": year, "month": 3 * (q - 1) + 1, "day": 1}), errors="coerce")


def numbers(cells: pd.Series, key: str, column: str, component: str) -> np.ndarray:
    """Float values (NaN where missing); a cell that is neither missing nor a number fails in one line."""
    missing = missing_mask(cells)
    values = pd.to_numeric(cells.astype(object).where(~missing, None), errors="coerce").to_numpy(np.float64)
    bad = np.isnan(values) & ~missing
    if bad.any():
        first = cells.iloc[int(np.argmax(bad))]
        raise DataError(received(component, key, column, f"{int(bad.sum())} cells are not numbers (e.g. {first!r}); "
                                 "a forecast target and covariates must be numeric", "Pick a numeric column, or clean the file"))
    return values


NA_CELLS = sorted({v for m in MISSING for v in (m, m.upper(), m.title())})


def read_typed(path, time, target, series=None, covariates=(), time_format=None, component="train") -> SeriesFrame | None:
    """The fast path for a CSV/TSV: pyarrow reads only the named columns, the time column straight to timestamps
    (in the format a sample of its cells names), the target and covariates to float32, the series id to one
    Arrow string column. No Python object is made per row: a million hourly rows cost ~45 MB beyond the
    frame's own 13 MB, where strings parsed by pandas cost ~150 MB. None (the string reader takes over, with its
    exact counts and one-line errors) when anything does not fit: a cell that does not parse, a zone offset,
    a missing timestamp, ragged rows, an encoding pyarrow rejects."""
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    if not path.is_file() or path.suffix.lower() in (".parquet", ".pq"):
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        encoding = sniff_encoding(head)
        sep = sniff_delimiter(head.decode(encoding, errors="ignore"), path.suffix.lower())
        names = [str(c).strip() for c in pd.read_csv(path, sep=sep, encoding=encoding, nrows=0).columns]
        header = pd.DataFrame(columns=names)
        tcol, ycol = find(header, time, "time", component, "timestamp"), find(header, target, "target", component, "target")
        scol = find(header, series, "series", component, "series id") if series else None
        ccols = [find(header, c, "covariates", component, "covariate") for c in covariates]
        if len(set(names)) != len(names) or len({tcol, ycol, scol, *ccols} - {None}) != 2 + bool(scol) + len(ccols):
            return None
        sample = pd.read_csv(path, sep=sep, encoding=encoding, usecols=[tcol], dtype=str, nrows=500, keep_default_na=False,
                             na_values=NA_CELLS)[tcol].dropna().str.strip()
        if not len(sample):
            return None
        try:
            fmt = parse_times(sample, time_format, component, tcol, clean=True)[1]
        except DataError:  # the whole column decides below, with its counts
            fmt = time_format
        numeric = {ycol: pa.float32(), **{c: pa.float32() for c in ccols}, **({scol: pa.string()} if scol else {})}

        def read(time_type, parsers=()):
            return pacsv.read_csv(path, read_options=pacsv.ReadOptions(encoding=encoding), parse_options=pacsv.ParseOptions(delimiter=sep),
                                  convert_options=pacsv.ConvertOptions(include_columns=[tcol, *numeric], column_types={tcol: time_type, **numeric},
                                                                       null_values=NA_CELLS, strings_can_be_null=True, timestamp_parsers=list(parsers)))
        table = None
        if fmt and fmt != QUARTER:  # every cell straight to a timestamp; any that does not parse (or a zone offset) fails the whole read
            try:
                table = read(pa.timestamp("ns"), [pacsv.ISO8601 if fmt == "ISO8601" else fmt])
            except pa.ArrowInvalid:
                table = None
            if table is not None and table.column(tcol).null_count:  # a missing timestamp: its row is reported below
                table = None
        if table is None:
            table = read(pa.string())
    except DataError:
        raise
    except Exception:  # a cell that is not a number, ragged rows, an encoding pyarrow rejects: the string reader says which
        return None
    if not table.num_rows:
        return None
    if pa.types.is_timestamp(table.column(tcol).type):
        times, unparsed = table.column(tcol).to_numpy().astype("datetime64[ns]"), pd.DataFrame({"row": np.zeros(0, np.int64), "cell": []})
    else:
        times, fmt, unparsed = _string_times(table.column(tcol), fmt, time_format, component, tcol)
    bad = np.isnat(times)
    out = pd.DataFrame({"time": times, "series": table.column(scol).to_pandas().astype(str) if scol else "0",  # Arrow-backed str: no object a row
                        "y": table.column(ycol).to_numpy().astype(np.float32, copy=False)})
    for c in ccols:
        out[c] = table.column(c).to_numpy().astype(np.float32, copy=False)
    out["row"] = np.arange(len(out), dtype=np.int64)
    n = table.num_rows
    del table
    pa.default_memory_pool().release_unused()  # the CSV reader's buffers, back to the OS before the frame copies
    facts = {"path": str(path), "format": "tsv" if sep == "\t" else "csv", "encoding": encoding, "delimiter": sep,
             "rows": int(n), "columns": len(names), "time": tcol, "target": ycol, "series_column": scol, "time_format": fmt}
    return SeriesFrame(out[~bad].reset_index(drop=True) if bad.any() else out, str(path), fmt, unparsed, ccols, facts)


def _string_times(column, fmt, time_format, component, tcol):
    """(datetime64[ns], format, unparsed rows) of a time column read as Arrow strings: stripped, then parsed by
    Arrow in `fmt` when every cell allows, else by pandas cell by cell (which counts what does not parse)."""
    import pyarrow.compute as pc

    cells = pc.utf8_trim_whitespace(column)
    times = _arrow_times(cells, fmt)
    if times is None:
        parsed, fmt = parse_times(pd.Series(cells.to_pandas(), dtype=object), time_format, component, tcol, clean=True)
        times = parsed.to_numpy()
    bad = np.flatnonzero(np.isnat(times))
    return times, fmt, pd.DataFrame({"row": bad, "cell": cells.take(bad).to_pylist()})


def _arrow_times(cells, fmt: str | None):
    """datetime64[ns] of every cell parsed by Arrow in `fmt` (ISO8601: a strict cast), or None when any cell
    is missing or does not parse that way (then pandas decides, cell by cell)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if fmt is None or fmt == QUARTER or cells.null_count:
        return None
    try:
        ts = pc.cast(cells, pa.timestamp("ns")) if fmt == "ISO8601" else pc.strptime(cells, format=fmt, unit="ns")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return None
    return ts.to_numpy().astype("datetime64[ns]")


def read_series(path, time: str | None, target: str | None, series: str | None = None, covariates=(), time_format=None,
                component: str = "train") -> SeriesFrame:
    """Read and parse `path`; rows are kept in file order (the audit says whether it was sorted)."""
    typed = read_typed(path, time, target, series, covariates, time_format, component)
    if typed is not None:
        return typed
    src = read_table(path, component)
    frame = src.frame
    tcol = find(frame, time, "time", component, "timestamp")
    ycol = find(frame, target, "target", component, "target")
    scol = find(frame, series, "series", component, "series id") if series else None
    ccols = [find(frame, c, "covariates", component, "covariate") for c in covariates]
    for c in ccols:
        if c in (tcol, ycol):
            raise DataError(received(component, "covariates", c, "the time and target columns cannot be covariates", "Leave it out of covariates="))
    times, fmt = parse_times(frame[tcol], time_format, component, tcol)
    out = pd.DataFrame({"time": times.to_numpy(), "series": frame[scol].astype(str).to_numpy() if scol else "0",
                        "y": numbers(frame[ycol], "target", ycol, component)})
    for c in ccols:
        out[c] = numbers(frame[c], "covariates", c, component)
    out["row"] = np.arange(len(out))
    bad = out["time"].isna().to_numpy()
    unparsed = pd.DataFrame({"row": np.flatnonzero(bad), "cell": frame[tcol].to_numpy()[bad]})
    facts = {**src.describe(), "time": tcol, "target": ycol, "series_column": scol, "time_format": fmt}
    return SeriesFrame(out[~bad].reset_index(drop=True), str(path), fmt, unparsed, ccols, facts)


__all__ = ["QUARTER", "SUFFIXES", "SeriesFrame", "find", "numbers", "parse_times", "quarters", "read_series", "read_typed"]
