"""Typed config: schema, loading and overrides."""

from kiln.config.load import build, dump_config, load_config, parse_overrides
from kiln.config.schema import Config, DataConfig, ModelConfig, TrainConfig

__all__ = ["Config", "DataConfig", "ModelConfig", "TrainConfig", "build", "dump_config", "load_config", "parse_overrides"]
