"""The generative recommender's vocabulary: one token per track, plus what a prompt needs.

A prompt is ``[BOS] feature=bucket ... t<id> ... [SEP]`` — bucketed listener features then
the last N plays (left-filled with ``[EMPTY]``, so every prompt has the same length and no
padding is ever needed); the completion is ``k`` track tokens. The ids are whatever the
tokenizer assigns (our own WordLevel tokenizer, or a base checkpoint's tokenizer extended
with our tokens), kept in lookup arrays so millions of prompts encode in numpy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from components.buckets import bucket_of, quantile_edges

SPECIALS = ["[PAD]", "[BOS]", "[EOS]", "[SEP]", "[EMPTY]", "[UNK]"]
VOCAB_FILE = "item_vocab.json"


def track_token(track_id: int) -> str:
    return f"t{track_id}"


@dataclass
class ItemVocab:
    """Track ids, prompt features and their bucket edges; id arrays bound to a tokenizer."""

    track_ids: list[int]
    features: list[str]
    history_length: int
    slate_size: int
    edges: dict[str, list[float]] = field(default_factory=dict)

    def tokens(self) -> list[str]:
        """Every token this vocabulary needs, specials first."""
        out = list(SPECIALS) + [track_token(t) for t in self.track_ids]
        for f in self.features:
            out += [f"{f}={b}" for b in range(len(self.edges[f]) + 1)] + [f"{f}=null"]
        return out

    @property
    def prompt_length(self) -> int:
        return 2 + len(self.features) + self.history_length

    # ------------------------------------------------------------------ fitting / tokenizer

    @classmethod
    def fit(
        cls,
        snapshots: pl.DataFrame,
        features: list[str],
        track_ids: list[int],
        history_length: int,
        slate_size: int,
        n_buckets: int,
    ) -> "ItemVocab":
        v = cls(sorted(track_ids), list(features), history_length, slate_size)
        for f in features:
            v.edges[f] = quantile_edges(snapshots[f].drop_nulls().cast(pl.Float64).to_numpy(), n_buckets)
        return v

    def new_tokenizer(self, base_vocab: dict[str, int] | None = None):
        """A WordLevel tokenizer over :meth:`tokens` — appended after ``base_vocab`` when a base
        checkpoint is extended, so its ids stay put. Prompts are whitespace-joined tokens, so a
        WordLevel tokenizer maps them to ids exactly, whatever the base model's own tokenizer was."""
        from tokenizers import Tokenizer
        from tokenizers.models import WordLevel
        from tokenizers.pre_tokenizers import WhitespaceSplit
        from transformers import PreTrainedTokenizerFast

        vocab = dict(base_vocab or {})
        next_id = max(vocab.values(), default=-1) + 1
        for t in self.tokens():
            if t not in vocab:
                vocab[t], next_id = next_id, next_id + 1
        tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
        tok.pre_tokenizer = WhitespaceSplit()
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            pad_token="[PAD]",
            bos_token="[BOS]",
            eos_token="[EOS]",
            unk_token="[UNK]",
            sep_token="[SEP]",
            padding_side="left",
        )

    def bind(self, tokenizer) -> "ItemVocab":
        """Resolve every token to the tokenizer's id (raises if one is missing)."""
        vocab = tokenizer.get_vocab()
        missing = [t for t in self.tokens() if t not in vocab]
        if missing:
            raise ValueError(f"tokenizer lacks {len(missing)} item/prompt tokens, e.g. {missing[:3]}")
        self._id = {t: vocab[t] for t in self.tokens()}
        self._track_ids = np.asarray(self.track_ids)
        self._track_token_ids = np.array([vocab[track_token(t)] for t in self.track_ids])
        self._token_to_track = {vocab[track_token(t)]: t for t in self.track_ids}
        self.vocab_size = len(tokenizer)
        return self

    def id(self, token: str) -> int:
        return self._id[token]

    @property
    def track_token_ids(self) -> np.ndarray:
        return self._track_token_ids

    def non_track_token_ids(self) -> list[int]:
        """Everything a completion may not contain (specials, feature tokens, any base-model token)."""
        allowed = set(self._track_token_ids.tolist())
        return [i for i in range(self.vocab_size) if i not in allowed]

    # ------------------------------------------------------------------ encoding

    def track_to_token(self, tracks: np.ndarray) -> np.ndarray:
        """Token ids of track ids (-1 and unknown ids -> [EMPTY])."""
        pos = np.clip(np.searchsorted(self._track_ids, tracks), 0, len(self._track_ids) - 1)
        hit = (tracks >= 0) & (self._track_ids[pos] == tracks)
        return np.where(hit, self._track_token_ids[pos], self.id("[EMPTY]"))

    def token_to_track(self, token_ids: np.ndarray) -> np.ndarray:
        """Track ids of completion tokens (-1 where a token is not a track)."""
        lookup = np.vectorize(lambda i: self._token_to_track.get(int(i), -1), otypes=[np.int64])
        return lookup(token_ids) if token_ids.size else token_ids.astype(np.int64)

    def prompts(self, features: pl.DataFrame, histories: np.ndarray) -> np.ndarray:
        """(n, prompt_length) prompt ids. ``histories``: (n, >= H) track ids, most recent last, -1 = none."""
        n, H = features.height, self.history_length
        out = np.empty((n, self.prompt_length), dtype=np.int64)
        out[:, 0] = self.id("[BOS]")
        for j, f in enumerate(self.features):
            values = features[f].cast(pl.Float64).fill_null(np.nan).to_numpy()
            bucket = bucket_of(values, self.edges[f])
            ids = np.array([self.id(f"{f}={b}") for b in range(len(self.edges[f]) + 1)])
            out[:, 1 + j] = np.where(
                np.isnan(values), self.id(f"{f}=null"), ids[np.minimum(bucket, len(ids) - 1)]
            )
        hist = (
            histories[:, -H:]
            if histories.shape[1] >= H
            else np.pad(histories, ((0, 0), (H - histories.shape[1], 0)), constant_values=-1)
        )
        out[:, 1 + len(self.features) : -1] = self.track_to_token(hist)
        out[:, -1] = self.id("[SEP]")
        return out

    def texts(self, ids: np.ndarray, tokenizer) -> list[str]:
        """Prompt ids back to whitespace-joined token strings (what TRL's GRPO tokenizes)."""
        inverse = tokenizer.convert_ids_to_tokens
        return [" ".join(inverse(row.tolist())) for row in ids]

    # ------------------------------------------------------------------ persistence

    def save(self, path: Path) -> None:
        state = {
            k: getattr(self, k) for k in ("track_ids", "features", "history_length", "slate_size", "edges")
        }
        (path / VOCAB_FILE).write_text(json.dumps(state))

    @classmethod
    def load(cls, path: Path) -> "ItemVocab":
        return cls(**json.loads((path / VOCAB_FILE).read_text()))
