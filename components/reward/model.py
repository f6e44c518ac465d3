"""The reward model: a small BERT-style encoder over the token layout, one scalar out.

Built from a config (no hub download). ``head`` says how the scalar maps to a reward:
``bce`` (a logit: probability of the binary target), ``mse`` (standardised regression,
mapped back to label units) or ``bradley_terry`` (a utility: only differences matter).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from components.params import TransformerParams
from components.reward.tokens import PAD, Encoder

META_FILE = "reward_model.json"
EXAMPLE_FILE = (
    "example.parquet"  # a few input rows saved with the model: the MLflow signature and a usage example
)


@dataclass(frozen=True)
class Head:
    kind: str  # "bce" | "mse" | "bradley_terry"
    target: str
    mean: float = 0.0
    std: float = 1.0

    def to_reward(self, logits: np.ndarray) -> np.ndarray:
        if self.kind == "bce":
            return 1.0 / (1.0 + np.exp(-logits))
        if self.kind == "mse":
            return logits * self.std + self.mean
        return logits

    @property
    def calibrated(self) -> bool:
        """Scores are in the target's units (RMSE and ECE are meaningful)."""
        return self.kind in ("bce", "mse")


def build(encoder: Encoder, mp: TransformerParams, seed: int) -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=encoder.vocab_size,
        hidden_size=mp.hidden_size,
        num_hidden_layers=mp.layers,
        num_attention_heads=mp.heads,
        intermediate_size=mp.intermediate_size,
        hidden_dropout_prob=mp.dropout,
        attention_probs_dropout_prob=mp.dropout,
        max_position_embeddings=encoder.sequence_length,
        type_vocab_size=1,
        pad_token_id=PAD,
        num_labels=1,
    )
    return BertForSequenceClassification(config)


class RewardModel:
    """A trained reward model: encoder + network + head. The stable scoring API.

    ``score_frame(frame)`` scores rows that carry the reward-model features (a training
    frame, or rows assembled by :class:`~components.reward_model.lookup.FeatureLookup`);
    ``score(contexts, slates)`` scores every item of every slate.
    """

    def __init__(self, encoder: Encoder, network: torch.nn.Module, head: Head):
        self.encoder = encoder
        self.network = network.eval()
        self.head = head
        self.lookup = None  # set by with_lookup(); needed by score()

    @property
    def input_columns(self) -> list[str]:
        """The columns :meth:`score_frame` reads."""
        e = self.encoder
        return [
            *e.user_features,
            e.genre_mix,
            "recent_tracks",
            "track_id",
            "artist_id",
            "t_genre_id",
            *e.candidate_features,
        ]

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def logits(self, tokens: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        out = np.empty(len(tokens), dtype=np.float32)
        with torch.no_grad():
            for lo in range(0, len(tokens), batch_size):
                x = torch.from_numpy(tokens[lo : lo + batch_size]).to(self.device)
                out[lo : lo + batch_size] = self.network(input_ids=x).logits[:, 0].float().cpu().numpy()
        return out

    def score_frame(self, frame: pl.DataFrame, batch_size: int = 8192) -> np.ndarray:
        """One reward per row, in the head's units."""
        return self.head.to_reward(self.logits(self.encoder.encode(frame), batch_size))

    def with_lookup(self, lookup) -> "RewardModel":
        self.lookup = lookup
        return self

    def score(
        self,
        user_ids: np.ndarray,
        slates: np.ndarray,
        histories: list[list[int]] | None = None,
        request_ts=None,
    ) -> np.ndarray:
        """(n, k) rewards of each slate item for each user (features from the attached lookup)."""
        if self.lookup is None:
            raise RuntimeError("RewardModel.score needs a FeatureLookup: call with_lookup(...) first")
        frame = self.lookup.frame(user_ids, slates, histories=histories, request_ts=request_ts)
        return self.score_frame(frame).reshape(slates.shape)

    # ------------------------------------------------------------------ persistence

    def save(self, path: Path, tracks: pl.DataFrame) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.network.save_pretrained(path)
        self.encoder.save(path, tracks)
        (path / META_FILE).write_text(json.dumps({"head": asdict(self.head)}, indent=2))

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "RewardModel":
        from transformers import BertForSequenceClassification

        path = Path(path)
        head = Head(**json.loads((path / META_FILE).read_text())["head"])
        network = BertForSequenceClassification.from_pretrained(path)
        network.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return cls(Encoder.load(path), network, head)
