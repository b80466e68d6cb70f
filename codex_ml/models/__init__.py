"""Models: a registry of named from-scratch Llama configs, local pretrained folders, and LoRA."""

from codex_ml.models.export import save_model_folder
from codex_ml.models.lora import apply_lora, is_lora, linear_module_names
from codex_ml.models.registry import MODELS, Vocab, build_model, count_parameters, known_names, model_config

__all__ = ["MODELS", "Vocab", "apply_lora", "build_model", "count_parameters", "is_lora", "known_names",
           "linear_module_names", "model_config", "save_model_folder"]
