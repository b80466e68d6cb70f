"""models/model/: one plain Hugging Face folder that both Auto classes load, written atomically."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from codex_ml.handoffs import BaseRecord, ModelRecord
from codex_ml.io import atomic_dir
from codex_ml.models.lora import is_lora


def save_model_folder(model: Any, tokenizer_dir: Path, out_dir: Path, base: BaseRecord | None = None,
                      base_dir: Path | None = None, state_dict: dict[str, Any] | None = None) -> None:
    """Write `model` (LoRA merged; the adapter kept in adapter/) plus the tokenizer's files to `out_dir`;
    with `base` (the pretrained model it was tuned from, as meta.json records it), codex_model.json.
    A QLoRA model's adapter is merged into the base reloaded from `base_dir` in bf16, so models/model
    is a plain model, not 4-bit weights.

    Merging modifies a peft model in place, so call this once, after training. `state_dict`: the
    weights to write instead of the model's own (FSDP's gathered full state dict).
    """
    with atomic_dir(out_dir) as tmp:
        if base is not None:
            ModelRecord(base_model=base).save(tmp)  # the base it came from: eval's baseline
        if is_lora(model):
            model.save_pretrained(tmp / "adapter")  # adapter_config.json + adapter_model.safetensors
            four_bit = (getattr(model, "is_loaded_in_4bit", False)
                        or getattr(model.base_model, "is_loaded_in_4bit", False))
            if four_bit:
                model = _merge_into_full_precision(model, tmp / "adapter", base_dir)
            else:
                model = model.merge_and_unload()
        # config.json, generation_config.json, model.safetensors
        model.save_pretrained(tmp, state_dict=state_dict)
        for f in sorted(tokenizer_dir.iterdir()):
            if f.is_file():
                if (tmp / f.name).exists():  # a tokenizer file named like a model file: a contract bug
                    raise RuntimeError(f"tokenizer file {f.name} collides with a model file")
                shutil.copyfile(f, tmp / f.name)


def _merge_into_full_precision(model: Any, adapter_dir: Path, base_dir: Path | None) -> Any:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if base_dir is None:
        raise RuntimeError("a 4-bit (QLoRA) model needs its base folder to be merged")
    full = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.bfloat16)
    ids = ("bos_token_id", "eos_token_id", "pad_token_id")
    full.config.update({k: getattr(model.config, k) for k in ids})
    return PeftModel.from_pretrained(full, adapter_dir).merge_and_unload()
