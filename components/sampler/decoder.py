"""Next-slot logits of a policy, one slot at a time, with a key/value cache.

Serving decodes a slate of ``k`` tracks for a few dozen prompts at a time. At that size a
Hugging Face forward call costs ~1.5 ms of Python per step whatever the batch (module calls,
mask builders, output dataclasses), ten times the arithmetic of Encore's default 2-layer
GPT-2. :class:`GPT2Decoder` runs the same GPT-2 arithmetic as plain torch ops on the model's
own weights (~0.15 ms per step); any other architecture (a ``sft_policy.base_model``
checkpoint) goes through :class:`HFDecoder`, Hugging Face's own cached forward. A test checks
that both give the logits of ``model(input_ids=...)``.

A decoder is used as ``logits = d.prefill(prompts)`` then ``logits = d.step(tokens)`` once per
further slot; ``logits`` are the (batch, vocab) scores of the next token, before any mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F


class Decoder(Protocol):
    def prefill(self, prompts: torch.Tensor) -> torch.Tensor: ...

    def step(self, tokens: torch.Tensor) -> torch.Tensor: ...


def decoders(model: Any, max_new: int) -> Callable[[], Decoder]:
    """A factory of decoders for ``model`` (a fresh decoder per batch: it holds that batch's
    cache), the fast one where it applies; ``max_new``: slots decoded after the prompt."""
    if GPT2Weights.supports(model):
        weights = GPT2Weights(model)
        return lambda: GPT2Decoder(weights, max_new)
    return lambda: HFDecoder(model)


class HFDecoder:
    """Hugging Face's cached forward: any causal LM."""

    def __init__(self, model: Any):
        self.model, self.cache = model, None

    def prefill(self, prompts: torch.Tensor) -> torch.Tensor:
        return self._forward(prompts)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._forward(tokens[:, None])

    def _forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=ids, cache=self.cache, use_cache=True, logits_to_keep=1)
        self.cache = out.cache
        return out.logits[:, -1, :].float()


class GPT2Weights:
    """A GPT-2 LM's weights laid out for :class:`GPT2Decoder` (taken once per loaded model)."""

    @staticmethod
    def supports(model: Any) -> bool:
        """Plain GPT-2 (what ``sft_policy.base_model: ""`` builds): the variants the fast path
        reproduces exactly. Anything else falls back to :class:`HFDecoder`."""
        c = getattr(model, "config", None)
        return (
            c is not None
            and c.model_type == "gpt2"
            and c.activation_function in ("gelu_new", "gelu_pytorch_tanh")
            and c.scale_attn_weights
            and not c.scale_attn_by_inverse_layer_idx
            and not c.reorder_and_upcast_attn
            and not c.add_cross_attention
        )

    def __init__(self, model: Any):
        t = model.transformer
        self.n_head, self.eps = model.config.n_head, model.config.layer_norm_epsilon
        self.wte, self.wpe = t.wte.weight.detach(), t.wpe.weight.detach()
        self.head = model.lm_head.weight.detach()
        self.ln_f = (t.ln_f.weight.detach(), t.ln_f.bias.detach())
        # Conv1D stores (in, out): transposed once so every step is one F.linear
        self.layers = [
            {
                "ln1": (b.ln_1.weight.detach(), b.ln_1.bias.detach()),
                "qkv": (b.attn.c_attn.weight.detach().T.contiguous(), b.attn.c_attn.bias.detach()),
                "proj": (b.attn.c_proj.weight.detach().T.contiguous(), b.attn.c_proj.bias.detach()),
                "ln2": (b.ln_2.weight.detach(), b.ln_2.bias.detach()),
                "fc": (b.mlp.c_fc.weight.detach().T.contiguous(), b.mlp.c_fc.bias.detach()),
                "out": (b.mlp.c_proj.weight.detach().T.contiguous(), b.mlp.c_proj.bias.detach()),
            }
            for b in t.h
        ]


class GPT2Decoder:
    """GPT-2 (pre-LayerNorm blocks, tanh-GELU MLP, tied head) with a preallocated K/V cache."""

    def __init__(self, weights: GPT2Weights, max_new: int):
        self.w, self.max_new = weights, max_new
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        self.pos = 0

    def prefill(self, prompts: torch.Tensor) -> torch.Tensor:
        n, length = prompts.shape
        positions = torch.arange(length, device=prompts.device)
        h = self.w.wte[prompts] + self.w.wpe[positions]
        for layer in self.w.layers:
            q, k, v = self._qkv(layer, h)
            shape = (n, self.w.n_head, length + self.max_new, k.shape[-1])
            kc, vc = k.new_empty(shape), v.new_empty(shape)
            kc[:, :, :length], vc[:, :, :length] = k, v
            self.k.append(kc)
            self.v.append(vc)
            h = self._rest(layer, h, _attention(q, k, v, self._causal(length, prompts.device)))
        self.pos = length
        return self._logits(h[:, -1])

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        h = (self.w.wte[tokens] + self.w.wpe[self.pos])[:, None, :]
        end = self.pos + 1
        for i, layer in enumerate(self.w.layers):
            q, k, v = self._qkv(layer, h)
            self.k[i][:, :, self.pos : end], self.v[i][:, :, self.pos : end] = k, v
            h = self._rest(layer, h, _attention(q, self.k[i][:, :, :end], self.v[i][:, :, :end]))
        self.pos = end
        return self._logits(h[:, -1])

    @staticmethod
    def _causal(length: int, device: torch.device) -> torch.Tensor:
        """True above the diagonal: the positions each prompt token may not attend to."""
        return torch.ones(length, length, dtype=torch.bool, device=device).triu_(1)

    def _qkv(self, layer: dict, h: torch.Tensor):
        n, length, d = h.shape
        x = F.layer_norm(h, (d,), *layer["ln1"], self.w.eps)
        q, k, v = F.linear(x, *layer["qkv"]).split(d, dim=2)
        heads = (n, length, self.w.n_head, d // self.w.n_head)
        return (t.view(heads).transpose(1, 2) for t in (q, k, v))

    def _rest(self, layer: dict, h: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        n, length, d = h.shape
        h = h + F.linear(attn.transpose(1, 2).reshape(n, length, d), *layer["proj"])
        x = F.layer_norm(h, (d,), *layer["ln2"], self.w.eps)
        return h + F.linear(F.gelu(F.linear(x, *layer["fc"]), approximate="tanh"), *layer["out"])

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        d = h.shape[-1]
        return F.linear(F.layer_norm(h, (d,), *self.w.ln_f, self.w.eps), self.w.head).float()


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, masked: torch.Tensor | None = None):
    """Softmax attention scaled by 1/sqrt(head_dim), as GPT-2's ``scale_attn_weights``. Written
    out: at serving sizes (25 positions, 16 dims per head) it is faster on a CPU than
    ``scaled_dot_product_attention``'s flash kernel, and equal to it (a test checks the logits)."""
    w = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if masked is not None:
        w = w.masked_fill_(masked, -torch.inf)
    return w.softmax(dim=-1) @ v
