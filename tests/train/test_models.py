"""The model registry, pretrained folders, LoRA validation and the exported model folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from codex_ml.models import (
    MODELS,
    Vocab,
    apply_lora,
    build_model,
    count_parameters,
    linear_module_names,
    model_config,
    save_model_folder,
)
from codex_ml.params import LoraParams, ModelParams, ParamsError, parse_params

VOCAB = Vocab(size=384, pad_id=0, bos_id=1, eos_id=2)


def test_registry_has_the_five_named_sizes_in_order_of_size() -> None:
    names = ("llama-micro", "llama-mini", "llama-tiny", "llama-small", "llama-medium")
    assert set(names) <= set(MODELS)
    mini = model_config("llama-mini", VOCAB, 128)
    assert (mini.hidden_size, mini.num_hidden_layers, mini.head_dim) == (128, 4, 32)
    tiny = model_config("llama-tiny", VOCAB, 256)
    assert (tiny.hidden_size, tiny.num_hidden_layers) == (256, 4)
    medium = model_config("llama-medium", VOCAB, 1024)  # for one large GPU (train=gpu)
    assert (medium.hidden_size, medium.num_hidden_layers, medium.head_dim) == (1024, 16, 64)
    widths = [model_config(n, VOCAB, 256).hidden_size for n in names]
    assert widths == sorted(widths) and len(set(widths)) == 5


def test_the_default_is_qwen3_mini_a_stock_transformers_model(tmp_path: Path) -> None:
    assert ModelParams().name == parse_params({}).model.name == "qwen3-mini"
    model = build_model(ModelParams(), VOCAB, seq_len=128, seed=0)
    c = model.config
    assert (type(model).__name__, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.head_dim) == (
        "Qwen3ForCausalLM", 128, 4, 4, 32)
    assert model.model.layers[0].self_attn.q_norm.weight.shape == (32,)  # QK-norm: what it adds to Llama
    model.save_pretrained(tmp_path / "m")
    # the saved folder needs nothing from codex_ml: plain transformers in a fresh process loads it
    code = "import sys; from transformers import AutoModelForCausalLM; " \
           "print(type(AutoModelForCausalLM.from_pretrained(sys.argv[1])).__name__)"
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m")], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "Qwen3ForCausalLM"


def test_named_model_takes_vocab_and_context_from_the_tokenizer_and_seq_len() -> None:
    vocab = Vocab(size=500, pad_id=3, bos_id=1, eos_id=2)
    model = build_model(ModelParams(name="llama-micro"), vocab, seq_len=96, seed=0)
    c = model.config
    assert (c.vocab_size, c.pad_token_id, c.bos_token_id, c.eos_token_id) == (500, 3, 1, 2)
    assert c.max_position_embeddings == 96
    assert model.get_input_embeddings().weight.shape == (500, 64)
    assert next(model.parameters()).dtype == torch.float32


def test_initial_weights_are_a_function_of_the_seed() -> None:
    def weights(seed: int) -> torch.Tensor:
        model = build_model(ModelParams(name="llama-micro"), VOCAB, 64, seed)
        return model.model.layers[0].mlp.up_proj.weight

    assert torch.equal(weights(1), weights(1))
    assert not torch.equal(weights(1), weights(2))


def test_unknown_name_is_a_params_error_listing_the_known_names() -> None:
    with pytest.raises(ParamsError) as err:
        build_model(ModelParams(name="llama-huge"), VOCAB, 64, 0)
    msg = str(err.value)
    assert msg.startswith("model.name:") and "llama-huge" in msg
    assert all(name in msg for name in MODELS)


def test_pretrained_folder_loads_the_same_weights(tmp_path: Path) -> None:
    base = build_model(ModelParams(name="llama-micro"), VOCAB, 64, seed=5)
    base.save_pretrained(tmp_path / "base")
    loaded = build_model(ModelParams(pretrained=str(tmp_path / "base")), VOCAB, 64, seed=0)
    for (name, a), (_, b) in zip(base.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_pretrained_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"^model\.pretrained: .*\(no config\.json\)"):
        build_model(ModelParams(pretrained=str(tmp_path)), VOCAB, 64, 0)
    build_model(ModelParams(name="llama-micro"), VOCAB, 64, 0).save_pretrained(tmp_path / "m")
    with pytest.raises(ParamsError, match=r"^model\.pretrained: .*384 token embeddings, fewer than .* 1000"):
        build_model(ModelParams(pretrained=str(tmp_path / "m")), Vocab(1000, 0, 1, 2), 64, 0)
    with pytest.raises(ParamsError, match=r"^train\.final_seq_len \(else train\.seq_len\): expected a "
                                          r"training context <= 64 \(max_position_embeddings of "
                                          r"model\.pretrained .*m\), got 128$"):
        build_model(ModelParams(pretrained=str(tmp_path / "m")), VOCAB, 128, 0)


@pytest.mark.parametrize(("lora", "key"), [({"r": 0}, "model.lora.r"), ({"alpha": 0}, "model.lora.alpha"),
                                           ({"dropout": 1.0}, "model.lora.dropout"),
                                           ({"enabled": True, "target_modules": []},
                                            "model.lora.target_modules")])
def test_lora_params_out_of_range_name_the_key(lora: dict, key: str) -> None:
    with pytest.raises(ParamsError, match=rf"^params: {key}: "):
        parse_params({"model": {"lora": lora}})


def test_lora_target_that_is_not_a_linear_module_lists_the_ones_there_are() -> None:
    model = build_model(ModelParams(name="llama-micro"), VOCAB, 64, 0)
    assert linear_module_names(model) == ["down_proj", "gate_proj", "k_proj", "lm_head", "o_proj", "q_proj",
                                          "up_proj", "v_proj"]
    with pytest.raises(ParamsError) as err:
        apply_lora(model, LoraParams(enabled=True, target_modules=["q_proj", "query", "mlp"]))
    msg = str(err.value)
    assert msg.startswith("model.lora.target_modules: query, mlp not in the model")
    assert "down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj" in msg


# peft 0.21 reads transformers 5's deprecated is_gradient_checkpointing when saving: not ours.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_lora_trains_only_adapters_and_exports_a_merged_plain_model(tmp_path: Path, token_data: Path) -> None:
    model = apply_lora(build_model(ModelParams(name="llama-micro"), VOCAB, 64, 0),
                       LoraParams(enabled=True, r=4, target_modules=["q_proj", "v_proj"]))
    assert 0 < count_parameters(model, trainable_only=True) < count_parameters(model) / 10
    with torch.no_grad():  # LoRA's B starts at zero (a no-op); make the adapter matter
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    ids = torch.arange(3, 40).unsqueeze(0)
    model.eval()
    with torch.no_grad():
        expected = model(ids).logits
    save_model_folder(model, token_data / "models" / "tokenizer", tmp_path / "model")

    out = tmp_path / "model"
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    plain = AutoModelForCausalLM.from_pretrained(out)
    assert type(plain).__name__ == "LlamaForCausalLM"
    assert not any("lora" in n for n, _ in plain.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, expected, rtol=1e-4, atol=1e-4)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.decode(tok("def f(x):\n    return x")["input_ids"]) == "def f(x):\n    return x"
