"""Stage ``reward_model``: learn the mid-term reward (or, for the ablation, the click) from logs.

Outputs (``out_dir``, atomically): the network (``save_pretrained``), the encoder and its
tokenizer, ``reward_model.json`` (head: how a logit becomes a reward), ``curve.csv`` (the
training curve, also a DVC plot) and ``curve.png``. Returns held-out metrics for the
transformer (``eval/...``) and for the gradient-boosting baseline (``baseline/...``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from components import contract
from components.io import atomic_dir
from components.library import LIBRARY_LABELS, Library
from components.params import Params
from components.reward import examples as D
from components.reward.composite import active_weights
from components.reward.model import EXAMPLE_FILE, META_FILE, Head, RewardModel, build
from components.reward.tokens import Encoder
from components.reward_model.baseline import fit_predict
from components.reward_model.metrics import evaluate
from components.reward_model.train import train_pairwise, train_pointwise
from components.tracking import is_main_process

Variant = Literal["midterm", "click"]
CURVE_CSV = "curve.csv"
# held-out rows behind the training curve's eval loss (every train.eval_every steps): the full
# held-out set is scored once at the end; at 20,000 rows the curve cost ~40 s of each model's
# ~150 s of training on 2 cores
EVAL_CURVE_ROWS = 5_000


def _binary(frame: pl.DataFrame, target: str) -> bool:
    return frame[target].dtype == pl.Boolean


def run(
    params: Params,
    raw_dir: Path,
    features_dir: Path,
    labels_dir: Path,
    out_dir: Path,
    variant: Variant = "midterm",
    progress: bool = True,
    *,
    signals_dir: Path,
    experiments_dir: Path,
    served: D.ServedExamples | None = None,
    warm_start: Path | None = None,
) -> dict[str, float]:
    """Train the ``variant`` reward model; ``served``: examples to add from a candidate policy's
    served slates (the closed loop, :mod:`pipelines.loop`).

    ``warm_start``: a saved reward model to fine-tune instead of a fresh one — its encoder (the
    buckets and vocabulary it was fitted with), its weights and its head (the label scale its
    outputs are in) are kept. The loop's rounds use it: each round's model continues the last's."""
    rp = params.reward_model
    target = getattr(rp.targets, variant)
    weights = active_weights(signals_dir)
    # the split without holding every example (a training-frame row is ~0.5 kB)
    parts = D.load_split(features_dir, labels_dir, target, weights, rp, served)
    served_count = parts.served
    tracks = pl.from_arrow(contract.read(raw_dir, "tracks", ["track_id", "artist_id", "genre_id"]))
    library = _library_examples(
        params, raw_dir, features_dir, signals_dir, experiments_dir, tracks, target, weights
    )
    if library.height:
        parts = D.Split(
            train=pl.concat([parts.train, library], how="diagonal_relaxed"),
            test=parts.test,
            split_day=parts.split_day,
        )
    user_f, cand_f = D.feature_lists(params.features)
    binary = _binary(parts.test, target)
    head_kind = "bradley_terry" if rp.objective == "pairwise" else "bce" if binary else "mse"
    previous = _warm_start(warm_start, head_kind, target) if warm_start is not None else None
    encoder = (
        previous.encoder
        if previous is not None
        else Encoder.fit(
            parts.train,
            user_f,
            cand_f,
            tracks,
            rp.history_length,
            rp.n_buckets,
            D.genre_mix_feature(params.features),
        )
    )
    x_train, x_test = encoder.encode(parts.train), encoder.encode(parts.test)
    y_train = parts.train[target].cast(pl.Float64).to_numpy()
    network = previous.network if previous is not None else build(encoder, rp.model, rp.seed)

    started = time.perf_counter()
    if rp.objective == "pointwise":
        if previous is not None:  # the saved model's outputs are in its head's units
            head = previous.head
        elif binary:
            head = Head("bce", target)
        else:
            head = Head("mse", target, float(y_train.mean()), float(y_train.std() or 1.0))
        y_std = y_train if binary else (y_train - head.mean) / head.std
        y_test = parts.test[target].cast(pl.Float64).to_numpy()
        y_test_std = y_test if binary else (y_test - head.mean) / head.std
        eval_rows = slice(0, min(len(x_test), EVAL_CURVE_ROWS))
        curve = train_pointwise(
            network,
            x_train,
            y_std,
            x_test[eval_rows],
            y_test_std[eval_rows],
            head.kind,
            rp.train,
            rp.seed,
            progress,
        )
        n_examples = len(x_train) * rp.train.epochs
    else:
        head = Head("bradley_terry", target)
        pairs = D.preference_pairs(parts.train, target, rp.max_pairs, rp.seed)
        test_pairs = D.preference_pairs(parts.test, target, 20_000, rp.seed)
        if pairs.height == 0 or test_pairs.height == 0:
            raise ValueError(
                f"reward_model.objective=pairwise: {pairs.height} training and {test_pairs.height} held-out "
                f"pairs (two impressions of one session with different '{target}') in "
                f"{parts.train.height:,} + {parts.test.height:,} examples; the log is too small for "
                "pairwise training, use reward_model.objective=pointwise"
            )
        from transformers import PreTrainedTokenizerFast

        with _saved_tokenizer(encoder, tracks) as tok_dir:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(tok_dir)
        curve = train_pairwise(
            network,
            tokenizer,
            x_train[pairs["chosen"].to_numpy()],
            x_train[pairs["rejected"].to_numpy()],
            pairs["margin"].to_numpy(),
            x_test[test_pairs["chosen"].to_numpy()],
            x_test[test_pairs["rejected"].to_numpy()],
            rp.train,
            rp.seed,
        )
        n_examples = 2 * pairs.height * rp.train.epochs
    train_seconds = time.perf_counter() - started
    if not is_main_process():  # data-parallel workers trained; only rank 0 evaluates and writes
        return {}

    model = RewardModel(encoder, network.cpu(), head)
    t = time.perf_counter()
    scores = model.score_frame(parts.test)
    score_seconds = time.perf_counter() - t
    metrics = evaluate(parts.test, scores, target, head.calibrated, "eval")
    baseline = fit_predict(parts.train, parts.test, user_f + cand_f, target, binary, rp.seed)
    metrics |= evaluate(parts.test, baseline, target, True, "baseline")

    with atomic_dir(out_dir) as tmp:
        model.save(tmp, tracks)
        pl.DataFrame(curve).write_csv(tmp / CURVE_CSV)
        parts.test.select(model.input_columns).head(16).write_parquet(tmp / EXAMPLE_FILE)
        _plot_curve(curve, tmp / "curve.png", f"{variant} reward model ({target}, {rp.objective})")
    return metrics | {
        "train/examples": len(x_train),
        "train/library_examples": library.height,
        "train/served_examples": served_count,
        "train/test_examples": len(x_test),
        "train/split_day": parts.split_day,
        "train/final_train_loss": curve[-1].get("train_loss", float("nan")) if curve else float("nan"),
        "train/final_eval_loss": curve[-1]["eval_loss"] if curve else float("nan"),
        "train/examples_per_second": n_examples / train_seconds,
        "eval/scores_per_second": len(x_test) / score_seconds,
        "train/parameters": sum(p.numel() for p in network.parameters()),
    }


