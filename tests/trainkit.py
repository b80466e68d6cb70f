"""Helpers for the train tests: token data in the tokenize stage's format, small settings, the stage in
process, and what a run leaves (hashes of its folders, its dvclive series)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from transformers import TrainerCallback

from codex_ml.handoffs import TokenMeta
from codex_ml.io import sha256_file
from codex_ml.params import load_params
from codex_ml.shards import SplitIndex, write_token_split
from codex_ml.training.stage import run_training
from tests.conftest import compose

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
FIM = ["<fim_prefix>", "<fim_middle>", "<fim_suffix>"]  # as every tokenizer the tokenize stage trains


def write_token_data(docs: dict[str, list[str]], out: Path, vocab_size: int = 384) -> None:
    """docs: split -> texts. Writes out/models/tokenizer and out/data/tokens like the tokenize stage."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS + FIM,
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
    TokenMeta(**meta).save(tokens_dir)


# Small, fast settings: llama-micro, a few dozen steps, one thread (identical numerics everywhere).
MICRO: dict[str, Any] = {
    "model": {"name": "llama-micro"},
    "train": {"seq_len": 64, "final_seq_len": 128, "batch_size": 8, "max_steps": 30, "warmup_steps": 5,
              "eval_every": 10, "eval_batches": 2, "checkpoint_every": 10, "lr": 0.003, "threads": 1},
}


def train(root: Path, callbacks: tuple[TrainerCallback, ...] = ()) -> dict[str, Any]:
    return run_training(load_params(root / "params.yaml"), callbacks=callbacks)


def folder_hashes(path: Path) -> dict[str, str]:
    return {f.relative_to(path).as_posix(): sha256_file(f) for f in sorted(path.rglob("*")) if f.is_file()}


def series(root: Path, name: str) -> list[tuple[int, float]]:
    with open(root / "metrics/train/plots/metrics" / f"{name}.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    column = name.rsplit("/", 1)[-1]
    return [(int(r["step"]), float(r[column])) for r in rows]


class StopAt(TrainerCallback):
    """Ends training after `step` (its checkpoint is saved first): an interruption, in-process."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step >= self.step:
            control.should_training_stop = True


def compose_checked(tmp_path: Path, overrides: list[str]) -> dict[str, Any]:
    """conf/ composed as `dvc exp run -S ...` composes it (DVC's own function)."""
    out = compose(tmp_path, overrides)
    load_params(out)  # every check a stage makes
    return yaml.safe_load(out.read_text())
