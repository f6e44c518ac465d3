"""One explicit supervised training loop on Accelerate, shared by the reward model and SFT.

Readable top to bottom (nanoGPT/CleanRL style): shuffle, step, evaluate every N steps,
return the curve. ``accelerate launch`` decides the device and the number of processes;
the loop does not care.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from components.params import TrainParams


def train_loop(
    model: torch.nn.Module,
    tensors: tuple[torch.Tensor, ...],
    loss_of: Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], torch.Tensor],
    evaluate: Callable[[torch.nn.Module, torch.device], float],
    tp: TrainParams,
    seed: int,
    desc: str,
    progress: bool = True,
) -> list[dict]:
    """Minimise ``loss_of(model, batch)`` over ``tensors`` (rows = examples).

    ``evaluate(model, device)`` returns the held-out loss; it is called every
    ``tp.eval_every`` steps and at the end. Returns ``[{step, train_loss, eval_loss}, ...]``.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import get_linear_schedule_with_warmup

    set_seed(seed)
    accelerator = Accelerator()
    data = TensorDataset(*tensors)
    loader = DataLoader(
        data, batch_size=tp.batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=tp.learning_rate, weight_decay=tp.weight_decay)
    # The schedule is laid out in single-process steps: Accelerate's prepared scheduler advances
    # once per process at each step, so it ends on time however many processes share the data.
    total = tp.epochs * math.ceil(len(data) / tp.batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(tp.warmup_fraction * total), total)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    total = tp.epochs * len(loader)  # this process's steps: the prepared loader is its shard

    def held_out() -> float:
        model.eval()
        with torch.no_grad():
            value = evaluate(accelerator.unwrap_model(model), accelerator.device)
        model.train()
        return value

    curve, running, n_running, step = [], 0.0, 0, 0
    model.train()
    bar = tqdm(total=total, desc=desc, unit="step", disable=not (progress and accelerator.is_main_process))
    for _ in range(tp.epochs):
        for batch in loader:
            loss = loss_of(model, batch)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            running, n_running, step = running + loss.item(), n_running + 1, step + 1
            bar.update(1)
            if step % tp.eval_every == 0 or step == total:
                curve.append({"step": step, "train_loss": running / n_running, "eval_loss": held_out()})
                bar.set_postfix(loss=f"{curve[-1]['train_loss']:.4f}", eval=f"{curve[-1]['eval_loss']:.4f}")
                running, n_running = 0.0, 0
    bar.close()
    accelerator.wait_for_everyone()
    return curve
