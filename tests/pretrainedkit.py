"""Tiny "pretrained" model folders of real architectures, each with its own small trained tokenizer.

Nothing is downloaded: each family's config is the real transformers class at a toy size, randomly
initialised from a seed, and its tokenizer is trained here with `tokenizers` the way that family's
tokenizer is built (GPT-2/Qwen2/NeoX/Phi: byte-level BPE with `<|endoftext|>`; Llama: SentencePiece-style
BPE with a metaspace dummy prefix, byte fallback and a BOS the tokenizer adds itself, so not lossless
on code). Each is saved with `save_pretrained`, exactly as a user's model folder would be.
`hub_cache` lays a folder out as the Hugging Face cache does, for the offline hub-id path. The stages
run in process on a small prepared corpus (`write_corpus`), in a folder laid out as the pipeline's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from codex_ml.base_model import base_of
from codex_ml.params import Params, parse_params
from codex_ml.shards import iter_prepared
from tests.conftest import SAMPLE_MODULES
from tests.tokenizekit import split_sample, write_prepared

FAMILIES = ("gpt2", "llama", "qwen2", "gpt_neox", "phi")
WINDOW = 128  # positions of every fixture
TRAIN = {"seq_len": 64, "final_seq_len": 0, "batch_size": 8, "max_steps": 12, "warmup_steps": 2,
         "eval_every": 6, "eval_batches": 2, "checkpoint_every": 6, "optimizer": "adamw", "lr": 0.003,
         "threads": 1, "fim": {"rate": 0.0}}  # the families' tokenizers have no FIM sentinels
EVAL = {"bootstrap": 50, "completion_samples": 4, "completion_max_tokens": 8, "batch_size": 8, "threads": 1,
        "infill": {"line": 4, "block": 2}}


def write_corpus(folder: Path) -> Path:
    """data/prepared of 24 real stdlib modules, each cut to ~4 kB at a line end."""
    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for rel in SAMPLE_MODULES[:24]:
        text = (stdlib / rel).read_text(encoding="utf-8")
        docs.append((rel, text[:text.rindex("\n", 0, 4000) + 1] if len(text) > 4000 else text))
    return write_prepared(folder, split_sample(docs))


def train_texts(corpus: Path) -> list[str]:
    return [r["text"] for _, r in iter_prepared(corpus, "train")]


def params_for(base: Path | str, **model: Any) -> Params:
    return parse_params({"model": {"pretrained": str(base), **model}, "train": TRAIN, "eval": EVAL})


def run_tokenize(params: Params, corpus: Path, root: Path) -> dict[str, Any]:
    from codex_ml.paths import TOKENIZE_METRICS, TOKENIZER, TOKENS
    from codex_ml.tokenization.stage import tokenize

    return tokenize(params.tokenizer, corpus, root / TOKENIZER, root / TOKENS, root / TOKENIZE_METRICS,
                    base=base_of(params.model))


def run_train(params: Params, root: Path) -> dict[str, Any]:
    from codex_ml.training.stage import TrainPaths, run_training

    return run_training(params, TrainPaths.under(root))


def run_eval(params: Params, corpus: Path, root: Path) -> dict[str, Any]:
    from codex_ml.eval.stage import EvalInputs, run_eval

    inputs = EvalInputs.under(root, prepared_dir=corpus)
    return run_eval(params.eval, inputs, train_seq_len=params.train.context)[0]


STARCODER_FIM = ["<fim_prefix>", "<fim_middle>", "<fim_suffix>"]  # StarCoder's sentinels


def train_family_tokenizer(family: str, texts: list[str], vocab_size: int = 400, fim: bool = False) -> Any:
    """A PreTrainedTokenizerFast trained on `texts` with `family`'s special tokens and pre-tokenizer
    (and StarCoder's FIM sentinels with `fim`, byte-level families only)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if family == "llama":
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                      show_progress=False)
        tok.train_from_iterator(texts, trainer)
        # As in Llama's own tokenizer.json, the 256 byte pieces are ordinary vocabulary (ids 3-258).
        data = json.loads(tok.to_str())
        vocab = data["model"]["vocab"]
        learned = sorted((i, t) for t, i in vocab.items() if i >= 3)
        vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
        vocab.update({t: 259 + n for n, (_, t) in enumerate(learned)})
        data["model"]["vocab"] = vocab
        for added in data["added_tokens"]:
            added["id"] = vocab[added["content"]]
        tok = Tokenizer.from_str(json.dumps(data))
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                       unk_token="<unk>")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>"] + STARCODER_FIM * fim
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    end = "<|endoftext|>"
    if family == "qwen2":  # Qwen2: no BOS, pad is <|endoftext|>
        return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=end, pad_token=end)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=end, eos_token=end, unk_token=end)


def family_config(family: str, tokenizer: Any, hidden: int = 32, layers: int = 2) -> Any:
    """A toy-sized config of the family's real class, special ids from the tokenizer."""
    from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig, PhiConfig, Qwen2Config

    ids = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    shape = dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                 num_attention_heads=4, max_position_embeddings=WINDOW)
    if family == "gpt2":
        return GPT2Config(n_embd=hidden, n_layer=layers, n_head=4, n_positions=WINDOW, **ids)
    if family == "phi":  # a head with a bias, partial rotary: no fused loss
        return PhiConfig(**shape, **ids)
    if family == "gpt_neox":
        return GPTNeoXConfig(**shape, tie_word_embeddings=False, **ids)
    cls = LlamaConfig if family == "llama" else Qwen2Config
    return cls(**shape, num_key_value_heads=2, tie_word_embeddings=True, **ids)


def make_pretrained(family: str, texts: list[str], folder: Path, seed: int = 0, hidden: int = 32,
                    layers: int = 2, fim: bool = False) -> Path:
    """A random-init `family` model with its own tokenizer trained on `texts` (with StarCoder's FIM
    sentinels if `fim`), saved to `folder`."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = train_family_tokenizer(family, texts, fim=fim)
    torch.manual_seed(seed)
    config = family_config(family, tokenizer, hidden, layers)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def hub_cache(folder: Path, hf_home: Path, repo_id: str, revision: str = "0" * 40) -> Path:
    """Lay `folder` out in `hf_home` as huggingface_hub's cache holds a downloaded snapshot
    (hub/models--org--name/{blobs,snapshots/<rev>,refs/main}); returns the snapshot folder."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for f in sorted(folder.iterdir()):
        blob = repo / "blobs" / f.name
        shutil.copyfile(f, blob)
        (snapshot / f.name).symlink_to(Path("../../blobs") / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snapshot
