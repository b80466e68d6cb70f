"""Fixtures for the train stage's tests: real token data in the tokenize stage's format.

`token_data` is a small stand-in for the tokenize stage's outputs (docs/pipeline.md): a real byte-level
BPE tokenizer trained with `tokenizers` on real stdlib modules, saved so AutoTokenizer loads it, and
those modules encoded into packed uint16 streams with an EOS after each document.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from codex_ml.params import parse_params
from codex_ml.shards import SplitIndex, write_token_split
from tests.conftest import merge

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def write_token_data(docs: dict[str, list[str]], out: Path, vocab_size: int = 384) -> None:
    """docs: split -> texts. Writes out/models/tokenizer and out/data/tokens like the tokenize stage."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(docs["train"], trainer=trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                 unk_token="<unk>")
    hf.save_pretrained(out / "models" / "tokenizer")
    ids = {s: tok.token_to_id(t) for s, t in zip(("pad", "bos", "eos", "unk"), SPECIALS, strict=True)}
    meta: dict[str, Any] = {"dtype": "uint16", "vocab_size": tok.get_vocab_size(), "backend": "hf-bpe",
                            **{f"{k}_id": v for k, v in ids.items()}, "splits": {}}
    tokens_dir = out / "data" / "tokens"
    tokens_dir.mkdir(parents=True)
    for split, texts in docs.items():
        encoded = [[*tok.encode(text).ids, ids["eos"]] for text in texts]
        index = SplitIndex(paths=[f"doc{i}.py" for i in range(len(texts))],
                           bytes=[len(t.encode()) for t in texts], tokens=[len(d) for d in encoded])
        stream = np.asarray([i for d in encoded for i in d], dtype=np.uint16)
        meta["splits"][split] = write_token_split(tokens_dir, split, stream, index)
    (tokens_dir / "meta.json").write_text(json.dumps(meta, indent=2))


@pytest.fixture(scope="session")
def token_data(tmp_path_factory: pytest.TempPathFactory, stdlib_sample: Path) -> Path:
    """A folder holding models/tokenizer and data/tokens made from the stdlib sample (read-only)."""
    files = sorted(stdlib_sample.rglob("*.py"))
    texts = [f.read_text(encoding="utf-8") for f in files]
    docs = {"train": [t for i, t in enumerate(texts) if i % 8], "val": texts[::8], "test": texts[::8]}
    out = tmp_path_factory.mktemp("token_data")
    write_token_data(docs, out)
    return out


# Small, fast settings: llama-micro, a few dozen steps, one thread (identical numerics everywhere).
MICRO: dict[str, Any] = {
    "model": {"name": "llama-micro"},
    "train": {"seq_len": 64, "final_seq_len": 128, "batch_size": 8, "max_steps": 30, "warmup_steps": 5,
              "eval_every": 10, "eval_batches": 2, "checkpoint_every": 10, "lr": 0.003, "threads": 1},
}


@pytest.fixture
def workdir(tmp_path: Path, token_data: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """A stage working folder (cwd) with the token data and a params.yaml of MICRO + overrides."""

    def make(overrides: dict | None = None, name: str = "work") -> Path:
        root = tmp_path / name
        shutil.copytree(token_data, root)
        params = merge(MICRO, overrides or {})
        parse_params(params)  # fail early on a typo in a test
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        monkeypatch.chdir(root)
        return root

    return make
