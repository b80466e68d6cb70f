"""Fine-tuning on CUDA: a bf16 LoRA run and a QLoRA run (4-bit base through bitsandbytes, gradient
checkpointing) of a Llama fixture with its own tokenizer, and what each saves in GPU memory against the
run it replaces. Skipped where torch sees no GPU (CI); run on a GPU machine with
`pytest -s tests/test_cuda_finetune.py` (each test prints the peaks it compares)."""

from __future__ import annotations

import gc
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from codex_ml.params import Params, parse_params
from tests.pretrainedkit import make_pretrained, params_for, run_eval, run_tokenize, run_train, train_texts

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

LORA = {"enabled": True, "target_modules": "all-linear"}


def tune(params: Params, prepared: Path, root: Path) -> tuple[dict[str, Any], int]:
    """Tokenize, train and eval; with the peak GPU memory allocated while training (bytes)."""
    run_tokenize(params, prepared, root)
    gc.collect()  # what an earlier run left is freed, so it does not count in this one's peak
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    run_train(params, root)
    return run_eval(params, prepared, root), torch.cuda.max_memory_allocated()


def qlora(params: Params) -> Params:
    """`params` with the base in 4 bits and gradient checkpointing, as QLoRA runs."""
    raw = params.model_dump()
    raw["model"]["lora"]["qlora"] = True
    raw["train"]["gradient_checkpointing"] = True
    return parse_params(raw)


@pytest.fixture(scope="module")
def weighty_base(pretrained_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Llama whose weights outweigh its activations at the test's batch (hidden 512, 8 layers: ~20M
    parameters, 80 MB in fp32), so what a method keeps per parameter decides its peak memory."""
    folder = tmp_path_factory.mktemp("weighty") / "base"
    return make_pretrained("llama", train_texts(pretrained_corpus), folder, hidden=512, layers=8)


def test_bf16_lora_learns_on_cuda(pretrained_corpus: Path, pretrained_bases: dict[str, Path],
                                  tmp_path: Path) -> None:
    scores, peak = tune(params_for(pretrained_bases["llama"], lora=LORA), pretrained_corpus, tmp_path)
    print(f"bf16 LoRA: peak GPU memory {peak / 2**20:.1f} MiB")
    assert scores["val"]["bits_per_byte"] < scores["val"]["baselines"]["base_model_bpb"]


def test_lora_trains_in_under_half_the_memory_of_full_fine_tuning(pretrained_corpus: Path, weighty_base: Path,
                                                                  tmp_path: Path) -> None:
    """LoRA's point: the frozen weights need no gradients and no optimizer state (AdamW: 12 of full
    fine-tuning's 16 bytes a parameter in fp32). On the same base, steps and batch its peak is under
    half of full fine-tuning's."""
    _, full = tune(params_for(weighty_base), pretrained_corpus, tmp_path / "full")
    _, lora = tune(params_for(weighty_base, lora=LORA), pretrained_corpus, tmp_path / "lora")
    print(f"peak GPU memory: full fine-tuning {full / 2**20:.1f} MiB, bf16 LoRA {lora / 2**20:.1f} MiB")
    assert 0 < lora < full / 2


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
def test_qlora_on_cuda_saves_a_plain_merged_model_in_less_memory_than_lora(
        pretrained_corpus: Path, pretrained_bases: dict[str, Path], weighty_base: Path,
        tmp_path: Path) -> None:
    tiny = qlora(params_for(pretrained_bases["llama"], lora=LORA))
    scores, _ = tune(tiny, pretrained_corpus, tmp_path / "tiny")
    config = json.loads((tmp_path / "tiny/models/trained/config.json").read_text())
    assert "quantization_config" not in config  # merged into full-precision weights, not 4-bit
    assert (tmp_path / "tiny/models/trained/adapter/adapter_model.safetensors").is_file()
    assert scores["val"]["bits_per_byte"] < scores["val"]["baselines"]["base_model_bpb"]
    # 4-bit base weights (and recomputed activations) against LoRA's fp32 base: less memory, the reason
    # to use QLoRA at all
    _, lora = tune(params_for(weighty_base, lora=LORA), pretrained_corpus, tmp_path / "lora")
    _, quantized = tune(qlora(params_for(weighty_base, lora=LORA)), pretrained_corpus, tmp_path / "qlora")
    print(f"peak GPU memory: bf16 LoRA {lora / 2**20:.1f} MiB, QLoRA {quantized / 2**20:.1f} MiB")
    assert 0 < quantized < lora
