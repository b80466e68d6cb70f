"""The CUDA paths: the fused output-layer loss in fp32 and under bf16 autocast, eval's scorer, the
stage's trainer training in bf16, and the train=gpu profile logging MFU. Skipped where torch sees no GPU
(CI); run on a GPU machine with `pytest tests/test_cuda.py`."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from codex_ml.eval.score import score_documents
from codex_ml.models import Vocab, build_model, head
from codex_ml.params import ModelParams, TrainParams, parse_params
from codex_ml.training.mfu import device_peak
from codex_ml.training.stage import TrainPaths, run_training
from codex_ml.training.trainer import CodexTrainer, training_arguments, use_bf16
from codex_ml.training.windows import EvalWindows, TrainWindows
from tests.trainkit import compose_checked, write_token_data

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

VOCAB = Vocab(size=8192, pad_id=0, bos_id=1, eos_id=2)
CUDA = torch.device("cuda")


def stdlib_ids(n: int) -> np.ndarray:
    """Real code as ids: stdlib bytes shifted past the specials."""
    root = Path(sysconfig.get_paths()["stdlib"])
    data = b"".join(p.read_bytes() for p in sorted(root.glob("*.py")))[:n]
    return np.frombuffer(data, dtype=np.uint8).astype(np.uint16) + 3


def pair(name: str = "llama-mini") -> tuple[torch.nn.Module, torch.nn.Module]:
    plain = build_model(ModelParams(name=name), VOCAB, seq_len=128, seed=0).to(CUDA)
    fused = build_model(ModelParams(name=name), VOCAB, seq_len=128, seed=0).to(CUDA)
    assert head.fuse_loss(fused)
    return plain, fused


def batch() -> torch.Tensor:
    ids = torch.from_numpy(stdlib_ids(16 * 128).astype(np.int64)).view(16, 128)
    return ids.to(CUDA)


@pytest.mark.parametrize("bf16", [False, True])
def test_fused_loss_matches_transformers_on_cuda(bf16: bool) -> None:
    plain, fused = pair()
    x = batch()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        ref = plain(input_ids=x, labels=x).loss
        got = fused(input_ids=x, labels=x).loss
    ref.backward()
    got.backward()
    assert got.dtype == torch.float32
    assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=2e-3 if bf16 else 1e-5)
    for (name, a), (_, b) in zip(plain.named_parameters(), fused.named_parameters(), strict=True):
        assert a.grad is not None and b.grad is not None and b.grad.dtype == torch.float32, name
        cos = torch.nn.functional.cosine_similarity(a.grad.flatten(), b.grad.flatten(), dim=0)
        assert float(cos) > (0.99 if bf16 else 0.99999), name


def test_eval_blocks_match_logits_path_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_model(ModelParams(name="llama-mini"), VOCAB, seq_len=128, seed=1).to(CUDA).eval()
    ids = stdlib_ids(30_000).astype(np.int64)
    docs = [ids[i:i + 3_000] for i in range(0, len(ids), 3_000)]
    args = dict(window=128, stride=64, batch_size=16, eos_id=2, pad_id=0, device=CUDA)
    blocks = score_documents(model, docs, **args)
    monkeypatch.setattr(head, "PLAIN_HEAD_TYPES", frozenset())
    logits = score_documents(model, docs, **args)
    assert blocks.tokens.tolist() == logits.tokens.tolist()
    assert blocks.nll == pytest.approx(logits.nll, rel=1e-4)
    assert abs(int(blocks.correct.sum()) - int(logits.correct.sum())) <= 2  # argmax ties at fp rounding


@pytest.mark.parametrize("fused", [False, True])
def test_stage_trainer_learns_in_bf16_on_cuda(tmp_path: Path, fused: bool) -> None:
    """The train stage's Trainer as training/stage.py configures it (bf16 autocast on CUDA, Muon + AdamW;
    transformers' loss on CUDA, the fused one on request), minus dvclive: 300 steps on real code
    must take the val loss far below uniform."""
    params = TrainParams(seq_len=128, batch_size=16, max_steps=300, warmup_steps=30, eval_every=150,
                         checkpoint_every=150, eval_batches=4)
    assert use_bf16(params)
    tokens = stdlib_ids(2_000_000)
    model = build_model(ModelParams(name="llama-mini"), VOCAB, params.seq_len, params.seed)
    assert not fused or head.fuse_loss(model)
    trainer = CodexTrainer(
        model=model, args=training_arguments(params, tmp_path / "ckpt", 1, quiet=True),
        train_dataset=TrainWindows(tokens[:1_800_000], 128, 300 * 16, 16, params.seed),
        eval_dataset=EvalWindows(tokens[1_800_000:], 128, 4 * 16),
        checkpoint_meta={"format": 0, "sampler": {"seed": params.seed, "windows_per_step": 16}},
        keep_best=1, muon_lr=params.muon_lr)
    trainer.train()
    vals = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    assert len(vals) == 2 and vals[-1] < vals[0] < np.log(VOCAB.size)
    assert vals[-1] < 3.0, vals  # bytes of code: uniform over the 256 byte ids would be 5.5 nats


def test_gpu_profile_trains_llama_small_and_logs_mfu(tmp_path: Path, stdlib_sample: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """train=gpu as composed (bf16, compile, fused AdamW, 64 x 1024 tokens per step) with llama-small,
    a few steps of the real stage on real code (an 8192-token BPE): MFU is logged at every step against
    the device table's bf16 peak (or a given one, on a GPU the table lacks). No timing thresholds."""
    texts = [f.read_text(encoding="utf-8") for f in sorted(stdlib_sample.rglob("*.py"))]
    write_token_data({"train": texts, "val": texts[::4]}, tmp_path, vocab_size=8192)
    monkeypatch.chdir(tmp_path)
    raw = compose_checked(tmp_path, ["train=gpu", "model=llama-small"])
    name = torch.cuda.get_device_name()
    known = device_peak(name)
    assert known is not None or not any(g in name for g in ("H200", "H100", "A100")), name  # the table's own
    steps = {"max_steps": 6, "warmup_steps": 1, "eval_every": 6, "checkpoint_every": 6, "eval_batches": 1,
             "peak_tflops": 0 if known else 100}
    params = parse_params({"model": raw["model"], "train": {**raw["train"], **steps}})
    assert params.train.compile and use_bf16(params.train) and params.train.batch_size * 1024 >= 65_536
    summary = run_training(params, TrainPaths(metrics=tmp_path / "metrics/train"))
    metrics = json.loads((tmp_path / "metrics/train/metrics.json").read_text())
    assert metrics["train"]["mfu"] > 0 and summary["train/mfu_median"] > 0
    assert summary["train/mfu_peak_tflops"] == (known.bf16 / 1e12 if known else 100)
    assert np.isfinite(summary["val/final_loss"])
