"""The table task's own config section (`table.*`; bare keys work where unique: target=, drop=, cv=)."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TableConfig(BaseModel):
    # the shared Section's settings, without importing kiln.config.schema (which imports this module)
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    target: Optional[str] = Field(None, description="table: the column to predict")
    drop: list[str] = Field(default_factory=list, description="table: columns left out of the model")
    id: list[str] = Field(default_factory=list, description="table: identifier columns (kept in predictions, left out of the model)")
    loss: Literal["auto", "crossentropy", "mse", "mae", "huber"] = Field("auto", description="table: auto is cross-entropy for classes, mse for regression")
    batch_rows: Union[Literal["auto"], int] = Field("auto", description="table: rows per step (data.batch_size is for images); auto is train rows / 50 kept in [32, 2048] (kiln/tasks/table/auto.py)")
    cv: int = Field(0, ge=0, le=20, description="table: K-fold cross-validation of the model (0 or 1: off), reported as mean and std")
    baselines: bool = Field(True, description="table: also fit dummy, linear and HistGradientBoosting baselines on the same split")
    importance: bool = Field(True, description="table: permutation feature importance on val")
    width: int = Field(128, ge=4, le=4096, description="table resnet_plr: block width")
    blocks: int = Field(2, ge=0, le=16, description="table resnet_plr: residual blocks")
    frequencies: int = Field(16, ge=1, le=256, description="table resnet_plr: periodic embedding frequencies per number")
    embed_dim: int = Field(8, ge=1, le=256, description="table resnet_plr: embedding size per number")
    sigma: float = Field(0.1, gt=0.0, le=100.0, description="table resnet_plr: scale of the initial frequencies")
    ensemble_size: int = Field(16, ge=1, le=64, description="table tabm: members sharing one MLP (k of TabM)")


    @field_validator("drop", "id", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v


__all__ = ["TableConfig"]
