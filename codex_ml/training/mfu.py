"""Model FLOP utilisation (MFU): the share of the device's peak that the model's own arithmetic uses.

MFU = flops_per_token x tokens/s / peak FLOP/s (PaLM, appendix B). Only the model's matmuls count:
recomputation (gradient checkpointing), the optimizer and anything else the step does are overhead,
so MFU compares runs, settings and machines on the work that trains the model.

- flops_per_token: 6 N (forward and backward of every weight matmul, 2 + 4 FLOPs per weight and token;
  tied embeddings counted once, as the output layer's matmul: the input lookup is no matmul) plus
  12 L d T for attention scores and values (L layers, d = heads x head_dim, T = seq_len; causal
  masking is not discounted, as in PaLM and nanoGPT).
- The peak: dense (not 2:4-sparse) tensor-core FLOP/s from the vendor's datasheet, per precision:
  bf16 for bf16 autocast, tf32 for float32 matmuls when torch allows TF32, fp32 otherwise. A device
  not in the table has no peak (None), and there is no CPU peak: a CPU's depends on its SIMD width,
  clock and cores, so train.peak_tflops gives one where a user knows it. Nothing is guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

Precision = Literal["bf16", "tf32", "fp32"]


def _parameters_of_config(c: Any) -> int:
    """The weights of a Llama-shaped config (the registry's), counted as count_parameters would count
    the built model: q, k, v, o and the three SwiGLU matrices per layer, two RMSNorms per layer (and
    Qwen3's two per-head QK-norms), the final norm, the token embedding, and the output layer unless
    it is tied to the embedding."""
    h, inter, layers = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    head_dim = getattr(c, "head_dim", None) or h // c.num_attention_heads
    q = c.num_attention_heads * head_dim
    kv = c.num_key_value_heads * head_dim
    attn = h * q + 2 * h * kv + q * h + (q + 2 * kv + h if getattr(c, "attention_bias", False) else 0)
    mlp = 3 * h * inter + (2 * inter + h if getattr(c, "mlp_bias", False) else 0)
    embed = c.vocab_size * h * (1 if c.tie_word_embeddings else 2)
    qk_norm = 2 * head_dim if getattr(c, "model_type", None) == "qwen3" else 0  # Qwen3's q_norm, k_norm
    return layers * (attn + mlp + 2 * h + qk_norm) + h + embed


def flops_per_token(model_or_config: Any, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward) of a model, or of a Llama-shaped config (then
    without building it): 6 N + 12 L d T, as the module docstring says."""
    if hasattr(model_or_config, "parameters"):  # a torch module: what it holds (tied weights once)
        c = model_or_config.config
        n = sum(p.numel() for p in model_or_config.parameters())
    else:
        c = model_or_config
        n = _parameters_of_config(c)
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return float(6 * n + 12 * c.num_hidden_layers * c.num_attention_heads * head_dim * seq_len)


@dataclass(frozen=True)
class DevicePeak:
    """Dense peak FLOP/s of one device, per precision."""

    name: str
    bf16: float
    tf32: float
    fp32: float

    def at(self, precision: Precision) -> float:
        return float(getattr(self, precision))


# Dense peaks from NVIDIA's datasheets and architecture whitepapers. The datasheets print the tensor-core
# figures "with sparsity" (2:4 structured); dense is half of that, which is what is stored here (as
# sparse / 2). bf16 is with FP32 accumulate (what autocast training uses).
# - H200 SXM / NVL: NVIDIA H200 Tensor Core GPU datasheet (BF16 1,979 / 1,671 sparse; TF32 989 / 835
#   sparse; FP32 67 / 60).
# - H100 SXM / PCIe / NVL: NVIDIA H100 Tensor Core GPU datasheet (BF16 1,979 / 1,513 / 1,671 sparse;
#   TF32 989 / 756 / 835 sparse; FP32 67 / 51 / 60).
# - A100 40GB and 80GB, SXM and PCIe (the same peaks): NVIDIA A100 datasheet (BF16 312, TF32 156 dense;
#   FP32 19.5).
# - L40S: NVIDIA L40S datasheet (BF16 362.05 dense / 733 sparse; TF32 183 / 366; FP32 91.6).
# - L40: NVIDIA L40 datasheet (BF16 181.05 / 362.1 sparse; TF32 90.5 / 181; FP32 90.5).
# - L4: NVIDIA L4 datasheet (BF16 242 sparse; TF32 120 sparse; FP32 30.3).
# - A10: NVIDIA A10 datasheet (BF16 125 dense / 250 sparse; TF32 62.5 / 125; FP32 31.2).
# - GeForce RTX 4090: NVIDIA Ada Lovelace architecture whitepaper, appendix A (BF16 with FP32 accumulate
#   165.2 dense; TF32 82.6; FP32 82.6).
# - GeForce RTX 3090: NVIDIA Ampere GA102 architecture whitepaper, table 9 (BF16 with FP32 accumulate 71
#   dense; TF32 35.6; FP32 35.6).
# Not listed: AWS's A10G (a variant of the A10 with other clocks; NVIDIA publishes no datasheet for it)
# and anything else unlisted: set train.peak_tflops.
DEVICES: dict[str, DevicePeak] = {p.name: p for p in (
    DevicePeak("H200 SXM", bf16=1979e12 / 2, tf32=989e12 / 2, fp32=67e12),
    DevicePeak("H200 NVL", bf16=1671e12 / 2, tf32=835e12 / 2, fp32=60e12),
    DevicePeak("H100 SXM", bf16=1979e12 / 2, tf32=989e12 / 2, fp32=67e12),
    DevicePeak("H100 PCIe", bf16=1513e12 / 2, tf32=756e12 / 2, fp32=51e12),
    DevicePeak("H100 NVL", bf16=1671e12 / 2, tf32=835e12 / 2, fp32=60e12),
    DevicePeak("A100", bf16=312e12, tf32=156e12, fp32=19.5e12),
    DevicePeak("L40S", bf16=362.05e12, tf32=183e12, fp32=91.6e12),
    DevicePeak("L40", bf16=181.05e12, tf32=90.5e12, fp32=90.5e12),
    DevicePeak("L4", bf16=242e12 / 2, tf32=120e12 / 2, fp32=30.3e12),
    DevicePeak("A10", bf16=125e12, tf32=62.5e12, fp32=31.2e12),
    DevicePeak("RTX 4090", bf16=165.2e12, tf32=82.6e12, fp32=82.6e12),
    DevicePeak("RTX 3090", bf16=71e12, tf32=35.6e12, fp32=35.6e12),
)}

# torch.cuda.get_device_name() -> table entry. Matched whole (after dropping "NVIDIA " and "GeForce "
# and lower-casing), so A10 never matches A100 or A10G, L40 never L40S, RTX 3090 never RTX 3090 Ti.
# The H100 SXM reports itself as "NVIDIA H100 80GB HBM3", the H200 SXM as "NVIDIA H200".
_NAMES: tuple[tuple[str, str], ...] = (
    (r"h200 nvl.*", "H200 NVL"),
    (r"h200( sxm.*| 141gb.*)?", "H200 SXM"),
    (r"h100 nvl.*", "H100 NVL"),
    (r"h100 (pcie|80gb pcie|hbm2e).*", "H100 PCIe"),
    (r"h100( 80gb hbm3| sxm.*)", "H100 SXM"),
    (r"a100([- ].*)?", "A100"),
    (r"l40s", "L40S"),
    (r"l40", "L40"),
    (r"l4", "L4"),
    (r"a10", "A10"),
    (r"rtx 4090", "RTX 4090"),
    (r"rtx 3090", "RTX 3090"),
)


def device_peak(device_name: str) -> DevicePeak | None:
    """The table's entry for a name as torch.cuda.get_device_name() gives it; None if not listed."""
    name = " ".join(device_name.lower().split())
    for prefix in ("nvidia ", "geforce "):
        name = name.removeprefix(prefix)
    for pattern, key in _NAMES:
        if re.fullmatch(pattern, name):
            return DEVICES[key]
    return None


def cuda_precision(bf16: bool) -> Precision:
    """The precision a CUDA run's matmuls execute in: bf16 under autocast, else TF32 where torch allows
    it for float32 matmuls (set_float32_matmul_precision high or medium), else fp32."""
    import torch

    if bf16:
        return "bf16"
    return "fp32" if torch.get_float32_matmul_precision() == "highest" else "tf32"


def resolve_peak(peak_tflops: float, bf16: bool) -> tuple[float | None, str]:
    """The peak FLOP/s of one process's device: train.peak_tflops when > 0, else the table's peak of
    this process's CUDA device at the run's precision. Returns (peak, what it is) or (None, why there
    is none), the second for the stage's log line."""
    import torch

    if peak_tflops > 0:
        return peak_tflops * 1e12, f"train.peak_tflops = {peak_tflops:g} TFLOP/s"
    if not torch.cuda.is_available():
        return None, ("no CUDA device, and this project knows no CPU's peak: set train.peak_tflops "
                      "(TFLOP/s per process) to log it")
    name = torch.cuda.get_device_name()
    entry = device_peak(name)
    precision = cuda_precision(bf16)
    if entry is None:
        return None, (f"{name} is not in the table of known devices (codex_ml/training/mfu.py): set "
                      f"train.peak_tflops to its dense {precision} peak to log it")
    flops = entry.at(precision)
    return flops, f"{name}: the {entry.name}'s dense {precision} peak, {flops / 1e12:g} TFLOP/s (datasheet)"


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float) -> float:
    """The fraction of `peak_flops` (the peak of all the devices that made `tokens_per_s` together)."""
    return tokens_per_s * flops_per_token / peak_flops
