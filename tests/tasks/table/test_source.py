"""Reading tables: encodings and delimiters sniffed, Parquet, missing spellings, errors in one line."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from kiln.errors import DataError
from kiln.tasks.common.tabular import missing_mask, read_table

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


TRICKY = {  # what pyarrow's reader must read as pandas does, or leave to pandas
    "plain.csv": "a,b,c\n1,x,\n2,,y\n", "semi.csv": "a;b\n1,5;x\n2;y\n", "tab.tsv": "a\tb\n1\t 2\n",
    "quoted.csv": 'a,b\n"x,y","line1\nline2"\n"q""r",3\n', "ragged.csv": "a,b\n1\n2,3\n", "dup.csv": "a,a\n1,2\n",
    "blank_name.csv": "a,\n1,2\n", "blank_lines.csv": "a,b\n\n1,2\n\n3,4\n", "missing.csv": "a,b\nNA,?\nnull,-\n",
    "spaces.csv": " a , b \n 1 , x \n", "no_newline.csv": "a,b\n1,2", "crlf.csv": "a,b\r\n1,2\r\n3,4\r\n",
}


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_fast_reader_reads_as_pandas_does(tmp_path, name):
    from kiln.tasks.common.tabular import _read_csv, sniff_delimiter

    path = tmp_path / name
    path.write_text(TRICKY[name])
    text = path.read_text()
    delimiter = sniff_delimiter(text, path.suffix)
    want = pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False, na_filter=False)
    pd.testing.assert_frame_equal(_read_csv(path, delimiter, "utf-8", text), want)


def test_fast_reader_bom_and_latin1(tmp_path):
    (tmp_path / "bom.csv").write_bytes("\ufeffname,city\n1,Zürich\n".encode("utf-8"))
    (tmp_path / "latin.csv").write_bytes(("name,city\n" + "1,café\n" * 50).encode("latin-1"))
    bom, latin = read_table(tmp_path / "bom.csv"), read_table(tmp_path / "latin.csv")
    assert list(bom.frame.columns) == ["name", "city"] and bom.frame["city"].tolist() == ["Zürich"]
    assert latin.encoding == "latin-1" and set(latin.frame["city"]) == {"café"} and len(latin.frame) == 50


def test_write_csv_matches_pandas_and_quotes_only_where_needed(tmp_path):
    from kiln.io import write_csv

    frame = pd.DataFrame({"a b": ["x", "y,z", 'say "hi"', ""], "n": [1, 2, 3, 4], "p": [0.25, 1 / 3, float("nan"), 2.5]})
    for part, name in ((frame.iloc[[0, 3]], "clean.csv"), (frame, "quotes.csv")):  # pyarrow's path, then pandas'
        write_csv(part, tmp_path / name)
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / name, keep_default_na=False, na_values=[""]),
                                      pd.read_csv(__import__("io").StringIO(part.to_csv(index=False)), keep_default_na=False, na_values=[""]))
    assert (tmp_path / "clean.csv").read_text() == "a b,n,p\nx,1,0.25\n,4,2.5\n"
    assert (tmp_path / "quotes.csv").read_text() == frame.to_csv(index=False)
    booleans = pd.DataFrame({"ok": [True, False]})
    write_csv(booleans, tmp_path / "b.csv")
    assert (tmp_path / "b.csv").read_text() == "ok\nTrue\nFalse\n"  # pandas' spelling, not pyarrow's true / false
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left behind
