"""models/codex_lm.py: Qwen3 plus value embeddings, saved and loaded as a Hugging Face folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen3Config, Qwen3ForCausalLM

from codex_ml.models import Vocab, build_model, model_config
from codex_ml.models.codex_lm import CodexConfig
from codex_ml.params import ModelParams
from codex_ml.training.optim import is_muon_param

VOCAB = Vocab(size=384, pad_id=0, bos_id=1, eos_id=2)
SHAPE = dict(vocab_size=VOCAB.size, hidden_size=64, intermediate_size=192, num_hidden_layers=4,
             num_attention_heads=4, num_key_value_heads=4, head_dim=16, max_position_embeddings=64,
             tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def ids(seed: int = 0, shape: tuple[int, int] = (2, 24)) -> torch.Tensor:
    return torch.randint(3, VOCAB.size, shape, generator=torch.Generator().manual_seed(seed))


def codex(value_embeds: int, seed: int = 0, **options: Any) -> torch.nn.Module:
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(CodexConfig(value_embeds=value_embeds, **options, **SHAPE)).eval()


OPTIONS = [{}, {"unet": True, "logit_softcap": 15.0}]


def test_without_value_embeddings_it_is_qwen3_weight_for_weight() -> None:
    ours = codex(0)
    torch.manual_seed(0)
    theirs = Qwen3ForCausalLM(Qwen3Config(**SHAPE)).eval()
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for name in b:
        assert torch.equal(a[name], b[name]), name
    x = ids()
    with torch.no_grad():
        assert torch.equal(ours(input_ids=x).logits, theirs(input_ids=x).logits)


@pytest.mark.parametrize(("k", "tables"), [(1, [0, None, None, 0]), (2, [0, 1, 0, 1])])
def test_value_tables_feed_the_first_and_last_layers(k: int, tables: list[int | None]) -> None:
    model = codex(k)
    assert [layer.self_attn.value_table for layer in model.model.layers] == tables
    assert len(model.model.value_embeds) == k
    gated = [n for n, _ in model.named_parameters() if n.endswith("value_gate")]
    assert len(gated) == sum(t is not None for t in tables)
    # a table changes the output: it is wired in, not dead weight
    x = ids()
    with torch.no_grad():
        before = model(input_ids=x).logits
        model.model.value_embeds[0].weight.add_(0.1)
        assert not torch.allclose(model(input_ids=x).logits, before)


def test_too_many_tables_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"value_embeds: expected 0 to num_hidden_layers // 2 \(2\), got 3"):
        CodexConfig(value_embeds=3, **SHAPE)


def test_softcapped_logits_stay_inside_the_cap_and_keep_transformers_loss() -> None:
    from codex_ml.models import head

    model = codex(0, logit_softcap=2.0)
    x = ids()
    out = model(input_ids=x, labels=x)
    assert float(out.logits.abs().max()) < 2.0
    ref = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB.size), x[:, 1:].reshape(-1))
    assert float(out.loss) == pytest.approx(float(ref), rel=1e-5)
    assert head.plain_head(model) is None  # the block-wise loss has no cap: it must not take over


@pytest.mark.parametrize("options", OPTIONS)
def test_a_later_token_never_changes_an_earlier_prediction(options: dict[str, Any]) -> None:
    model = codex(2, **options)
    x = ids()
    y = x.clone()
    y[:, 12] = (y[:, 12] + 1 - 3) % (VOCAB.size - 3) + 3
    with torch.no_grad():
        a, b = model(input_ids=x).logits, model(input_ids=y).logits
    torch.testing.assert_close(a[:, :12], b[:, :12], rtol=0, atol=0)
    assert not torch.allclose(a[:, 12:], b[:, 12:])


@pytest.mark.parametrize("options", OPTIONS)
def test_cached_generation_equals_recomputing_every_step(options: dict[str, Any]) -> None:
    model = codex(2, **options)
    prompt = ids(1, (2, 6))
    cached = model.generate(prompt, max_new_tokens=10, do_sample=False, pad_token_id=0)
    fresh = model.generate(prompt, max_new_tokens=10, do_sample=False, pad_token_id=0, use_cache=False)
    assert cached.shape == (2, 16)
    assert torch.equal(cached, fresh)


def test_saved_folder_loads_in_a_fresh_process_with_the_same_logits(tmp_path: Path) -> None:
    model = build_model(ModelParams(name="codex-micro"), VOCAB, seq_len=32, seed=3)
    model.save_pretrained(tmp_path / "m")
    assert '"model_type": "codex"' in (tmp_path / "m" / "config.json").read_text()
    x = ids(2, (1, 16))
    with torch.no_grad():
        want = model(input_ids=x).logits
    torch.save(x, tmp_path / "x.pt")
    # what the eval stage, `codex generate` and `codex eval` do: load_model, no trust_remote_code
    code = ("import sys, torch; from pathlib import Path; from codex_ml.eval.model import load_model;"
            "m = load_model(Path(sys.argv[1]), torch.device('cpu'));"
            "print(type(m).__name__); torch.save(m(input_ids=torch.load(sys.argv[2])).logits, sys.argv[3])")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m"), str(tmp_path / "x.pt"),
                          str(tmp_path / "y.pt")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "CodexForCausalLM"
    assert torch.equal(torch.load(tmp_path / "y.pt"), want)


def test_registry_shape_and_optimizer_split() -> None:
    c = model_config("codex-mini", VOCAB, 128)
    shape = (c.model_type, c.hidden_size, c.num_hidden_layers, c.head_dim, c.value_embeds)
    assert shape == ("codex", 128, 4, 32, 2)
    model = build_model(ModelParams(name="codex-micro"), VOCAB, seq_len=32, seed=0)
    muon = {n for n, p in model.named_parameters() if is_muon_param(n, p)}
    assert not any("value_embeds" in n or "embed_tokens" in n for n in muon)  # tables stay on AdamW
    assert any(n.endswith("v_proj.weight") for n in muon)
