"""Named from-scratch model configs, or a pretrained Hugging Face model (a folder, or a hub id from the
local cache: codex_ml/base_model.py) of any architecture AutoModelForCausalLM loads.

A registry entry is plain data: the Llama shape. The vocabulary (size and special-token ids) always
comes from the pipeline's tokenizer, so one name trains with any tokenizer; a pretrained model's
config is made to agree with the tokenizer's special ids, which are the ones in the token files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from codex_ml.base_model import base_of
from codex_ml.handoffs import TokenMeta
from codex_ml.params import ModelParams, ParamsError

log = logging.getLogger("codex_ml.train")

# The shapes. SwiGLU width is ~8/3 of hidden, rounded up to a multiple of 64 (the Llama recipe);
# head_dim is 16 for the micro test models, 32 for mini and 64 otherwise. Embeddings are tied: at these
# sizes the (vocab x hidden) table is a large share of all weights and tying it is the better use of them.
# `arch` picks transformers' class: "llama" (LlamaForCausalLM) or "qwen3" (Qwen3ForCausalLM: Llama
# plus an RMSNorm on each head's queries and keys, "QK-norm"). Both are stock transformers models:
# the saved folder loads anywhere transformers does.
MODELS: dict[str, dict[str, Any]] = {
    # For tests: a few milliseconds per step on one core.
    "llama-micro": dict(arch="llama", hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=4),
    "qwen3-micro": dict(arch="qwen3", hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=4),
    # The default: the best val bits/byte found for a 10-minute `make repro` on 2 CPU cores, llama-mini's
    # shape (at that budget more tokens beat more weights) with QK-norm (docs/speedrun.md has both).
    "qwen3-mini": dict(arch="qwen3", hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=4),
    # qwen3-mini without QK-norm (docs/speedrun.md compares the two).
    "llama-mini": dict(arch="llama", hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=4),
    # Twice as wide: for longer CPU runs.
    "llama-tiny": dict(arch="llama", hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=4),
    # ~25M parameters plus embeddings: a GPU or a long CPU run.
    "llama-small": dict(arch="llama", hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                        num_attention_heads=8, num_key_value_heads=8),
    # ~200M parameters plus embeddings (211M at vocab 8192): one large GPU (train=gpu, conf/train/gpu.yaml).
    "llama-medium": dict(arch="llama", hidden_size=1024, intermediate_size=2752, num_hidden_layers=16,
                         num_attention_heads=16, num_key_value_heads=16),
}

COMMON: dict[str, Any] = dict(
    rope_theta=10000.0,
    rms_norm_eps=1e-5,
    initializer_range=0.02,
    attention_dropout=0.0,
    hidden_act="silu",
    tie_word_embeddings=True,
    use_cache=True,
)


@dataclass(frozen=True)
class Vocab:
    """What the model needs to know about the tokenizer (from data/tokens/meta.json)."""

    size: int
    pad_id: int
    bos_id: int | None  # a pretrained tokenizer may have none (Qwen2)
    eos_id: int

    @classmethod
    def from_meta(cls, meta: TokenMeta) -> Vocab:
        return cls(size=meta.vocab_size, pad_id=meta.pad_id, bos_id=meta.bos_id, eos_id=meta.eos_id)


def known_names() -> list[str]:
    return sorted(MODELS)


def model_config(name: str, vocab: Vocab, seq_len: int) -> Any:
    """The config (LlamaConfig or Qwen3Config) of a registry name; ParamsError listing the known names
    for any other.

    max_position_embeddings is the training context (train.final_seq_len, or train.seq_len without
    one): what the model has learned to
    use, and what evaluation and generation read from config.json as its context.
    """
    from transformers import LlamaConfig, Qwen3Config

    if name not in MODELS:
        raise ParamsError(f"model.name: unknown model {name!r}; known: {', '.join(known_names())} "
                          f"(or set model.pretrained to a local Hugging Face folder)")
    shape = dict(MODELS[name])
    config_class = {"llama": LlamaConfig, "qwen3": Qwen3Config}[shape.pop("arch")]
    head_dim = shape["hidden_size"] // shape["num_attention_heads"]
    return config_class(vocab_size=vocab.size, pad_token_id=vocab.pad_id, bos_token_id=vocab.bos_id,
                        eos_token_id=vocab.eos_id, max_position_embeddings=seq_len, head_dim=head_dim,
                        **COMMON, **shape)


def build_model(params: ModelParams, vocab: Vocab, seq_len: int, seed: int) -> Any:
    """A float32 causal LM: freshly initialised from `seed` (a registry name) or loaded from
    `params.pretrained`. Checks that the tokenizer's ids fit the model and `seq_len` its positions."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    base = base_of(params)
    if base is not None:
        path = base.folder
        config = AutoConfig.from_pretrained(path)
        if vocab.size > config.vocab_size:
            raise ParamsError(f"model.pretrained: {path} has {config.vocab_size} token embeddings, fewer "
                              f"than the tokenizer's vocab_size {vocab.size}")
        max_positions = getattr(config, "max_position_embeddings", None)
        if max_positions is not None and seq_len > max_positions:
            raise ParamsError(f"train.final_seq_len (else train.seq_len): expected a training context <= "
                              f"{max_positions} (max_position_embeddings of model.pretrained {path}), got "
                              f"{seq_len}")
    else:
        config = model_config(params.name, vocab, seq_len)
    torch.manual_seed(seed)  # the initial weights are a function of the seed alone
    if base is None:
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    quantized = quantization_config(params)
    model = AutoModelForCausalLM.from_pretrained(
        base.folder, dtype=torch.bfloat16 if quantized else torch.float32, quantization_config=quantized,
        **({"device_map": {"": torch.cuda.current_device()}} if quantized else {}))
    agree_special_ids(model, vocab)
    return model


def quantization_config(params: ModelParams) -> Any:
    """QLoRA's base weights: 4-bit NF4 with double quantization, bf16 compute (bitsandbytes, CUDA
    only); None without model.lora.qlora. On a machine without CUDA: one ParamsError."""
    if not params.lora.qlora:
        return None
    import torch

    if not torch.cuda.is_available():
        raise ParamsError("model.lora.qlora: 4-bit base weights (bitsandbytes) need a CUDA GPU and torch "
                          "sees none; set model.lora.qlora: false (LoRA on full-precision weights runs on a "
                          "CPU)")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ParamsError("model.lora.qlora: needs the bitsandbytes package "
                          "(pip install bitsandbytes)") from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)

def agree_special_ids(model: Any, vocab: Vocab) -> None:
    """Make the model's config and generation config name the tokenizer's special ids (those that
    made the token files), saying where the base model's config said otherwise."""
    for key, want in (("eos_token_id", vocab.eos_id), ("bos_token_id", vocab.bos_id),
                      ("pad_token_id", vocab.pad_id)):
        for config in (model.config, getattr(model, "generation_config", None)):
            if config is None:
                continue
            have = getattr(config, key, None)
            agrees = have == want or (isinstance(have, list) and want in have and key == "eos_token_id")
            if not agrees:
                if have is not None and config is model.config:
                    log.warning("model.pretrained: config.json has %s %s, the tokenizer %s: the saved model "
                                "uses the tokenizer's", key, have, want)
                setattr(config, key, want)


def count_parameters(model: Any, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
