"""Reading a series file and the timestamp audit: time formats, frequencies, problems counted, fill, one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kiln.errors import DataError
from kiln.tasks.series.audit import audit_frame, infer_freq, regularise, season_of
from kiln.tasks.series.source import read_series


def _csv(tmp_path, rows, name="s.csv"):
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("cells, fmt, first", [
    (["2024-01-01", "2024-01-02", "2024-01-03"], None, "2024-01-01"),
    (["2024/01/01 10:00", "2024/01/01 11:00", "2024/01/01 12:00"], None, "2024-01-01 10:00"),
    (["19580329", "19580405", "19580412"], None, "1958-03-29"),
    (["01.02.2024 10:00", "01.02.2024 11:00", "01.02.2024 12:00"], "%d.%m.%Y %H:%M", "2024-02-01 10:00"),
    (["1700", "1701", "1702"], None, "1700-01-01"),  # plain years (issue 32: needed time_format=%Y)
    (["1950-01", "1950-02", "1950-03"], None, "1950-01-01"),  # year-months
    (["1959Q1", "1959Q2", "1959Q3"], None, "1959-01-01"),  # year-quarters
    (["1959-Q4", "1960-Q1", "1960 q2"], None, "1959-10-01"),
])
def test_time_formats_parse(tmp_path, cells, fmt, first):
    path = _csv(tmp_path, ["t,y"] + [f"{c},{i}" for i, c in enumerate(cells)])
    sf = read_series(path, "t", "y", time_format=fmt)
    assert sf.frame["time"].iloc[0] == pd.Timestamp(first)
    assert len(sf.frame) == 3 and not len(sf.unparsed)


def test_years_and_quarters_give_their_frequency_and_round_trip_the_format(tmp_path):
    from kiln.tasks.series.source import QUARTER, parse_times

    years = read_series(_csv(tmp_path, ["year,y"] + [f"{1700 + i},{i}" for i in range(30)], "y.csv"), "year", "y")
    assert years.time_format == "%Y" and infer_freq(years.frame["time"]) == "YS"
    quarters = read_series(_csv(tmp_path, ["q,y"] + [f"{1959 + i // 4}Q{i % 4 + 1},{i}" for i in range(30)], "q.csv"), "q", "y")
    assert quarters.time_format == QUARTER and infer_freq(quarters.frame["time"]) == "QS"
    again, _ = parse_times(pd.Series(["1961Q3", "1961Q4", "bad"]), QUARTER, "predict", "q")  # a run's stored format reads it back
    assert list(again[:2]) == [pd.Timestamp("1961-07-01"), pd.Timestamp("1961-10-01")] and pd.isna(again[2])


def test_unparsed_numbers_get_a_numeric_hint(tmp_path):
    with pytest.raises(DataError) as err:
        read_series(_csv(tmp_path, ["t,y", "17000,1", "17010,2", "17020,3"]), "t", "y")
    assert "time_format=%Y" in str(err.value) and "%d.%m" not in str(err.value)


@pytest.mark.parametrize("freq, alias, season", [("h", "h", 24), ("D", "D", 7), ("W-SAT", "7D", 52), ("MS", "MS", 12), ("15min", "15min", 96)])
def test_frequency_and_season(freq, alias, season):
    t = pd.Series(pd.date_range("2021-01-02", periods=40, freq=freq))
    assert infer_freq(t) == alias and season_of(alias) == season


def test_audit_counts_each_problem(tmp_path):
    times = list(pd.date_range("2024-01-01", periods=60, freq="h").strftime("%Y-%m-%d %H:%M"))
    y = [str(10 + np.sin(i / 3)) for i in range(60)]
    y[20] = "1000"  # an outlier
    for i in range(22, 50):
        y[i] = "5"  # a constant stretch
    y[55] = ""  # a missing value
    rows = [f"{t},{v}" for t, v in zip(times, y)]
    del rows[10:13]  # a gap of 3 timestamps
    rows.append(rows[5])  # a duplicate, out of order
    rows.append("not a time,3")
    sf = read_series(_csv(tmp_path, ["when,load"] + rows), "when", "load")
    r = audit_frame(sf)
    t = r["total"]
    assert r["frequency"] == "h" and r["season"] == 24
    assert t["duplicates"] == 1 and t["missing_timestamps"] == 3 and t["gaps"] == 1 and r["longest_gap"] == 3
    assert t["missing_values"] == 4 and r["longest_missing"] == 3  # the gap's 3 and the empty cell
    assert t["constant_stretches"] == 1 and t["outliers"] >= 1
    kinds = {p["kind"] for p in r["problems"]}
    assert {"unparsed_time", "duplicates", "missing_timestamps", "unordered"} <= kinds


def test_duplicates_fail_training_and_fill_is_counted(tmp_path):
    times = list(pd.date_range("2024-01-01", periods=10, freq="D").strftime("%Y-%m-%d"))
    rows = [f"{t},{i}" for i, t in enumerate(times)]
    del rows[4]
    sf = read_series(_csv(tmp_path, ["d,y"] + rows), "d", "y")
    for fill, expect in (("interpolate", 4.0), ("ffill", 3.0), ("zero", 0.0)):
        frame, facts = regularise(sf, "D", fill)
        assert frame["y"].iloc[4] == expect and facts["filled"] == 1
    frame, facts = regularise(sf, "D", "none")
    assert np.isnan(frame["y"].iloc[4]) and facts["missing_after_fill"] == 1
    dup = read_series(_csv(tmp_path, ["d,y"] + rows + [rows[0]], "dup.csv"), "d", "y")
    with pytest.raises(DataError, match="repeat a timestamp"):
        regularise(dup, "D", "none")


def test_errors_name_the_nearest_column_and_bad_values(tmp_path):
    path = _csv(tmp_path, ["date,load", "2024-01-01,1", "2024-01-02,x", "2024-01-03,3"])
    with pytest.raises(DataError, match=r"time=dat; the file has no such column. Did you mean date\?"):
        read_series(path, "dat", "load")
    with pytest.raises(DataError, match=r"target=load; 1 cells are not numbers \(e.g. 'x'\)"):
        read_series(path, "date", "load")
    bad = _csv(tmp_path, ["date,load", "soon,1", "later,2", "never,3"], "bad.csv")
    with pytest.raises(DataError, match="do not parse as timestamps"):
        read_series(bad, "date", "load")


def test_typed_reader_matches_the_string_reader(tmp_path, monkeypatch):
    """The CSV fast path (pyarrow, float32, time parsed once) reads what the string reader reads: the same
    times, series, values and missing cells (every MISSING spelling), unparsed rows and facts."""
    from kiln.tasks.series import source

    rows = ["id,when,load,temp,unused"] + [f"{s},2024-01-01 {h:02d}:00,{v},{h * 0.5},zz" for s in ("a", "b") for h, v in
                                          zip(range(8), ["1.5", "NA", "3", "", "n/a", "6", "7.25", "?"])] + ["b,someday,9,1,zz"]
    path = _csv(tmp_path, rows)
    typed = source.read_typed(path, "when", "load", "id", ["temp"])
    assert typed is not None and typed.frame["y"].dtype == np.float32 and typed.frame["temp"].dtype == np.float32
    monkeypatch.setattr(source, "read_typed", lambda *a, **k: None)
    strings = source.read_series(path, "when", "load", "id", ["temp"])
    assert len(typed.frame) == len(strings.frame) == 16
    for col in ("time", "series", "row"):
        assert typed.frame[col].astype(str).tolist() == strings.frame[col].astype(str).tolist()
    for col in ("y", "temp"):
        np.testing.assert_array_equal(typed.frame[col].to_numpy(np.float64), strings.frame[col].to_numpy(np.float64))
    assert int(np.isnan(typed.frame["y"]).sum()) == 8
    assert typed.unparsed["row"].tolist() == strings.unparsed["row"].tolist() == [16]
    assert typed.facts == strings.facts and typed.time_format == strings.time_format


def test_typed_reader_leaves_odd_files_to_the_string_reader(tmp_path):
    from kiln.tasks.series.source import read_typed

    assert read_typed(_csv(tmp_path, ["date,load", "2024-01-01,1", "2024-01-02,x"]), "date", "load") is None  # the exact error is the string reader's
    with pytest.raises(DataError, match=r"time=dat; the file has no such column. Did you mean date\?"):
        read_typed(_csv(tmp_path, ["date,load", "2024-01-01,1"], "n.csv"), "dat", "load")


def test_audit_page_is_styled_with_a_plot(tmp_path):
    from kiln.tasks.series.report import audit_file

    times = pd.date_range("2024-01-01", periods=48, freq="h").strftime("%Y-%m-%d %H:%M")
    path = _csv(tmp_path, ["when,load"] + [f"{t},{10 + np.sin(i / 3):.3f}" for i, t in enumerate(times)])
    audit_file(path, tmp_path / "audit", "when", "load")
    page = (tmp_path / "audit" / "audit.html").read_text()
    assert "<style>" in page and "data:image/png;base64," in page and "Timestamp audit" in page and "s.csv" in page
