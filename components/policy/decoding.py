"""Constrained slate generation: exactly k distinct track tokens, never a prompt track.

No custom decoding code: Hugging Face's own processors do it — ``suppress_tokens`` bans
every non-track token, ``no_repeat_ngram_size=1`` bans anything already in the sequence
(earlier slots and the prompt's history), and min = max new tokens = k. The same kwargs go
to TRL's GRPO (``GRPOConfig.generation_kwargs``), so RL samples under the same constraints.
"""

from __future__ import annotations

import numpy as np
import torch

from components.policy.vocab import ItemVocab


def generation_kwargs(vocab: ItemVocab) -> dict:
    k = vocab.slate_size
    return {
        "max_new_tokens": k,
        "min_new_tokens": k,
        "no_repeat_ngram_size": 1,
        "suppress_tokens": vocab.non_track_token_ids(),
    }


def generate_slates(
    model,
    vocab: ItemVocab,
    prompts: np.ndarray,
    sample: bool,
    seed: int = 0,
    temperature: float = 1.0,
    batch_size: int = 4096,
) -> np.ndarray:
    """(n, k) track ids generated for (n, prompt_length) prompt ids.

    The same constraints as :func:`generation_kwargs`, applied as one boolean mask per row
    (Hugging Face's no-repeat processor loops over rows in Python, which dominates at
    serving batch sizes); a test checks greedy output equals ``model.generate`` with those kwargs.
    The forward passes go through the serving decoder (:mod:`components.sampler.decoder`): for
    Encore's GPT-2 the same arithmetic as plain torch ops with a preallocated cache, ~1.5-2x
    faster than Hugging Face's cached forward at the simulated A/B test's batch sizes, where the
    greedy arms' decoding was most of the test's time; any other model, that cached forward.
    """
    from components.sampler.decoder import decoders

    device = next(model.parameters()).device
    k, V = vocab.slate_size, model.get_output_embeddings().weight.shape[0]
    static = torch.zeros(V, dtype=torch.bool, device=device)
    static[torch.tensor(vocab.non_track_token_ids(), device=device)] = True
    generator = torch.Generator(device=device).manual_seed(seed)
    decoder = decoders(model, k - 1)  # the prompt, then the k - 1 slots after the first
    out = np.empty((len(prompts), k), dtype=np.int64)
    model.eval()
    with torch.inference_mode():
        for lo in range(0, len(prompts), batch_size):
            ids = torch.from_numpy(prompts[lo : lo + batch_size]).to(device)
            banned = static.repeat(len(ids), 1)
            banned.scatter_(1, ids, True)  # nothing already in the prompt (its history)
            d, picks = decoder(), []
            logits = d.prefill(ids)
            for j in range(k):
                logits = logits.masked_fill_(banned, -torch.inf)
                if sample:  # Gumbel-max: an exact softmax sample, ~10x faster than torch.multinomial here
                    u = torch.rand(logits.shape, generator=generator, device=device).clamp_(1e-20, 1.0)
                    logits = logits / temperature - torch.log(-torch.log(u))
                nxt = logits.argmax(dim=-1)
                banned[torch.arange(len(ids), device=device), nxt] = True
                picks.append(nxt)
                if j + 1 < k:
                    logits = d.step(nxt)
            out[lo : lo + batch_size] = vocab.token_to_track(torch.stack(picks, dim=1).cpu().numpy())
    return out


def slot_probabilities(
    model,
    vocab: ItemVocab,
    prompts: np.ndarray,
    slates: np.ndarray,
    batch_size: int = 2048,
    temperature: float | None = 1.0,
) -> np.ndarray:
    """(n, k) probability the constrained policy puts ``slates[:, j]`` in slot j given the slots before.

    Same masks as generation (non-tracks, prompt tracks and earlier slots are impossible):
    what off-policy estimators need as the target policy's propensities. ``temperature=None``
    is greedy decoding (probability 1 for the argmax, 0 otherwise). A track the policy can
    never emit (e.g. one in the prompt's history) gets probability 0.
    """
    device = next(model.parameters()).device
    k = vocab.slate_size
    banned_static = torch.tensor(vocab.non_track_token_ids(), device=device)
    tokens = vocab.track_to_token(slates)
    out = np.empty(slates.shape, dtype=np.float64)
    model.eval()
    with torch.no_grad():
        for lo in range(0, len(prompts), batch_size):
            p = torch.from_numpy(prompts[lo : lo + batch_size]).to(device)
            c = torch.from_numpy(tokens[lo : lo + batch_size]).to(device)
            seq = torch.cat([p, c], dim=1)
            logits = model(input_ids=seq).logits[:, p.shape[1] - 1 : -1, :].float()  # predicts slots 0..k-1
            logits[:, :, banned_static] = -torch.inf
            rows = torch.arange(len(p), device=device)
            for j in range(k):  # ban the prompt and the earlier slots, as no_repeat_ngram_size=1 does
                seen = torch.cat([p, c[:, :j]], dim=1)
                logits[rows[:, None], j, seen] = -torch.inf
            if temperature is None:
                probs = (logits.argmax(dim=-1) == c).float()
            else:
                probs = torch.softmax(logits / temperature, dim=-1).gather(2, c[:, :, None])[:, :, 0]
            out[lo : lo + batch_size] = probs.cpu().numpy()
    is_track = vocab.token_to_track(tokens) >= 0
    return np.where(is_track, out, 0.0)


def kl_per_slot(
    model, reference, vocab: ItemVocab, prompts: np.ndarray, seed: int, temperature: float = 1.0
) -> float:
    """Mean per-slot KL(model ‖ reference) of the two constrained policies at ``temperature``,
    estimated on slates ``model`` samples for ``prompts``: mean of log p - log p_ref per slot.

    Per slot, so it reads on the scale of GRPO's own ``kl`` (per token) and ``register.max_kl``.
    Why measure it rather than read RL's curve: the curve's KL is to the model RL *started* from,
    which is the imitation policy only when RL starts there (the loop may start a round from the
    round before's policy, docs/loop.md)."""
    slates = generate_slates(model, vocab, prompts, sample=True, seed=seed, temperature=temperature)
    p = slot_probabilities(model, vocab, prompts, slates, temperature=temperature)
    p_ref = slot_probabilities(reference, vocab, prompts, slates, temperature=temperature)
    return float(np.mean(np.log(np.maximum(p, 1e-12)) - np.log(np.maximum(p_ref, 1e-12))))
