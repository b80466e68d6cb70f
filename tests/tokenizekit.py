"""Helpers for the tokenize tests: real stdlib text, prepared-format files, small tokenizer params."""

from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path

from codex_ml import shards
from codex_ml.params import TokenizerParams
from codex_ml.paths import SPLITS

# Real stdlib modules that are NOT in conftest's sample, so tokenizers trained on the sample meet
# unseen text: special-token text ("<s>", "</s>", "<unk>" in conv.py, test_re.py, _zoneinfo.py) and
# characters outside the vocabulary (test_codecs.py). lib2to3/ and test/ are missing on some distros.
HELD_OUT = ["argparse.py", "zoneinfo/_zoneinfo.py", "lib2to3/pgen2/conv.py", "test/test_re.py",
            "test/test_codecs.py"]

# (backend, model_type) pairs: every encoder the project ships.
KINDS = [("sentencepiece", "bpe"), ("sentencepiece", "unigram"), ("hf-bpe", "bpe")]
KIND_IDS = ["sentencepiece-bpe", "sentencepiece-unigram", "hf-bpe"]

SMALL_VOCAB = 600  # small enough to train in about a second on the ~1 MB sample


def small_params(backend: str, model_type: str = "bpe", vocab_size: int = SMALL_VOCAB) -> TokenizerParams:
    return TokenizerParams(backend=backend, model_type=model_type, vocab_size=vocab_size)


def sample_documents(root: Path) -> list[tuple[str, str]]:
    """(relative path, text) of every module in a stdlib sample folder, sorted by path."""
    return [(p.relative_to(root).as_posix(), p.read_text(encoding="utf-8"))
            for p in sorted(root.rglob("*.py"))]


def held_out_documents() -> list[tuple[str, str]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs = [(rel, (stdlib / rel).read_text(encoding="utf-8")) for rel in HELD_OUT if (stdlib / rel).is_file()]
    assert len(docs) >= 2, "argparse.py and zoneinfo/_zoneinfo.py are in every CPython stdlib"
    return docs


def write_prepared(folder: Path, splits: dict[str, list[tuple[str, str]]]) -> Path:
    """data/prepared's shards in the prepare stage's format (docs/pipeline.md)."""
    for split in SPLITS:
        shards.write_prepared(folder, split, ({"path": path, "text": text,
                                               "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
                                              for path, text in sorted(splits.get(split, []))))
    return folder


def split_sample(docs: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """A fixed three-way split of the sample: every 8th document to val, the next to test."""
    return {"train": [d for i, d in enumerate(docs) if i % 8 not in (0, 1)],
            "val": [d for i, d in enumerate(docs) if i % 8 == 0],
            "test": [d for i, d in enumerate(docs) if i % 8 == 1]}


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path: for byte-identical comparisons."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}
