"""The season of a series from its own training history, checked against its calendar.

The calendar proposes (24 and 168 for hourly data, 7 and 365 daily, 52 weekly, 12 monthly, 4 quarterly,
none yearly); the autocorrelation of the linearly detrended training stretch decides:

    1. a calendar candidate whose autocorrelation is a local peak above `MIN_PEAK` is kept (the first that is);
    2. else the data's own cycle: the shortest lag whose autocorrelation is a local peak above `MIN_PEAK`,
       `PROMINENCE` above the trough before it, and within 90 % of the highest such peak (the fundamental, not a multiple of it): sunspots' ~11 years;
    3. else no season (1): seasonal naive is then naive, and MASE is scaled by the one-step naive error.

Only the training stretch is read (the val and test stretches stay unseen); many series: the mean of the
first `MAX_SERIES` series' autocorrelations; long series: their last `MAX_STEPS` steps.

    season, why = detect_season(frame, "MS", train_len=600)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CALENDAR = {"h": (24, 168), "D": (7, 365), "7D": (52,), "W": (52,), "MS": (12,), "ME": (12,), "QS": (4,), "QE": (4,),
            "YS": (), "YE": (), "min": (60, 1440), "15min": (96, 672), "30min": (48, 336), "10min": (144, 1008), "5min": (288, 2016),
            "s": (60, 3600)}
MIN_PEAK = 0.3  # autocorrelation a season must reach (detrended values; white noise of n steps: about 2 / sqrt(n))
PROMINENCE = 0.2  # a cycle found in the data alone must rise this far above the lowest autocorrelation before it
MAX_SERIES = 20
MAX_STEPS = 20_000
MAX_LAG = 1000


def calendar(freq: str) -> tuple[int, ...]:
    return CALENDAR.get(freq, ())


def autocorrelation(y: np.ndarray, max_lag: int) -> np.ndarray:
    """(max_lag + 1,) autocorrelation of `y` after removing its least-squares line (gaps interpolated), by FFT."""
    y = pd.Series(np.asarray(y, np.float64)).interpolate(limit_direction="both").to_numpy()
    if not np.isfinite(y).all() or len(y) < 4:
        return np.zeros(max_lag + 1)
    t = np.arange(len(y), dtype=np.float64)
    z = y - np.polyval(np.polyfit(t, y, 1), t)
    n = len(z)
    f = np.fft.rfft(z, 2 ** int(np.ceil(np.log2(2 * n))))
    acov = np.fft.irfft(f * np.conj(f))[: max_lag + 1]
    return acov / acov[0] if acov[0] > 0 else np.zeros(max_lag + 1)


def _peak(a: np.ndarray, lag: int) -> bool:
    """`a[lag]` a local maximum above MIN_PEAK (a long season may peak one step off: 52.18 weeks at 52 or 53)."""
    near = range(max(lag - 1, 1), min(lag + 2, len(a) - 1)) if lag >= 24 else [lag]
    best = max(near, key=lambda k: a[k], default=lag)
    return lag + 1 < len(a) and a[best] >= MIN_PEAK and a[best] > a[best - 1] and a[best] >= a[best + 1]


def detect_season(frame: pd.DataFrame, freq: str, train_len: int) -> tuple[int, str]:
    """(season, why) from the first `train_len` steps of each series in `frame` (columns series, y; grid order)."""
    cands = calendar(freq)
    acfs, steps = [], []
    for _, g in list(frame.groupby("series", sort=False)["y"])[:MAX_SERIES]:
        y = g.to_numpy(np.float64)[:train_len][-MAX_STEPS:]
        if np.isfinite(y).sum() >= 8:
            steps.append(len(y))
    n = min(steps, default=0)
    max_lag = min(n // 3, MAX_LAG)
    if max_lag < 3:
        season = cands[0] if cands and cands[0] < n else 1
        return season, f"{n} training steps are too few to check a season; the calendar's ({freq}) is kept" if season > 1 else \
            f"{n} training steps are too few to find a season"
    for _, g in list(frame.groupby("series", sort=False)["y"])[:MAX_SERIES]:
        y = g.to_numpy(np.float64)[:train_len][-MAX_STEPS:]
        if np.isfinite(y).sum() >= 8:
            acfs.append(autocorrelation(y, max_lag))
    a = np.mean(acfs, 0)
    for m in cands:
        if m <= max_lag - 1 and _peak(a, m):
            return m, f"autocorrelation {a[m]:.2f} at {m} steps confirms the calendar's season ({freq})"
    peaks = [k for k in range(2, max_lag) if a[k] >= MIN_PEAK and a[k] > a[k - 1] and a[k] >= a[k + 1] and a[k] - a[1:k].min() >= PROMINENCE]
    if peaks:
        top = max(a[k] for k in peaks)
        m = min(k for k in peaks if a[k] >= 0.9 * top)
        checked = f"; the calendar's {', '.join(map(str, cands))} showed none" if cands else f" (the calendar of {freq} has no season)"
        return m, f"autocorrelation peak {a[m]:.2f} at {m} steps{checked}"
    said = f"the calendar's {', '.join(map(str, cands))} and " if cands else ""
    return 1, (f"no autocorrelation peak of {MIN_PEAK} or more that rises {PROMINENCE} above the trough before it ({said}lags "
               f"2-{max_lag - 1}): seasonal naive is naive")


__all__ = ["CALENDAR", "MIN_PEAK", "PROMINENCE", "autocorrelation", "calendar", "detect_season"]
