"""The anomaly task's own config section (`anomaly.*`; bare keys work where unique: rule=, denoise=, window=)."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class AnomalyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    label: Optional[str] = Field(None, description="anomaly: a column marking anomalies (1/true/yes/anomaly); its anomalies go to val and test only, never train")
    anomaly_label: Optional[str] = Field(None, description="anomaly: the value of label= that marks an anomaly (every other value is normal); default: 1, true, yes, anomaly, outlier; images: the sub-folder of anomalies (default anomaly)")
    drop: list[str] = Field(default_factory=list, description="anomaly: columns left out of the model")
    time: Optional[str] = Field(None, description="anomaly: a series' timestamp column; with it, windows of the value columns are scored")
    time_format: Optional[str] = Field(None, description="anomaly: strptime format of time= (auto-detected when empty)")
    columns: list[str] = Field(default_factory=list, description="anomaly series: the value columns (default: every numeric column)")
    window: Union[Literal["auto"], int] = Field("auto", description="anomaly series: steps per scored window; auto: 32, fewer for a short series")
    stride: int = Field(1, ge=1, le=100_000, description="anomaly series: steps between window starts")
    size: int = Field(32, ge=8, le=512, multiple_of=4, description="anomaly images: side in pixels the images are resized to (a multiple of 4)")
    grey: bool = Field(False, description="anomaly images: read images as one grey channel instead of RGB")
    latent: Union[Literal["auto"], int] = Field("auto", description="anomaly: bottleneck size; auto: a quarter of the features, in [2, 16]")
    width: int = Field(32, ge=4, le=1024, description="anomaly conv1d: filters of the first convolution (twice that in the second)")
    denoise: float = Field(0.0, ge=0.0, le=10.0, description="anomaly: std of the Gaussian noise added to the scaled inputs while training (denoising autoencoder); 0: off")
    beta: float = Field(1.0, ge=0.0, le=100.0, description="anomaly vae: weight of the KL term")
    rule: Union[float, str] = Field("auto", description="anomaly: threshold rule chosen on val: auto (max_f1 when val holds labelled anomalies, else q0.99), qX (a quantile of normal val scores), mean+Kstd, mad, fpr<=X, max_f1, recall>=X, or a number")
    error: Literal["squared", "absolute"] = Field("squared", description="anomaly: per-feature / per-step reconstruction error")
    normalize: Union[Literal["auto"], bool] = Field("auto", description="anomaly: after fitting, divide each feature's (step's, pixel's) error by its mean on the normal training rows, inside the model; auto: true for tables, false for series and images (bench/anomaly.py)")
    reduction: Literal["mean", "max"] = Field("mean", description="anomaly: how a row's or window's errors make its score")
    batch_rows: Union[Literal["auto"], int] = Field("auto", description="anomaly: rows or windows per step; auto: 64, 256 from 20,000")
    baselines: bool = Field(True, description="anomaly: also score PCA reconstruction error, Isolation Forest and LOF on the same split")

    @field_validator("drop", "columns", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _rule(self):
        from kiln.errors import KilnError
        from kiln.tasks.anomaly.threshold import parse_rule

        try:
            parse_rule(self.rule)
        except KilnError as err:
            raise ValueError("rule|" + str(err).split("; ", 1)[1].split(". ", 1)[0]) from None
        return self


__all__ = ["AnomalyConfig"]
