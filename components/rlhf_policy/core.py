"""Stage ``rlhf_policy``: GRPO fine-tuning of the SFT policy against a reward model, KL-anchored.

Why GRPO (TRL): a slate gets one scalar reward, and GRPO's group-relative advantage (several
slates per prompt, compared with each other) needs no value network — there is nothing to
learn per token, and no critic to fit on a CPU budget. RLOO would do the same job; GRPO is
TRL's maintained path with the richer diagnostics (KL, entropy, clip ratios per step).

Sampling uses the same constrained decoding as everywhere (``policy.decoding``): every
RL slate is k distinct valid tracks. Checkpoints every ``checkpoint_every`` steps into
``checkpoint_dir`` (kept between runs); a rerun resumes from the last one and, with the same
seed, lands on the same weights as an uninterrupted run.

Outputs (``out_dir``): the policy (``save_pretrained``), tokenizer, item vocabulary,
``curve.csv`` (per step: reward, KL, entropy, slate diversity, and — in simulation — the
true long-term value of the slates), ``curve.png`` (reward and KL; proxy vs true against KL),
``ranker/``: a copy of the reward model it was trained against (generate-then-rank serving).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import polars as pl
import torch

from components import contract
from components.featurestore.lookup import FeatureLookup
from components.io import atomic_dir
from components.params import Params
from components.policy.decoding import generation_kwargs
from components.policy.model import CURVE_CSV, RANKER_DIR
from components.policy.model import load as load_policy
from components.reward.model import RewardModel
from components.rlhf_policy.rewards import SlateReward
from components.sequences import right_aligned
from components.tracking import is_main_process
from components.world.watch import truth_watch

KILL_SWITCH = "ENCORE_RL_KILL_AFTER_SAVE_AT_STEP"  # tests: SIGKILL right after that checkpoint is written
CURVE_COLUMNS = {
    "reward": "reward",
    "kl": "kl",
    "entropy": "entropy",
    "slates/genre_diversity": "diversity",
    "slates/artist_diversity": "artist_diversity",
    "slates/distinct_share": "distinct_share",
    "slates/effective_artists": "effective_artists",
    "watch/true_value": "true_value",
    "watch/proxy_reward": "proxy_reward",
    "slates/valid_rate": "valid_rate",
}


def prompt_dataset(lookup: FeatureLookup, vocab, tokenizer, n_prompts: int, seed: int):
    """Listener contexts at the end of the log (features + recent plays) as GRPO prompts."""
    from datasets import Dataset

    users = lookup.users()
    if users.height > n_prompts:
        users = users.sample(n_prompts, seed=seed)
    histories = right_aligned(users["recent_tracks"], vocab.history_length)
    prompts = vocab.prompts(users.select(vocab.features), histories)
    return Dataset.from_dict(
        {
            "prompt": vocab.texts(prompts, tokenizer),
            "user_id": users["user_id"].to_list(),
            "history": [[int(t) for t in row if t >= 0] for row in histories],
        }
    )


def run(
    params: Params,
    raw_dir: Path,
    features_dir: Path,
    sft_dir: Path,
    reward_dir: Path,
    out_dir: Path,
    checkpoint_dir: Path,
    world_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, float]:
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import GRPOConfig, GRPOTrainer

    rp = params.rlhf_policy
    _, tokenizer, vocab = load_policy(sft_dir)
    tracks = pl.from_arrow(contract.read(raw_dir, "tracks", ["track_id", "artist_id", "genre_id"]))
    lookup = FeatureLookup.from_sources(features_dir, params.features, tracks)
    reward_model = RewardModel.load(reward_dir).with_lookup(lookup)
    watch = truth_watch(world_dir)
    reward = SlateReward(
        reward_model,
        vocab,
        dict(zip(tracks["track_id"].to_list(), tracks["genre_id"].to_list())),
        dict(zip(tracks["track_id"].to_list(), tracks["artist_id"].to_list())),
        rp.invalid_slate_reward,
        observers=[watch] if watch else [],
    )
    dataset = prompt_dataset(lookup, vocab, tokenizer, rp.n_prompts, rp.seed)

    args = GRPOConfig(
        output_dir=str(checkpoint_dir),
        seed=rp.seed,
        max_steps=rp.max_steps,
        learning_rate=rp.learning_rate,
        per_device_train_batch_size=rp.prompts_per_step * rp.num_generations,
        num_generations=rp.num_generations,
        max_completion_length=vocab.slate_size,
        temperature=rp.temperature,
        beta=rp.beta,
        scale_rewards=rp.scale_rewards,
        generation_kwargs=generation_kwargs(vocab),
        logging_steps=1,
        save_strategy="steps",
        save_steps=rp.checkpoint_every,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    )

    class KillSwitch(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if os.environ.get(KILL_SWITCH) == str(state.global_step):
                os.kill(os.getpid(), signal.SIGKILL)

    class Progress(TrainerCallback):
        """One bar with reward and KL (the default callback prints every step's full log dict)."""

        def on_train_begin(self, args, state, control, **kwargs):
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=state.max_steps,
                initial=state.global_step,
                desc="rlhf (GRPO)",
                unit="step",
                disable=not progress,
            )

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "reward" in logs:
                self.bar.set_postfix(reward=f"{logs['reward']:.3f}", kl=f"{logs.get('kl', float('nan')):.3f}")

        def on_step_end(self, args, state, control, **kwargs):
            self.bar.update(state.global_step - self.bar.n)

        def on_train_end(self, args, state, control, **kwargs):
            self.bar.close()

    # The model goes in as a *path*: with beta > 0 TRL rebuilds the frozen reference from it.
    trainer = GRPOTrainer(
        model=str(sft_dir),
        reward_funcs=[reward],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[KillSwitch(), Progress()],
    )
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    last = _resumable_checkpoint(Path(checkpoint_dir), _fingerprint(params, sft_dir, reward_dir))
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - started
    if not is_main_process():
        return {}

    curve = _curve(trainer.state.log_history)
    resumed_from = int(last.rsplit("-", 1)[-1]) if last else 0
    steps_run = rp.max_steps - resumed_from
    with atomic_dir(out_dir) as tmp:
        trainer.save_model(str(tmp))
        vocab.save(tmp)
        shutil.copytree(reward_dir, tmp / RANKER_DIR)
        curve.write_csv(tmp / CURVE_CSV)
        _plot(curve, tmp / "curve.png")
    _clear_checkpoints(checkpoint_dir)
    tail = curve.tail(max(1, rp.max_steps // 10))
    metrics = {
        f"rl/{c}": float(tail[c].mean())
        for c in curve.columns
        if c != "step" and tail[c].null_count() < tail.height
    }
    return metrics | {
        "rl/steps": rp.max_steps,
        "rl/resumed_from_step": resumed_from,
        "rl/invalid_slates": reward.invalid_count,
        "rl/steps_per_second": steps_run / seconds if steps_run else float("nan"),
        "rl/generated_tokens_per_second": steps_run
        * args.per_device_train_batch_size
        * vocab.slate_size
        / seconds
        if steps_run
        else float("nan"),
    }


def _fingerprint(params: Params, sft_dir: Path, reward_dir: Path) -> str:
    """What a checkpoint is valid for: the RL params, the exact SFT and reward models, and the
    training code (a fix to the reward or the sampling must not resume a run made without it)."""
    import hashlib

    h = hashlib.sha256(params.section_hash("rlhf_policy").encode())
    code = [
        Path(__file__).parent,
        Path(load_policy.__code__.co_filename).parent,
    ]  # rlhf_policy, the policy library
    for f in [f for folder in (sft_dir, reward_dir) for f in sorted(Path(folder).rglob("*.safetensors"))] + [
        f for folder in code for f in sorted(folder.glob("*.py"))
    ]:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _clear_checkpoints(checkpoint_dir: Path) -> None:
    """After a finished run the policy is in ``out_dir``: checkpoints exist only to resume an
    *interrupted* run, so a later rerun (new code, ``dvc repro -f``) trains from the start."""
    import shutil

    for folder in Path(checkpoint_dir).glob("checkpoint-*"):
        shutil.rmtree(folder)


def _resumable_checkpoint(checkpoint_dir: Path, fingerprint: str) -> str | None:
    """The last checkpoint if it was made for the same inputs; stale ones are cleared, not resumed."""
    import shutil

    from transformers.trainer_utils import get_last_checkpoint

    stamp = checkpoint_dir / "fingerprint.txt"
    if checkpoint_dir.is_dir() and (not stamp.exists() or stamp.read_text() != fingerprint):
        shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint)
    return get_last_checkpoint(str(checkpoint_dir))


def _curve(history: list[dict]) -> pl.DataFrame:
    rows = [
        {"step": h["step"], **{short: h.get(name) for name, short in CURVE_COLUMNS.items()}}
        for h in history
        if "reward" in h
    ]
    return pl.DataFrame(rows, schema={"step": pl.Int64, **{s: pl.Float64 for s in CURVE_COLUMNS.values()}})


def _plot(curve: pl.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(16, 3.8))
    a.plot(curve["step"], curve["reward"], label="proxy reward (reward model)")
    a2 = a.twinx()
    a2.plot(curve["step"], curve["kl"], color="tab:red", label="KL to SFT")
    a.set(xlabel="step", ylabel="reward", title="RL: reward and KL")
    a2.set_ylabel("KL")
    a.legend(loc="upper left")
    a2.legend(loc="lower right")
    has_truth = curve["true_value"].null_count() < curve.height
    b.scatter(
        curve["kl"],
        curve["proxy_reward"] if has_truth else curve["reward"],
        s=8,
        label="proxy (reward model)",
    )
    if has_truth:
        b.scatter(curve["kl"], curve["true_value"], s=8, label="true long-term value (simulator)")
    b.set(xlabel="KL to SFT", ylabel="value per slate item", title="Over-optimisation watch: proxy vs truth")
    b.legend()
    c.plot(curve["step"], curve["artist_diversity"], label="distinct artists per slate / k")
    c.plot(curve["step"], curve["distinct_share"], label="distinct tracks in the step's slates / items")
    c.set(xlabel="step", ylabel="share", ylim=(0, 1.05), title="Concentration of the policy's slates")
    c2 = c.twinx()
    c2.plot(curve["step"], curve["effective_artists"], color="tab:purple", label="effective artists (batch)")
    c2.set_ylabel("effective number of artists")
    c.legend(loc="lower left", fontsize=8)
    c2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
