"""MFU's parts: FLOPs per token against a hand count, the device table's lookup, where the peak comes from."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from codex_ml.models import Vocab, build_model
from codex_ml.models.registry import model_config
from codex_ml.params import ModelParams
from codex_ml.training.mfu import DEVICES, device_peak, flops_per_token, resolve_peak

VOCAB = Vocab(size=384, pad_id=0, bos_id=1, eos_id=2)
VOCAB_8K = Vocab(size=8192, pad_id=0, bos_id=1, eos_id=2)


def test_flops_per_token_of_llama_micro_is_the_hand_count() -> None:
    # llama-micro: hidden 64, SwiGLU 192, 2 layers, 4 heads of 16, vocab 384, tied embeddings.
    embedding = 384 * 64  # once: the output layer is the same matrix
    layer = 4 * 64 * 64 + 3 * 64 * 192 + 2 * 64  # q k v o, gate up down, two RMSNorms
    n = embedding + 2 * layer + 64  # + the final norm
    assert n == 131_392
    hand = 6 * n + 12 * 2 * 64 * 64  # 6 N + 12 L d T at T = 64
    model = build_model(ModelParams(name="llama-micro"), VOCAB, seq_len=64, seed=0)
    assert flops_per_token(model, 64) == hand == 886_656
    assert flops_per_token(model_config("llama-micro", VOCAB, 64), 64) == hand  # from the config alone
    assert flops_per_token(model, 128) == hand + 12 * 2 * 64 * 64  # attention grows with the context


@pytest.mark.parametrize("name", ["qwen3-mini", "llama-mini", "llama-tiny", "llama-small"])
def test_a_config_counts_what_its_built_model_holds(name: str) -> None:
    config = model_config(name, VOCAB_8K, 256)
    model = build_model(ModelParams(name=name), VOCAB_8K, 256, 0)
    assert flops_per_token(config, 256) == flops_per_token(model, 256)


def test_an_untied_output_layer_counts_twice_in_model_and_config_alike() -> None:
    config = model_config("llama-micro", VOCAB, 64)
    config.tie_word_embeddings = False
    torch.manual_seed(0)
    untied = AutoModelForCausalLM.from_config(config)
    assert flops_per_token(untied, 64) == flops_per_token(config, 64) == 886_656 + 6 * 384 * 64


@pytest.mark.parametrize(("name", "entry"), [
    ("NVIDIA H200", "H200 SXM"),
    ("NVIDIA H200 NVL", "H200 NVL"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA A100-SXM4-40GB", "A100"),
    ("NVIDIA A100-SXM4-80GB", "A100"),
    ("NVIDIA A100 80GB PCIe", "A100"),
    ("NVIDIA A100-PCIE-40GB", "A100"),
    ("NVIDIA L40S", "L40S"),
    ("NVIDIA L40", "L40"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA A10", "A10"),
    ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ("NVIDIA GeForce RTX 3090", "RTX 3090"),
])
def test_known_devices_are_found_by_the_name_torch_reports(name: str, entry: str) -> None:
    assert device_peak(name) is DEVICES[entry]


@pytest.mark.parametrize("name", [
    "NVIDIA A10G",  # not A10: other clocks, and no NVIDIA datasheet
    "NVIDIA GeForce RTX 3090 Ti",  # not the 3090
    "NVIDIA H800", "NVIDIA B200", "Tesla V100-SXM2-16GB", "AMD Instinct MI300X", "",
])
def test_unknown_devices_have_no_peak(name: str) -> None:
    assert device_peak(name) is None


def test_the_table_holds_dense_datasheet_peaks() -> None:
    h200 = device_peak("NVIDIA H200")
    assert h200 is not None
    # The datasheet's 1,979 (bf16) and 989 (tf32) TFLOP/s are with 2:4 sparsity: dense is half.
    assert (h200.at("bf16"), h200.at("tf32"), h200.at("fp32")) == (989.5e12, 494.5e12, 67e12)
    for peak in DEVICES.values():  # tensor cores are never slower than the plain fp32 units
        assert peak.bf16 >= peak.tf32 > 0 and peak.bf16 >= peak.fp32 > 0, peak.name


def test_the_peak_is_the_param_when_given() -> None:
    assert resolve_peak(312.0, bf16=True) == (312e12, "train.peak_tflops = 312 TFLOP/s")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU case")
def test_a_cpu_has_no_peak_unless_given_and_says_why() -> None:
    peak, why = resolve_peak(0.0, bf16=False)
    assert peak is None
    assert "no CUDA device" in why and "train.peak_tflops" in why
