"""Reading tables: encodings and delimiters sniffed, Parquet, missing spellings, errors in one line."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from kiln.errors import DataError
from kiln.tasks.table.source import missing_mask, read_table

ROWS = "name{d}city{d}score\nZoë{d}Köln{d}1.5\nJosé{d}Málaga{d}?\nAnn{d}Nîmes{d}3\n"


@pytest.mark.parametrize("delimiter,encoding,suffix", [(",", "utf-8", ".csv"), (";", "utf-8-sig", ".csv"), ("\t", "latin-1", ".csv"),
                                                       ("\t", "utf-8", ".tsv"), (";", "latin-1", ".txt")])
def test_sniffed_delimiter_and_encoding(tmp_path, delimiter, encoding, suffix):
    path = tmp_path / f"t{suffix}"
    path.write_bytes(ROWS.format(d=delimiter).encode(encoding))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    src = read_table(path)
    assert list(src.frame.columns) == ["name", "city", "score"]
    assert src.frame["name"].tolist() == ["Zoë", "José", "Ann"] and src.frame["city"].iloc[1] == "Málaga"
    assert src.delimiter == delimiter and src.encoding == encoding
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # the user's file is only read


def test_parquet_and_missing_spellings(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"x": [1.0, None, 3.0], "k": ["a", None, "NA"]}).to_parquet(path)
    src = read_table(path)
    assert src.format == "parquet" and src.frame.shape == (3, 2)
    assert missing_mask(src.frame["x"]).tolist() == [False, True, False]
    assert missing_mask(src.frame["k"]).tolist() == [False, True, True]
    assert missing_mask(pd.Series(["?", "n/a", "-", "", " NA ", "0", "none"])).tolist() == [True] * 5 + [False, True]


@pytest.mark.parametrize("content,why", [(b"a,b,c\n", "header but no data rows"), (b"", "empty"),
                                         (b"PAR1\x00\x01garbage", "could not be read")])
def test_unreadable_files_fail_in_one_line(tmp_path, content, why):
    path = tmp_path / ("t.parquet" if content.startswith(b"PAR1") else "t.csv")
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_table(path)
    assert why in str(err.value) and "\n" not in str(err.value) and str(err.value).startswith("data received data=")
