"""The series task's own config section (`series.*`; bare keys work where unique: time=, horizon=, lookback=)."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SeriesConfig(BaseModel):
    # the shared Section's settings, without importing kiln.config.schema (which imports the task modules)
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    time: Optional[str] = Field(None, description="series: the timestamp column (ISO dates, YYYY/MM/DD HH:MM, compact integers such as 19580329, plain years, 1950-01, 1959Q1)")
    target: Optional[str] = Field(None, description="series: the column to forecast")
    horizon: Optional[int] = Field(None, ge=1, le=100_000, description="series: steps forecast after each origin (direct multi-step output)")
    lookback: Union[Literal["auto"], int] = Field("auto", description="series: past steps the model sees; auto: three seasons, at least two horizons, at most 512")
    season: Union[Literal["auto"], int] = Field("auto", description="series: season length in steps; auto: the training stretch's autocorrelation checks the calendar's (24 hourly, 7 daily, 52 weekly, 12 monthly, 4 quarterly) or finds the data's own cycle, else 1")
    time_format: Optional[str] = Field(None, description="series: strftime format of the time column (e.g. %d.%m.%Y %H:%M), instead of inferring it")
    series: Optional[str] = Field(None, description="series: column naming the series of each row, for many series in one file (one global model)")
    covariates: list[str] = Field(default_factory=list, description="series: extra numeric columns fed as past values (never their future)")
    fill: Literal["none", "interpolate", "ffill", "zero"] = Field("none", description="series: missing values and gaps: none leaves out the windows that touch them; interpolate, ffill or zero fill them (reported)")
    quantiles: list[float] = Field(default_factory=list, description="series: quantiles to forecast with the pinball loss (e.g. 0.1,0.5,0.9; 0.5 is added); empty: a point forecast")
    backtest: Union[Literal["auto"], int] = Field("auto", description="series: rolling origins per series in the test stretch; auto: every origin, at most 500 evenly spaced")
    baselines: bool = Field(True, description="series: naive, seasonal naive, drift, Holt-Winters, Theta, AR by AIC and their mean on the same windows")
    batch_rows: Union[Literal["auto"], int] = Field("auto", description="series: windows per step; auto: 64 under 20,000 training windows, else 256")
    width: int = Field(256, ge=4, le=4096, description="series dense / nbeats: hidden units; lstm / gru / cnn1d use a quarter")
    residual: bool = Field(True, description="series: the model predicts a correction to the seasonal-naive forecast of its window (computed inside the model); false: the whole curve")
    blocks: int = Field(3, ge=1, le=16, description="series nbeats: residual blocks")
    least_squares: bool = Field(True, description="series linear (alone or a member): start its weights at the least-squares solution on the training windows; false: random, gradient descent only")
    members: list[str] = Field(default_factory=lambda: ["linear", "dense"], description="series ensemble (model=auto's choice): the member families whose forecasts are averaged, one model each")

    @field_validator("covariates", "quantiles", "members", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, (str, int, float)) else v

    @field_validator("quantiles")
    @classmethod
    def _in_unit(cls, v):
        if any(not 0.0 < q < 1.0 for q in v):
            raise ValueError("every quantile must lie strictly between 0 and 1")
        return sorted(set(v) | ({0.5} if v else set()))


__all__ = ["SeriesConfig"]
