"""Stage ``sft_policy``: teach the generative recommender to imitate listening.

Outputs (``out_dir``, atomically): the causal LM (``save_pretrained``), its tokenizer,
``item_vocab.json`` (prompt layout + bucket edges), ``curve.csv``/``curve.png``. Metrics:
held-out listeners' next plays — Recall@k and NDCG@k of greedy slates against a popularity
baseline — and the share of generated slates that satisfy the constraints.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from components.io import atomic_dir
from components.params import Params
from components.policy import metrics as M
from components.policy.decoding import generate_slates
from components.policy.model import CURVE_CSV, build
from components.policy.sequences import Sequences, load_sequences, split
from components.policy.vocab import ItemVocab
from components.tracking import is_main_process
from components.trainloop import train_loop


def run(
    params: Params, raw_dir: Path, features_dir: Path, out_dir: Path, progress: bool = True
) -> dict[str, float]:
    sp = params.sft_policy
    seqs, catalogue, _ = load_sequences(sp, raw_dir, features_dir)
    train, test, split_day = split(seqs, sp)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"sft_policy: empty split (train {len(train)}, test {len(test)} sequences)")
    vocab = ItemVocab.fit(
        train.features,
        sp.prompt_features,
        catalogue.tolist(),
        sp.history_length,
        sp.slate_size,
        sp.feature_buckets,
    )
    model, tokenizer = build(vocab, sp.model, sp.base_model, sp.seed)
    vocab.bind(tokenizer)

    def tensors(s: Sequences) -> tuple[torch.Tensor]:
        ids = np.concatenate(
            [vocab.prompts(s.features, s.history), vocab.track_to_token(s.completion)], axis=1
        )
        return (torch.from_numpy(ids),)

    (x_eval,) = tensors(test.take(np.arange(min(len(test), 5000))))

    def loss_of(net, batch) -> torch.Tensor:
        return slate_loss(net, batch[0], vocab.prompt_length)

    def held_out(net, device) -> float:
        return float(
            np.mean(
                [
                    slate_loss(net, x_eval[i : i + 1024].to(device), vocab.prompt_length).item()
                    for i in range(0, len(x_eval), 1024)
                ]
            )
        )

    started = time.perf_counter()
    curve = train_loop(model, tensors(train), loss_of, held_out, sp.train, sp.seed, "sft policy", progress)
    train_seconds = time.perf_counter() - started
    if not is_main_process():
        return {}

    model = model.cpu()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    probe = test.take(np.arange(min(len(test), sp.max_eval_prompts)))
    prompts = vocab.prompts(probe.features, probe.history)
    slates = generate_slates(model, vocab, prompts, sample=False)
    recall, ndcg = M.recall_ndcg(slates, probe.completion)
    pop_recall, pop_ndcg = M.recall_ndcg(
        M.popularity_slates(train.completion.ravel(), probe.history, sp.slate_size), probe.completion
    )
    metrics = {
        f"eval/recall_at_{sp.slate_size}": recall,
        f"eval/ndcg_at_{sp.slate_size}": ndcg,
        f"baseline_popularity/recall_at_{sp.slate_size}": pop_recall,
        f"baseline_popularity/ndcg_at_{sp.slate_size}": pop_ndcg,
        "eval/valid_slate_rate": M.valid_slate_rate(slates, probe.history, catalogue),
        "eval/distinct_tracks_recommended": float(len(np.unique(slates))),
        "train/sequences": len(train),
        "train/test_sequences": len(test),
        "train/split_day": split_day,
        "train/sequences_per_second": len(train) * sp.train.epochs / train_seconds,
        "train/final_eval_loss": curve[-1]["eval_loss"] if curve else float("nan"),
        "train/parameters": sum(p.numel() for p in model.parameters()),
    }
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        vocab.save(tmp)
        pl.DataFrame(curve).write_csv(tmp / CURVE_CSV)
        _plot(curve, tmp / "curve.png")
    return metrics


def slate_loss(net, ids: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """Cross-entropy of the slate tokens only: the LM head runs on the k positions that predict
    them, not on the prompt (3-4x less work than full-sequence logits)."""
    hidden = net.base_model(input_ids=ids).last_hidden_state[:, prompt_length - 1 : -1]
    logits = net.get_output_embeddings()(hidden)
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), ids[:, prompt_length:].reshape(-1)
    )


def _plot(curve: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if curve:
        ax.plot([c["step"] for c in curve], [c["train_loss"] for c in curve], label="train loss")
        ax.plot([c["step"] for c in curve], [c["eval_loss"] for c in curve], label="held-out loss")
    ax.set(xlabel="step", ylabel="cross-entropy (slate tokens)", title="SFT policy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
