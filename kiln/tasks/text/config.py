"""The text task's own config section (`text.*`; bare keys work where unique: `text=COLUMN`, `max_tokens=`).

The label column is `text.label`, or `target=` (the key tables use for the column to predict), else a
column named label / target / class / category.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    text: Optional[str] = Field(None, description="text: the column holding the text (CSV/TSV/JSON Lines); default: a column named text")
    label: Optional[str] = Field(None, description="text: the label column; default: target=, else label/target/class/category")
    split_column: str = Field("split", description="text: optional column with train/val/test per row")
    max_tokens: Union[Literal["auto"], int] = Field("auto", description="text: vocabulary size (n-grams included), counted on the training split only; auto: 50,000 for bow and bow_transformer, 20,000 for the sequence models")
    ngrams: Union[Literal["auto"], int] = Field("auto", description="text: word n-gram width of the vocabulary (1: words; analyzer=word); auto: 2 for bow and bow_transformer, else 1")
    analyzer: Literal["auto", "word", "char_wb"] = Field("auto", description="text: what a token is: word (word n-grams) or char_wb (character 2-5-grams within words, punctuation kept; bow only); auto: char_wb for bow, word otherwise")
    output_mode: Literal["auto", "int", "tf_idf", "count"] = Field("auto", description="text: how tokens reach the model: int (sequence models), tf_idf or count (bow, bow_transformer); auto picks per model")
    sequence_length: Union[Literal["auto"], int] = Field("auto", description="text: tokens kept per text (longer ones truncated); auto: the 95th percentile of training lengths in [8, 512] (bow, bow_transformer: 99th, up to 8192; analyzer=char_wb up to 32768)")
    embed_size: int = Field(64, ge=2, le=2048, description="text: embedding size (cnn1d, rnns, transformer)")
    rnn_units: int = Field(64, ge=1, le=4096, description="text: LSTM / GRU units per direction")
    bow_hidden: int = Field(0, ge=0, le=4096, description="text bow: a ReLU layer of this size before the softmax (0: linear)")
    encoder_blocks: int = Field(2, ge=1, le=24, description="text transformer: encoder blocks")
    attention_heads: int = Field(2, ge=1, le=64, description="text transformer: attention heads")
    head_dropout: Union[Literal["auto"], float] = Field("auto", description="text: dropout before the classifier; auto: 0.3 (transformer and bow_transformer 0.1, bow 0)")
    embeddings: Optional[str] = Field(None, description="text: pretrained word vectors from a local GloVe / word2vec text file (cnn1d, rnns); nothing is downloaded")
    max_chars: int = Field(100_000, ge=1, description="text: characters read per text (training, predict, serve); longer texts are truncated (serve: see on_long)")
    on_long: Literal["truncate", "reject"] = Field("truncate", description="text serve: a text over max_chars is truncated, or answered 400")
    baseline: bool = Field(True, description="text: also fit scikit-learn TF-IDF + logistic regression on the same split")
    explain: int = Field(8, ge=0, le=200, description="text report: shown predictions whose most important tokens are found by occlusion")

    @field_validator("sequence_length")
    @classmethod
    def _at_least_one(cls, v):
        if isinstance(v, int) and v < 1:
            raise ValueError("sequence_length must be at least 1 (or auto)")
        return v

    @field_validator("max_tokens")
    @classmethod
    def _max_tokens(cls, v):
        if isinstance(v, int) and not 10 <= v <= 2_000_000:
            raise ValueError("max_tokens must be between 10 and 2,000,000 (or auto)")
        return v

    @field_validator("ngrams")
    @classmethod
    def _ngrams(cls, v):
        if isinstance(v, int) and not 1 <= v <= 5:
            raise ValueError("ngrams must be between 1 and 5 (or auto)")
        return v

    @field_validator("head_dropout")
    @classmethod
    def _dropout(cls, v):
        if isinstance(v, float) and not 0.0 <= v < 1.0:
            raise ValueError("dropout must be in [0, 1) (or auto)")
        return v


__all__ = ["TextConfig"]


class TextServeOptions(BaseModel):
    """`kiln serve` keys of a text model (Task.serve_options)."""

    model_config = ConfigDict(extra="forbid")
    top_k: int = Field(5, ge=1, description="labels returned per text unless the request sets top_k")
