"""LoRA through peft: validated targets, then merge back into a plain model for saving."""

from __future__ import annotations

from typing import Any

from codex_ml.params import LoraParams, ParamsError


def linear_module_names(model: Any) -> list[str]:
    """The distinct short names of the model's nn.Linear layers (what LoRA can target), sorted."""
    import torch

    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear)})


def apply_lora(model: Any, params: LoraParams) -> Any:
    """Wrap `model` in a peft LoRA model: only the adapters train. Every target module must be a
    linear layer of this model; otherwise ParamsError lists the ones it has."""
    from peft import LoraConfig, TaskType, get_peft_model

    available = linear_module_names(model)
    missing = [t for t in params.target_modules if t not in available]
    if missing:
        raise ParamsError(f"model.lora.target_modules: {', '.join(missing)} not in the model; its linear "
                          f"modules are: {', '.join(available)}")
    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=params.r,
                        lora_alpha=params.alpha,  # type: ignore[arg-type]  # annotated int; used as alpha / r
                        lora_dropout=params.dropout, target_modules=list(params.target_modules))
    return get_peft_model(model, config)


def is_lora(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)
