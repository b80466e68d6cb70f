"""LoRA through peft: validated targets, then merge back into a plain model for saving.

Targets: a list of module names, or `all-linear` (every linear layer but the output head, peft's
QLoRA-paper choice). The default list, [q_proj, v_proj], is Llama's attention default; on an
architecture without those modules (GPT-2's fused c_attn, GPT-NeoX's query_key_value) the default
means that architecture's own default from peft's table, and the log says which. A list the user
wrote is used as written, or refused with the modules the model has.
"""

from __future__ import annotations

import logging
from typing import Any

from codex_ml.params import LoraParams, ParamsError

log = logging.getLogger("codex_ml.train")

ALL_LINEAR = "all-linear"
DEFAULT_TARGETS = LoraParams().target_modules


def linear_module_names(model: Any) -> list[str]:
    """The distinct short names of the model's linear layers (what LoRA can target), sorted: nn.Linear
    and transformers' Conv1D (GPT-2's transposed linear)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, (torch.nn.Linear, Conv1D))})


def architecture_default(model: Any) -> list[str] | None:
    """peft's default LoRA targets for the model's architecture (None if it has none)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    found = DEFAULTS.get(str(getattr(getattr(model, "config", None), "model_type", "")))
    return list(found) if found else None


def resolve_targets(model: Any, params: LoraParams) -> str | list[str]:
    """What peft gets as target_modules; ParamsError naming the key for modules the model lacks."""
    targets = params.target_modules
    if targets == ALL_LINEAR or list(targets) == [ALL_LINEAR]:
        return ALL_LINEAR
    targets = list(targets)
    available = linear_module_names(model)
    missing = [t for t in targets if t not in available]
    arch = architecture_default(model)
    if missing and targets == DEFAULT_TARGETS and arch and all(t in available for t in arch):
        log.info("model.lora.target_modules: %s is not in %s; using its default, %s",
                 ", ".join(targets), model.config.model_type, ", ".join(arch))
        return arch
    if missing:
        hint = f"; {model.config.model_type}'s default is [{', '.join(arch)}]" if arch else ""
        raise ParamsError(f"model.lora.target_modules: {', '.join(missing)} not in the model; its linear "
                          f"modules are: {', '.join(available)}{hint}; or use {ALL_LINEAR}")
    return targets


def apply_lora(model: Any, params: LoraParams, gradient_checkpointing: bool = False) -> Any:
    """Wrap `model` in a peft LoRA model: only the adapters train. A 4-bit (QLoRA) base is first made
    trainable as peft prescribes (norms in fp32, input grads for checkpointing)."""
    from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

    if params.qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    targets = resolve_targets(model, params)
    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=params.r,
                        lora_alpha=params.alpha,  # type: ignore[arg-type]  # annotated int; used as alpha / r
                        lora_dropout=params.dropout, target_modules=targets)
    return get_peft_model(model, config)


def is_lora(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)
