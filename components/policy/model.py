"""The policy network: a causal LM whose vocabulary holds the tracks.

Default: a small GPT-2 built from config. With ``base_model`` a local Hugging Face causal-LM
checkpoint is loaded instead and its embeddings are extended with the item and prompt tokens.

A saved policy (SFT or RL) is one folder: the model (``save_pretrained``), its tokenizer,
``item_vocab.json`` and the training ``curve.csv``; :func:`load` reads it back. An RL policy
also carries the reward model it was trained against in ``ranker/``: serving it
generate-then-rank (``ab.lm_decoding: rank``) ranks its samples with that model, so a registered
policy brings its ranker along.
"""

from __future__ import annotations

from pathlib import Path

import torch

from components.errors import ParamsError
from components.params import CausalLMParams
from components.policy.vocab import ItemVocab


def build(vocab: ItemVocab, mp: CausalLMParams, base_model: str, seed: int):
    """(model, tokenizer) ready for SFT; the tokenizer maps prompt text to ids exactly."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    if not base_model:
        tokenizer = vocab.new_tokenizer()
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=vocab.prompt_length + vocab.slate_size,
            n_embd=mp.n_embd,
            n_layer=mp.n_layer,
            n_head=mp.n_head,
            resid_pdrop=mp.dropout,
            embd_pdrop=mp.dropout,
            attn_pdrop=mp.dropout,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        return GPT2LMHeadModel(config), tokenizer
    path = Path(base_model)
    if not (path / "config.json").exists():
        raise ParamsError(
            f"sft_policy.base_model: {path} is not a local Hugging Face checkpoint (no config.json); "
            "Encore never downloads models."
        )
    base_tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer = vocab.new_tokenizer(base_vocab=base_tokenizer.get_vocab())
    model = AutoModelForCausalLM.from_pretrained(path)
    model.resize_token_embeddings(len(tokenizer))
    positions = getattr(model.config, "n_positions", None) or getattr(
        model.config, "max_position_embeddings", None
    )
    if positions is not None and positions < vocab.prompt_length + vocab.slate_size:
        raise ParamsError(
            f"sft_policy.base_model: {path} handles {positions} positions; prompts + slates need "
            f"{vocab.prompt_length + vocab.slate_size}"
        )
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.bos_token_id = tokenizer.bos_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


RANKER_DIR = "ranker"  # an RL policy's reward model, copied in at save: what ranks its samples
CURVE_CSV = "curve.csv"  # the training curve saved beside every policy (DVC plots, the report)


def load(path: Path, device: str | None = None):
    """(model, tokenizer, vocab) of a saved policy (SFT or RL), on the GPU when there is one."""
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(path).to(device).eval()
    return model, tokenizer, ItemVocab.load(path).bind(tokenizer)
