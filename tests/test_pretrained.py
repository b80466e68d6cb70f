"""Fine-tuning real pretrained architectures with their own tokenizers, stage by stage, in process.

Five families (tests/pretrainedkit.py: GPT-2, Llama, Qwen2, GPT-NeoX, Phi), each a random-init toy model
saved with its own trained tokenizer, go through tokenize -> train (all weights, and LoRA) -> eval ->
generate on the same small prepared corpus of real stdlib code. Plus: the refusals (token files of
another tokenizer, a base model changed after tokenize), the offline hub-id path, lossy tokenizers.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from codex_ml.base_model import folder_sha256, resolve
from codex_ml.handoffs import TokenMeta
from codex_ml.params import ParamsError, parse_params
from codex_ml.runtime import StageError
from codex_ml.shards import iter_prepared, open_stream, read_index
from tests.pretrainedkit import FAMILIES, TRAIN, hub_cache, params_for, run_eval, run_tokenize, run_train
from tests.tokenizekit import folder_bytes


def token_ids(root: Path, split: str) -> list[list[int]]:
    import numpy as np

    tokens = open_stream(root / "data/tokens", TokenMeta.load(root / "data/tokens"), split)
    offsets = read_index(root / "data/tokens" / f"{split}.index.parquet").offsets()
    return [np.asarray(tokens[offsets[i]:offsets[i + 1] - 1]).tolist() for i in range(len(offsets) - 1)]


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_tokenize_train_lora_eval_generate(
        family: str, pretrained_corpus: Path, pretrained_bases: dict[str, Path], tmp_path: Path,
        one_thread: None) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codex_ml.eval.generate import generate
    from codex_ml.eval.options import SamplingParams

    base = pretrained_bases[family]
    params = params_for(base)
    metrics = run_tokenize(params, pretrained_corpus, tmp_path)
    assert metrics["backend"] == "pretrained" and metrics["base_model"]["pretrained"] == str(base)
    # The token files hold the model's own ids: what AutoTokenizer on the model folder gives.
    own = AutoTokenizer.from_pretrained(base)
    val = [r["text"] for _, r in iter_prepared(pretrained_corpus, "val")]
    assert token_ids(tmp_path, "val") == [own(t, add_special_tokens=False)["input_ids"] for t in val]
    meta = json.loads((tmp_path / "data/tokens/meta.json").read_text())
    assert meta["vocab_size"] == len(own) and meta["eos_id"] == own.eos_token_id
    assert meta["pad_id"] == (own.pad_token_id if own.pad_token_id is not None else own.eos_token_id)
    assert meta["base_model"]["sha256"] == folder_sha256(base)

    run_train(params, tmp_path)
    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "models/trained")
    tok = AutoTokenizer.from_pretrained(tmp_path / "models/trained")
    assert type(tuned).__name__ == type(AutoModelForCausalLM.from_pretrained(base)).__name__
    assert tok.eos_token_id == tuned.config.eos_token_id == meta["eos_id"]
    assert tuned.config.pad_token_id == tok.pad_token_id == meta["pad_id"]
    assert tok(val[0], add_special_tokens=False)["input_ids"] == token_ids(tmp_path, "val")[0]

    scores = run_eval(params, pretrained_corpus, tmp_path)
    for split in ("val", "test"):
        assert scores[split]["bits_per_byte"] < scores[split]["baselines"]["base_model_bpb"]
    text = generate(tmp_path / "models/trained", "def parse(", SamplingParams(max_new_tokens=8), device="cpu")
    assert isinstance(text, str) and text

    lora = params_for(base, lora={"enabled": True, "target_modules": ["all-linear"]})
    run_train(lora, tmp_path)
    assert (tmp_path / "models/trained/adapter/adapter_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "models/trained")
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert run_eval(lora, pretrained_corpus, tmp_path)["val"]["baselines"]["base_model_bpb"] == \
        scores["val"]["baselines"]["base_model_bpb"]  # the same base, scorer and tokens


def test_token_files_of_another_tokenizer_are_refused(
        pretrained_corpus: Path, pretrained_bases: dict[str, Path], tmp_path: Path) -> None:
    trained = parse_params({"tokenizer": {"backend": "hf-bpe", "vocab_size": 300}, "train": TRAIN})
    run_tokenize(trained, pretrained_corpus, tmp_path / "a")
    with pytest.raises(StageError, match=r"made by the hf-bpe tokenizer the tokenize stage trained, not by "
                                         r"model\.pretrained .*gpt2's own tokenizer .*dvc repro tokenize"):
        run_train(params_for(pretrained_bases["gpt2"]), tmp_path / "a")
    run_tokenize(params_for(pretrained_bases["qwen2"]), pretrained_corpus, tmp_path / "b")
    with pytest.raises(StageError, match=r"made by a tokenizer with sha256 \w{12}, not by model\.pretrained"):
        run_train(params_for(pretrained_bases["gpt2"]), tmp_path / "b")


def test_a_base_changed_after_tokenize_is_refused_and_tokenize_is_byte_identical(
        pretrained_corpus: Path, pretrained_bases: dict[str, Path], tmp_path: Path) -> None:
    base = shutil.copytree(pretrained_bases["gpt2"], tmp_path / "base")
    params = params_for(base)
    run_tokenize(params, pretrained_corpus, tmp_path / "a")
    run_tokenize(params, pretrained_corpus, tmp_path / "b")
    for out in ("data/tokens", "models/tokenizer"):
        assert folder_bytes(tmp_path / "a" / out) == folder_bytes(tmp_path / "b" / out)
    (base / "generation_config.json").write_text("{}")  # the weights' folder changes, the tokenizer not
    with pytest.raises(StageError, match=r"model\.pretrained .* changed since the tokenize stage"):
        run_train(params, tmp_path / "a")


def test_hub_id_resolves_from_the_local_cache_only(
        pretrained_corpus: Path, pretrained_bases: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    snapshot = hub_cache(pretrained_bases["gpt2"], tmp_path / "hf", "codex-test/tiny-gpt2", revision="a" * 40)
    assert resolve("codex-test/tiny-gpt2").folder == snapshot
    assert resolve("codex-test/tiny-gpt2", "a" * 40).folder == snapshot
    assert folder_sha256(snapshot) == folder_sha256(pretrained_bases["gpt2"])  # links followed: same content
    with pytest.raises(ParamsError, match=r"^model\.pretrained: codex-test/absent is not in the local "
                                          r"Hugging Face cache .*nothing is downloaded.*hf download "
                                          r"codex-test/absent"):
        resolve("codex-test/absent")
    with pytest.raises(ParamsError, match=r"model\.revision: applies to a hub id only"):
        resolve(str(pretrained_bases["gpt2"]), "main")
    # the stages take the id as they take a folder, and record the id and revision, not the cache path
    run_tokenize(params_for("codex-test/tiny-gpt2", revision="a" * 40), pretrained_corpus, tmp_path / "run")
    meta = json.loads((tmp_path / "run/data/tokens/meta.json").read_text())
    assert meta["base_model"]["pretrained"] == "codex-test/tiny-gpt2"
    assert meta["base_model"]["revision"] == "a" * 40


def test_lora_fine_tuning_is_byte_identical_run_to_run(
        pretrained_corpus: Path, pretrained_bases: dict[str, Path], tmp_path: Path, one_thread: None) -> None:
    lora = {"enabled": True, "target_modules": "all-linear"}
    raw = {"model": {"pretrained": str(pretrained_bases["gpt2"]), "lora": lora},
           "train": {**TRAIN, "max_steps": 4, "eval_every": 2, "checkpoint_every": 2}}
    run_tokenize(parse_params(raw), pretrained_corpus, tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for run in ("a", "b"):
        run_train(parse_params(raw), tmp_path / run)
    assert folder_bytes(tmp_path / "a/models/trained") == folder_bytes(tmp_path / "b/models/trained")


def test_a_lossy_tokenizer_reports_its_round_trip_rate_and_bytes_stay_the_originals(
        pretrained_corpus: Path, pretrained_bases: dict[str, Path], tmp_path: Path) -> None:
    from tokenizers import normalizers
    from transformers import AutoTokenizer

    base = shutil.copytree(pretrained_bases["gpt2"], tmp_path / "base")
    tok = AutoTokenizer.from_pretrained(base)
    tok.backend_tokenizer.normalizer = normalizers.Lowercase()  # not lossless on code
    tok.save_pretrained(base)
    metrics = run_tokenize(params_for(base), pretrained_corpus, tmp_path)
    assert 0 <= metrics["round_trip_exact"] < 1
    meta = json.loads((tmp_path / "data/tokens/meta.json").read_text())
    prepared = [r for _, r in iter_prepared(pretrained_corpus, "val")]
    assert read_index(tmp_path / "data/tokens/val.index.parquet").bytes == \
        [len(r["text"].encode()) for r in prepared]
    assert meta["splits"]["val"]["bytes"] == sum(len(r["text"].encode()) for r in prepared)


def test_lora_targets_all_linear_and_per_architecture_defaults(pretrained_bases: dict[str, Path]) -> None:
    from transformers import AutoModelForCausalLM

    from codex_ml.models.lora import resolve_targets
    from codex_ml.params import LoraParams

    gpt2 = AutoModelForCausalLM.from_pretrained(pretrained_bases["gpt2"])
    assert resolve_targets(gpt2, LoraParams(enabled=True)) == ["c_attn"]  # GPT-2's own default
    assert resolve_targets(gpt2, LoraParams(enabled=True, target_modules=["all-linear"])) == "all-linear"
    with pytest.raises(ParamsError, match=r"q_proj not in the model; .*gpt2's default is \[c_attn\]; or use "
                                          r"all-linear"):
        resolve_targets(gpt2, LoraParams(enabled=True, target_modules=["q_proj"]))


@pytest.mark.parametrize(("raw", "message"), [
    ({"tokenizer": {"backend": "pretrained"}},
     "tokenizer.backend: pretrained needs model.pretrained (whose tokenizer it is), got model.pretrained: "
     "null"),
    ({"model": {"revision": "main"}}, "model.revision: 'main' needs model.pretrained (a hub id), got null"),
    ({"model": {"pretrained": "org/name", "lora": {"qlora": True}}},
     "model.lora.qlora: true needs model.lora.enabled: true"),
    ({"model": {"lora": {"enabled": True, "qlora": True}}}, "model.lora.qlora: true needs model.pretrained"),
    ({"model": {"lora": {"target_modules": "all-lienar"}}}, "model.lora.target_modules: expected"),
])
def test_fine_tuning_params_conflicts_name_both_keys(raw: dict, message: str) -> None:
    with pytest.raises(ParamsError, match="^params.yaml: " + re.escape(message)):
        parse_params(raw, "params.yaml")
    assert parse_params({"model": {"lora": {"target_modules": "all-linear"}}}).model.lora.target_modules == \
        "all-linear"


def test_qlora_on_a_machine_without_cuda_is_one_error_before_anything_is_read(
        pretrained_bases: dict[str, Path], tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: QLoRA runs")
    params = params_for(pretrained_bases["gpt2"], lora={"enabled": True, "qlora": True})
    with pytest.raises(ParamsError, match=r"^model\.lora\.qlora: 4-bit base weights \(bitsandbytes\) need a "
                                          r"CUDA GPU and torch sees none; set model\.lora\.qlora: false"):
        run_train(params, tmp_path)  # no token files there: the QLoRA check comes first
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("family", ["llama", "gpt2"])  # the fused loss, and transformers' own
def test_gradient_checkpointing_trains_the_same_numbers(
        family: str, pretrained_corpus: Path, pretrained_bases: dict[str, Path], tmp_path: Path,
        one_thread: None) -> None:
    lora = {"enabled": True, "target_modules": "all-linear"}
    raw = {"model": {"pretrained": str(pretrained_bases[family]), "lora": lora},
           "train": {**TRAIN, "max_steps": 4, "eval_every": 2, "checkpoint_every": 2}}
    run_tokenize(parse_params(raw), pretrained_corpus, tmp_path)
    plain = run_train(parse_params(raw), tmp_path)
    shutil.rmtree(tmp_path / "models/checkpoints")
    checkpointed = run_train(parse_params({**raw, "train": {**raw["train"], "gradient_checkpointing": True}}),
                             tmp_path)
    assert checkpointed["val/final_loss"] == pytest.approx(plain["val/final_loss"], rel=1e-6)
    assert math.isfinite(checkpointed["val/final_loss"])


@pytest.mark.parametrize("family", ["qwen2", "mistral"])
def test_the_fused_loss_is_exact_on_the_other_plain_head_families(family: str,
                                                                  pretrained_bases: dict[str, Path]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, MistralConfig

    from codex_ml.models import head

    def load() -> Any:
        if family == "qwen2":
            return AutoModelForCausalLM.from_pretrained(pretrained_bases["qwen2"])
        torch.manual_seed(0)
        return AutoModelForCausalLM.from_config(MistralConfig(
            vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64))

    plain, fused = load(), load()
    assert head.fuse_loss(fused)
    x = torch.randint(0, 300, (4, 32), generator=torch.Generator().manual_seed(0))
    ref, out = plain(input_ids=x, labels=x).loss, fused(input_ids=x, labels=x)
    assert out.logits is None and float(out.loss) == pytest.approx(float(ref), rel=1e-6)
    ref.backward()
    out.loss.backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), fused.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_special_token_text_in_code_is_text_and_the_saved_tokenizer_stays_the_models(
        pretrained_bases: dict[str, Path], tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from codex_ml.tokenization import PretrainedTokenizer, load_tokenizer

    tok = PretrainedTokenizer.from_base(resolve(str(pretrained_bases["gpt2"])))
    code = 'END = "<|endoftext|>"\n'
    ids = tok.encode(code)
    assert tok.special_ids.eos not in ids and tok.decode(ids) == code
    tok.save(tmp_path / "tok")
    saved = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert saved.encode("<|endoftext|>", add_special_tokens=False) == [tok.special_ids.eos]  # as the model's
    assert saved.pad_token_id == saved.eos_token_id == tok.special_ids.pad  # no pad: EOS pads
    again = load_tokenizer(tmp_path / "tok")  # `codex tokenizer` reads the folder back
    assert again.encode(code) == ids and again.special_ids == tok.special_ids
