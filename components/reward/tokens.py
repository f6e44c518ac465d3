"""The reward model's vocabulary: every input — ids and bucketed numbers — is a token.

A scored example is one fixed-layout sequence::

    [CLS] u_feat=b ... [HIST] t.. t.. ... a.. a.. ... [CAND] t<id> a<id> g<id> t_feat=b ... ua_feat=b ...

User features, the listener's recent tracks and their artists (the context), then the
candidate track, its artist, genre and features. Numbers become quantile-bucket tokens
(edges fitted on the training split), nulls get their own token per feature — a transformer
over tokens then needs no separate numeric pathway, and the same tokenizer encodes
training frames, RL slates and evaluation logs.

Encoding is arithmetic (``base id + bucket``) so millions of rows encode in numpy; the
``tokenizers`` WordLevel tokenizer saved with the model holds the same vocabulary, for
inspection and for any consumer that prefers strings (a test checks they agree).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from components.buckets import bucket_of, quantile_edges
from components.sequences import right_aligned

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[HIST]", "[CAND]"]
# How the candidate relates to the listening context, derived from the history and the
# catalogue (both observable): the cheapest strong signal of affinity, which a transformer
# trained on a few hundred thousand rows would otherwise have to discover from ids alone.
DERIVED = ["x_genre_share", "x_artist_count", "x_track_in_history", "x_user_genre_share", "x_cf_affinity"]
CF_DIM = 16  # artist embedding size for the co-listening affinity
PAD, UNK, CLS, HIST, CAND = range(len(SPECIALS))
VOCAB_FILE = "encoder.json"


@dataclass
class Encoder:
    """Vocabulary layout + bucket edges. ``fit`` on training data, ``encode`` anything."""

    user_features: list[str]
    candidate_features: list[str]
    track_ids: list[int]
    artist_ids: list[int]
    genre_ids: list[int]
    history_length: int
    genre_mix: str  # the list feature with the listener's share of streams per genre
    edges: dict[str, list[float]] = field(default_factory=dict)
    artist_embedding: list[list[float]] = field(default_factory=list)  # (artists, CF_DIM), co-listening

    # ------------------------------------------------------------------ vocabulary

    @property
    def bucketed(self) -> list[str]:
        return self.user_features + self.candidate_features + DERIVED

    @property
    def n_buckets(self) -> dict[str, int]:
        """Tokens per feature: one per bucket plus one for null."""
        return {f: len(self.edges[f]) + 2 for f in self.bucketed}

    def _bases(self) -> dict[str, int]:
        base, out = len(SPECIALS), {}
        for name, size in (
            ("track", len(self.track_ids)),
            ("artist", len(self.artist_ids)),
            ("genre", len(self.genre_ids)),
        ):
            out[name] = base
            base += size + 1  # + one "unknown id" token per kind
        for f, size in self.n_buckets.items():
            out[f] = base
            base += size
        out["_end"] = base
        return out

    @property
    def vocab_size(self) -> int:
        return self._bases()["_end"]

    @property
    def sequence_length(self) -> int:
        return (
            2
            + len(self.user_features)
            + 2 * self.history_length
            + 1
            + 3
            + len(self.candidate_features)
            + len(DERIVED)
        )

    def vocabulary(self) -> dict[str, int]:
        """Token string -> id, exactly matching :meth:`encode`."""
        b = self._bases()
        vocab = {s: i for i, s in enumerate(SPECIALS)}
        for kind, ids, prefix in (
            ("track", self.track_ids, "t"),
            ("artist", self.artist_ids, "a"),
            ("genre", self.genre_ids, "g"),
        ):
            vocab.update({f"{prefix}{x}": b[kind] + i for i, x in enumerate(ids)})
            vocab[f"{prefix}?"] = b[kind] + len(ids)
        for f, size in self.n_buckets.items():
            vocab.update({f"{f}={k}": b[f] + k for k in range(size - 1)})
            vocab[f"{f}=null"] = b[f] + size - 1
        return vocab

    # ------------------------------------------------------------------ fitting

    @classmethod
    def fit(
        cls,
        frame: pl.DataFrame,
        user_features: list[str],
        candidate_features: list[str],
        tracks: pl.DataFrame,
        history_length: int,
        n_buckets: int,
        genre_mix: str,
    ) -> "Encoder":
        """Quantile edges per feature from ``frame`` (the training split) and the catalogue's ids."""
        enc = cls(
            user_features=user_features,
            candidate_features=candidate_features,
            track_ids=tracks["track_id"].sort().to_list(),
            artist_ids=tracks["artist_id"].unique().sort().to_list(),
            genre_ids=tracks["genre_id"].unique().sort().to_list(),
            history_length=history_length,
            genre_mix=genre_mix,
        )
        enc.attach_catalogue(tracks)
        enc.artist_embedding = enc._fit_artist_embedding(
            right_aligned(frame["recent_tracks"], history_length)
        ).tolist()
        frame = frame.with_columns(**enc.derived(frame))
        for f in enc.bucketed:
            enc.edges[f] = quantile_edges(frame[f].drop_nulls().cast(pl.Float64).to_numpy(), n_buckets)
        return enc

    # ------------------------------------------------------------------ encoding

    def _ids(self, values: np.ndarray, vocab_ids: list[int], base: int) -> np.ndarray:
        known = np.asarray(vocab_ids)
        pos = np.searchsorted(known, values)
        pos = np.minimum(pos, len(known) - 1)
        hit = (known[pos] == values) & (values >= 0)
        return np.where(hit, base + pos, base + len(known))

    def _bucket(self, frame: pl.DataFrame, f: str, base: int) -> np.ndarray:
        col = frame[f]
        values = col.cast(pl.Float64).fill_null(np.nan).to_numpy()
        return np.where(
            np.isnan(values), base + len(self.edges[f]) + 1, base + bucket_of(values, self.edges[f])
        )

    def encode(self, frame: pl.DataFrame) -> np.ndarray:
        """(rows, sequence_length) int64 token ids. ``frame`` needs the feature columns,
        ``recent_tracks`` (list of track ids), ``track_id``, ``artist_id`` and ``t_genre_id``."""
        b, n, H = self._bases(), frame.height, self.history_length
        out = np.full((n, self.sequence_length), PAD, dtype=np.int64)
        out[:, 0] = CLS
        col = 1
        for f in self.user_features:
            out[:, col] = self._bucket(frame, f, b[f])
            col += 1
        out[:, col] = HIST
        col += 1
        hist = right_aligned(frame["recent_tracks"], H)
        has = hist >= 0
        out[:, col : col + H] = np.where(has, self._ids(hist, self.track_ids, b["track"]), PAD)
        out[:, col + H : col + 2 * H] = np.where(
            has, self._ids(self.history_artists(hist), self.artist_ids, b["artist"]), PAD
        )
        col += 2 * H
        out[:, col] = CAND
        out[:, col + 1] = self._ids(frame["track_id"].to_numpy(), self.track_ids, b["track"])
        out[:, col + 2] = self._ids(frame["artist_id"].to_numpy(), self.artist_ids, b["artist"])
        genre = frame["t_genre_id"].fill_null(-1).to_numpy()
        out[:, col + 3] = self._ids(genre, self.genre_ids, b["genre"])
        col += 4
        derived = frame.select(**self.derived(frame, hist))
        for f in self.candidate_features:
            out[:, col] = self._bucket(frame, f, b[f])
            col += 1
        for f in DERIVED:
            out[:, col] = self._bucket(derived, f, b[f])
            col += 1
        return out

    def _fit_artist_embedding(self, hist: np.ndarray) -> np.ndarray:
        """Artist vectors from co-listening (artists that share listeners' recent histories):
        truncated SVD of the positive PMI of the artist co-occurrence matrix. Fitted on the
        training split's histories only, so held-out rows never inform it."""
        A = len(self.artist_ids)
        pos = np.searchsorted(np.asarray(self.artist_ids), self.history_artists(hist))
        valid = hist >= 0
        rows = np.repeat(np.arange(len(hist)), valid.sum(axis=1))
        user_artist = np.zeros((len(hist), A), dtype=np.float32)
        user_artist[rows, pos[valid]] = 1.0
        co = user_artist.T @ user_artist
        total = co.sum()
        marg = co.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            pmi = np.log(co * total / np.outer(marg, marg))
        ppmi = np.where(np.isfinite(pmi) & (pmi > 0), pmi, 0.0)
        u, sv, _ = np.linalg.svd(ppmi)
        emb = u[:, :CF_DIM] * np.sqrt(sv[:CF_DIM])
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)

    def derived(self, frame: pl.DataFrame, hist: np.ndarray | None = None) -> dict[str, pl.Series]:
        """Candidate-vs-history features (see ``DERIVED``)."""
        if hist is None:
            hist = right_aligned(frame["recent_tracks"], self.history_length)
        valid = hist >= 0
        n_valid = valid.sum(axis=1)
        cand_track = frame["track_id"].to_numpy()[:, None]
        cand_artist = frame["artist_id"].to_numpy()[:, None]
        cand_genre = self._catalogue(frame["track_id"].to_numpy(), self._genre_sorted)[:, None]
        same_genre = (self._catalogue(hist, self._genre_sorted) == cand_genre) & valid
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(n_valid > 0, same_genre.sum(axis=1) / np.maximum(n_valid, 1), np.nan)
        mix = frame[self.genre_mix].cast(pl.List(pl.Float64))
        G = len(self.genre_ids)
        mix = pl.select(pl.when(mix.list.len() == G).then(mix).otherwise(None).list.to_array(G)).to_series()
        mix = mix.to_numpy().reshape(len(frame), G) if len(frame) else np.zeros((0, G))
        gpos = np.clip(np.searchsorted(np.asarray(self.genre_ids), cand_genre[:, 0]), 0, G - 1)
        user_genre_share = mix[np.arange(len(frame)), gpos] if len(frame) else np.zeros(0)
        emb = np.asarray(self.artist_embedding, dtype=np.float32)
        apos = np.clip(
            np.searchsorted(np.asarray(self.artist_ids), self.history_artists(hist)),
            0,
            len(self.artist_ids) - 1,
        )
        profile = (emb[apos] * valid[..., None]).sum(axis=1)
        profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-9)
        cpos = np.clip(
            np.searchsorted(np.asarray(self.artist_ids), cand_artist[:, 0]), 0, len(self.artist_ids) - 1
        )
        cf = np.where(n_valid > 0, (profile * emb[cpos]).sum(axis=1), np.nan)
        return {
            "x_cf_affinity": pl.Series(cf.astype(np.float64)).fill_nan(None),
            "x_user_genre_share": pl.Series(user_genre_share, dtype=pl.Float64).fill_nan(None),
            "x_genre_share": pl.Series(share).fill_nan(None),
            "x_artist_count": pl.Series(((self.history_artists(hist) == cand_artist) & valid).sum(axis=1)),
            "x_track_in_history": pl.Series(((hist == cand_track) & valid).any(axis=1).astype(np.int64)),
        }

    def attach_catalogue(self, tracks: pl.DataFrame) -> None:
        """Remember each track's artist and genre (history items are looked up, not logged)."""
        t = tracks.sort("track_id")
        self._track_sorted = t["track_id"].to_numpy()
        self._artist_sorted = t["artist_id"].to_numpy()
        self._genre_sorted = t["genre_id"].to_numpy()

    def catalogue(self) -> pl.DataFrame:
        """``track_id``, ``artist_id`` of every catalogue track the encoder was fitted with."""
        if not hasattr(self, "_track_sorted"):
            raise RuntimeError("Encoder.attach_catalogue(tracks) must be called first")
        return pl.DataFrame({"track_id": self._track_sorted, "artist_id": self._artist_sorted})

    def _catalogue(self, ids: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Catalogue attribute of each track id (-1 for padding or unknown ids)."""
        if not hasattr(self, "_track_sorted"):
            raise RuntimeError("Encoder.attach_catalogue(tracks) must be called before encoding")
        pos = np.clip(np.searchsorted(self._track_sorted, ids), 0, len(self._track_sorted) - 1)
        return np.where((ids >= 0) & (self._track_sorted[pos] == ids), values[pos], -1)

    def history_artists(self, hist: np.ndarray) -> np.ndarray:
        return self._catalogue(hist, self._artist_sorted)

    # ------------------------------------------------------------------ persistence

    def save(self, path: Path, tracks: pl.DataFrame) -> None:
        """Write the layout + edges (``encoder.json``), the catalogue map and a HF tokenizer."""
        from tokenizers import Tokenizer
        from tokenizers.models import WordLevel
        from tokenizers.pre_tokenizers import WhitespaceSplit
        from transformers import PreTrainedTokenizerFast

        path.mkdir(parents=True, exist_ok=True)
        state = {
            k: getattr(self, k)
            for k in (
                "user_features",
                "candidate_features",
                "track_ids",
                "artist_ids",
                "genre_ids",
                "history_length",
                "genre_mix",
                "edges",
                "artist_embedding",
            )
        }
        (path / VOCAB_FILE).write_text(json.dumps(state))
        tracks.select("track_id", "artist_id", "genre_id").sort("track_id").write_parquet(
            path / "catalogue.parquet"
        )
        tok = Tokenizer(WordLevel(self.vocabulary(), unk_token="[UNK]"))
        tok.pre_tokenizer = WhitespaceSplit()
        PreTrainedTokenizerFast(
            tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]"
        ).save_pretrained(path)

    @classmethod
    def load(cls, path: Path) -> "Encoder":
        enc = cls(**json.loads((path / VOCAB_FILE).read_text()))
        enc.attach_catalogue(pl.read_parquet(path / "catalogue.parquet"))
        return enc