def _warm_start(path: Path, head_kind: str, target: str) -> RewardModel:
    """The saved reward model at ``path``, checked to be the kind of model this run trains."""
    if not (Path(path) / META_FILE).exists():
        raise FileNotFoundError(f"reward model warm start: {path} holds no saved reward model ({META_FILE})")
    previous = RewardModel.load(path, device="cpu")
    if (previous.head.kind, previous.head.target) != (head_kind, target):
        raise ValueError(
            f"reward model warm start: {path} is a {previous.head.kind} model of '{previous.head.target}'; "
            f"this run trains a {head_kind} model of '{target}'"
        )
    return previous


def _library_examples(
    params: Params,
    raw_dir: Path,
    features_dir: Path,
    signals_dir: Path,
    experiments_dir: Path,
    tracks: pl.DataFrame,
    target: str,
    weights: dict[str, float],
) -> pl.DataFrame:
    """Examples from the experiment library's arms (none when it is empty or not asked for)."""
    rp = params.reward_model
    labels_file = Path(signals_dir) / LIBRARY_LABELS
    if rp.max_library_examples == 0 or not labels_file.exists():
        return pl.DataFrame()
    library = Library.read(experiments_dir)
    if library.empty:
        return pl.DataFrame()
    raw_plays = pl.from_arrow(contract.read(raw_dir, "plays", ["user_id", "ts", "track_id"]))
    return D.library_examples(
        pl.read_parquet(labels_file),
        library,
        raw_plays,
        features_dir,
        params.features,
        rp,
        tracks,
        target,
        weights,
    )


class _saved_tokenizer:
    """A temporary folder with the encoder's HF tokenizer (TRL wants a processing class)."""

    def __init__(self, encoder: Encoder, tracks: pl.DataFrame):
        self.encoder, self.tracks = encoder, tracks

    def __enter__(self) -> str:
        import tempfile

        self._tmp = tempfile.TemporaryDirectory()
        self.encoder.save(Path(self._tmp.name), self.tracks)
        return self._tmp.name

    def __exit__(self, *exc) -> None:
        self._tmp.cleanup()


def _plot_curve(curve: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if curve:
        steps = [c["step"] for c in curve]
        ax.plot(steps, [c.get("train_loss", np.nan) for c in curve], label="train loss")
        ax.plot(steps, [c["eval_loss"] for c in curve], label="held-out loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
