"""Training loops. Pointwise: an explicit Accelerate loop (one script for CPU and GPUs).
Pairwise: TRL's ``RewardTrainer`` (Bradley-Terry) on same-slate preference pairs.

Both return the training curve: one row per evaluation with the step, the mean training
loss since the previous evaluation and the held-out loss.
"""

from __future__ import annotations

import tempfile

import numpy as np
import torch

from components.params import TrainParams
from components.trainloop import train_loop


def _loss_fn(kind: str):
    return torch.nn.BCEWithLogitsLoss() if kind == "bce" else torch.nn.MSELoss()


def train_pointwise(
    model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    kind: str,
    tp: TrainParams,
    seed: int,
    progress: bool = True,
) -> list[dict]:
    """Minimise BCE or MSE of the single logit (the shared Accelerate loop)."""
    loss_fn = _loss_fn(kind)

    def loss_of(net, batch) -> torch.Tensor:
        x, y = batch
        return loss_fn(net(input_ids=x).logits[:, 0], y)

    def held_out(net, device) -> float:
        total = 0.0
        for lo in range(0, len(x_eval), 4096):
            xb = torch.from_numpy(x_eval[lo : lo + 4096]).to(device)
            yb = torch.from_numpy(y_eval[lo : lo + 4096].astype(np.float32)).to(device)
            total += loss_fn(net(input_ids=xb).logits[:, 0], yb).item() * len(xb)
        return total / max(len(x_eval), 1)

    tensors = (torch.from_numpy(x_train), torch.from_numpy(y_train.astype(np.float32)))
    return train_loop(model, tensors, loss_of, held_out, tp, seed, f"reward model ({kind})", progress)


def train_pairwise(
    model,
    tokenizer,
    chosen: np.ndarray,
    rejected: np.ndarray,
    margin: np.ndarray,
    eval_chosen: np.ndarray,
    eval_rejected: np.ndarray,
    tp: TrainParams,
    seed: int,
) -> list[dict]:
    """Bradley-Terry on (chosen, rejected) token rows with TRL's RewardTrainer."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    def dataset(c: np.ndarray, r: np.ndarray, m: np.ndarray | None) -> Dataset:
        cols = {"chosen_ids": _unpadded(c), "rejected_ids": _unpadded(r)}
        if m is not None:
            cols["margin"] = m.astype(np.float32).tolist()
        return Dataset.from_dict(cols)

    with tempfile.TemporaryDirectory() as out:
        args = RewardConfig(
            output_dir=out,
            num_train_epochs=tp.epochs,
            per_device_train_batch_size=tp.batch_size,
            per_device_eval_batch_size=1024,
            learning_rate=tp.learning_rate,
            weight_decay=tp.weight_decay,
            warmup_steps=tp.warmup_fraction,
            lr_scheduler_type="linear",
            logging_steps=tp.eval_every,
            eval_strategy="steps",
            eval_steps=tp.eval_every,
            save_strategy="no",
            report_to=[],
            seed=seed,
            max_length=None,
            disable_tqdm=False,
            dataloader_num_workers=0,
            bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        )
        trainer = RewardTrainer(
            model=model,
            args=args,
            processing_class=tokenizer,
            train_dataset=dataset(chosen, rejected, None),
            eval_dataset=dataset(eval_chosen, eval_rejected, None),
        )
        trainer.train()
        history = trainer.state.log_history
    curve: dict[int, dict] = {}
    for row in history:
        entry = curve.setdefault(row["step"], {"step": row["step"]})
        if "loss" in row:
            entry["train_loss"] = row["loss"]
        if "eval_loss" in row:
            entry["eval_loss"] = row["eval_loss"]
    return [c for c in sorted(curve.values(), key=lambda c: c["step"]) if "eval_loss" in c]


def _unpadded(tokens: np.ndarray) -> list[list[int]]:
    """Rows as lists. The layout is fixed-width and [PAD] marks an empty history slot: it is a
    token like any other (attended to, in training and scoring alike), so positions never shift."""
    return tokens.tolist()
