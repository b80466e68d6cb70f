"""Fine-tuning on CUDA: a bf16 LoRA run and a QLoRA run (4-bit base through bitsandbytes, gradient
checkpointing) of a Llama fixture with its own tokenizer, each with its peak GPU memory printed.
Skipped where torch sees no GPU (CI); run on a GPU machine with `pytest -s tests/test_cuda_finetune.py`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.test_pretrained import bases, corpus, params_for, run_eval, run_tokenize, run_train  # noqa: F401

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def tune(params: Any, prepared: Path, root: Path) -> tuple[dict[str, Any], int]:
    run_tokenize(params, prepared, root)
    torch.cuda.reset_peak_memory_stats()
    run_train(params, root)
    return run_eval(params, prepared, root), torch.cuda.max_memory_allocated()


def test_bf16_lora_on_cuda(corpus: Path, bases: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    params = params_for(bases["llama"], lora={"enabled": True, "target_modules": "all-linear"})
    scores, peak = tune(params, corpus, tmp_path)
    print(f"bf16 LoRA: peak GPU memory {peak / 2**20:.1f} MiB")
    assert scores["val"]["bits_per_byte"] < scores["val"]["baselines"]["base_model_bpb"]


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
def test_qlora_on_cuda_saves_a_plain_merged_model(corpus: Path, bases: dict[str, Path],  # noqa: F811
                                                  tmp_path: Path) -> None:
    from codex_ml.params import parse_params

    raw = params_for(bases["llama"], lora={"enabled": True, "qlora": True, "target_modules": "all-linear"})
    train = {**raw.train.model_dump(), "gradient_checkpointing": True}
    params = parse_params({**raw.model_dump(), "train": train})
    scores, peak = tune(params, corpus, tmp_path)
    print(f"QLoRA: peak GPU memory {peak / 2**20:.1f} MiB")
    config = json.loads((tmp_path / "models/model/config.json").read_text())
    assert "quantization_config" not in config  # merged into full-precision weights, not 4-bit
    assert (tmp_path / "models/model/adapter/adapter_model.safetensors").is_file()
    assert scores["val"]["bits_per_byte"] < scores["val"]["baselines"]["base_model_bpb"]
