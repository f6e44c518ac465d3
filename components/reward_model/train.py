"""Training loops. Pointwise: an explicit Accelerate loop (one script for CPU and GPUs).
Pairwise: TRL's ``RewardTrainer`` (Bradley-Terry) on same-slate preference pairs.

Both return the training curve: one row per evaluation with the step, the mean training
loss since the previous evaluation and the held-out loss.
"""

from __future__ import annotations

import math
import tempfile

import numpy as np
import torch
from tqdm.auto import tqdm

from components.params import TrainParams


def _loss_fn(kind: str):
    return torch.nn.BCEWithLogitsLoss() if kind == "bce" else torch.nn.MSELoss()


def _eval_loss(model, x: torch.Tensor, y: torch.Tensor, kind: str, batch: int = 4096) -> float:
    model.eval()
    total, loss_fn = 0.0, _loss_fn(kind)
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            xb, yb = x[lo : lo + batch], y[lo : lo + batch]
            logits = model(input_ids=xb).logits[:, 0]
            total += loss_fn(logits, yb).item() * len(xb)
    model.train()
    return total / max(len(x), 1)


def train_pointwise(model, x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray, y_eval: np.ndarray,
                    kind: str, tp: TrainParams, seed: int, progress: bool = True) -> list[dict]:
    """Minimise BCE or MSE of the single logit; evaluate every ``eval_every`` steps."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import get_linear_schedule_with_warmup

    set_seed(seed)
    accelerator = Accelerator()
    data = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train.astype(np.float32)))
    loader = DataLoader(data, batch_size=tp.batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=tp.learning_rate, weight_decay=tp.weight_decay)
    total_steps = tp.epochs * math.ceil(len(data) / tp.batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(tp.warmup_fraction * total_steps), total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    xe = torch.from_numpy(x_eval).to(accelerator.device)
    ye = torch.from_numpy(y_eval.astype(np.float32)).to(accelerator.device)
    loss_fn, curve, running, n_running, step = _loss_fn(kind), [], 0.0, 0, 0
    model.train()
    bar = tqdm(total=total_steps, desc=f"reward model ({kind})", unit="step", disable=not (progress and accelerator.is_main_process))
    for _ in range(tp.epochs):
        for xb, yb in loader:
            logits = model(input_ids=xb).logits[:, 0]
            loss = loss_fn(logits, yb)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            running, n_running, step = running + loss.item(), n_running + 1, step + 1
            bar.update(1)
            if step % tp.eval_every == 0 or step == total_steps:
                curve.append({"step": step, "train_loss": running / n_running, "eval_loss": _eval_loss(model, xe, ye, kind)})
                bar.set_postfix(loss=f"{curve[-1]['train_loss']:.4f}", eval=f"{curve[-1]['eval_loss']:.4f}")
                running, n_running = 0.0, 0
    bar.close()
    accelerator.wait_for_everyone()
    return curve


def train_pairwise(model, tokenizer, chosen: np.ndarray, rejected: np.ndarray, margin: np.ndarray,
                   eval_chosen: np.ndarray, eval_rejected: np.ndarray, tp: TrainParams, seed: int) -> list[dict]:
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
            output_dir=out, num_train_epochs=tp.epochs, per_device_train_batch_size=tp.batch_size,
            per_device_eval_batch_size=1024, learning_rate=tp.learning_rate, weight_decay=tp.weight_decay,
            warmup_steps=tp.warmup_fraction, lr_scheduler_type="linear", logging_steps=tp.eval_every,
            eval_strategy="steps", eval_steps=tp.eval_every, save_strategy="no", report_to=[], seed=seed,
            max_length=None, disable_tqdm=False, dataloader_num_workers=0,
            bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        )
        trainer = RewardTrainer(
            model=model, args=args, processing_class=tokenizer,
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
