"""Loading a model folder (the pipeline's `models/model`, a checkpoint, or any local Hugging Face
causal-LM folder) and its tokenizer for evaluation and generation.

A training checkpoint holds two sets of weights: `model.safetensors`, the last step's, and
`ema.safetensors`, their moving average (train.ema_decay). The average is what the run validated, ranked
the checkpoint by and ships as `models/model`, so a checkpoint is loaded with it: `codex eval` on a
checkpoint scores the model its recorded val loss describes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from codex_ml.eval.options import Device
from codex_ml.runtime import StageError, progress_enabled

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
# Config attributes different architectures use for their longest supported sequence.
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length")


def pick_device(name: Device = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise StageError("device 'cuda' requested, but torch sees no CUDA device")
    return torch.device(name)


def check_model_dir(path: Path) -> None:
    if not path.exists():
        raise StageError(f"{path}: model folder not found")
    if not path.is_dir():
        raise StageError(f"{path}: expected a model folder, found a file")
    if not (path / "config.json").is_file():
        raise StageError(f"{path}: not a Hugging Face model folder (no config.json)")


def load_model(path: Path, device: torch.device) -> torch.nn.Module:
    """The model in eval mode on `device`; float32 on CPU (bf16 matmuls are slower there), the saved
    dtype on an accelerator."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from codex_ml.training.ema import EMA_FILE

    check_model_dir(path)
    if not progress_enabled():  # transformers' own bars ("Loading weights") stay out of CI logs too
        hf_logging.disable_progress_bar()
    dtype: Any = torch.float32 if device.type == "cpu" else "auto"
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise StageError(f"{path}: cannot load the model: {str(exc).splitlines()[0]}") from None
    if (path / EMA_FILE).is_file():
        load_average(model, path / EMA_FILE)
    return model.to(device).eval()  # type: ignore[arg-type]  # transformers' stubs type .to oddly


def load_average(model: torch.nn.Module, path: Path) -> None:
    """Put a checkpoint's weight average into its model (see the module docstring)."""
    from safetensors.torch import load_file

    unexpected = model.load_state_dict(load_file(str(path)), strict=False).unexpected_keys
    if unexpected:
        raise StageError(f"{path} averages parameters the model beside it does not have ({unexpected[:3]})")
    log.info("%s: the checkpoint's weight average (%s), as its val loss scored it", path.parent, path.name)


def load_base_model(model_dir: Path, device: torch.device) -> torch.nn.Module | None:
    """The pretrained model `model_dir` was fine-tuned from (its codex_model.json says which; the train
    stage writes it), checked to be the same bytes it was tuned from; None for a from-scratch model."""
    from codex_ml.base_model import folder_sha256, resolve
    from codex_ml.handoffs import MODEL_RECORD, ModelRecord

    record = ModelRecord.load(model_dir)
    if record is None:
        return None
    base = record.base_model
    resolved = resolve(base.pretrained, base.revision)
    if folder_sha256(resolved.folder) != base.sha256:
        raise StageError(f"{model_dir / MODEL_RECORD}: the base model {base.pretrained} has changed since "
                         f"this model was tuned from it (sha256 {base.sha256[:12]}): no baseline to compare")
    return load_model(resolved.folder, device)


def has_tokenizer(path: Path) -> bool:
    return any((path / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(model_dir: Path, fallback: Path | None = None) -> Any:
    """The model folder's tokenizer, or `fallback`'s when the folder has none (a bare checkpoint)."""
    from transformers import AutoTokenizer

    source = model_dir if has_tokenizer(model_dir) else fallback
    if source is None or not has_tokenizer(source):
        where = f"{model_dir}" + (f" or {fallback}" if fallback else "")
        raise StageError(f"no tokenizer files ({', '.join(TOKENIZER_FILES)}) in {where}")
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise StageError(f"{source}: cannot load the tokenizer: {str(exc).splitlines()[0]}") from None


def context_window(model: torch.nn.Module) -> int:
    """Longest sequence the model was built for, from its config."""
    config = getattr(model, "config", None)
    for key in _CONTEXT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 1:
            return value
    raise StageError(f"the model's config names no context length ({', '.join(_CONTEXT_KEYS)}): "
                     "set eval.window")


def special_ids(tokenizer: Any, model: torch.nn.Module) -> tuple[int, int]:
    """(eos_id, pad_id): the tokenizer's, else the model config's; pad falls back to EOS."""
    config = getattr(model, "config", None)
    eos = tokenizer.eos_token_id
    if eos is None:
        eos = getattr(config, "eos_token_id", None)
    if isinstance(eos, list):
        eos = eos[0]
    if not isinstance(eos, int):
        raise StageError("the tokenizer and the model config define no EOS token")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return eos, int(pad)
