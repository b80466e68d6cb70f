"""A pretrained base model: where its folder is, and content hashes that identify it.

`model.pretrained` names a local Hugging Face folder, or a hub id (`org/name`, with `model.revision`)
that must already be in the local Hugging Face cache: nothing is downloaded at run time, so a run is
reproducible offline and never changes because the hub did. tokenize, train and eval all resolve the
same name here, and record two hashes:

- `tokenizer_sha256`: the tokenizer files (tokenizer.json, vocab, merges, config, ...). data/tokens/
  meta.json records it; train refuses token files whose hash is not the base model's.
- `folder_sha256`: every file of the folder. A changed base model changes meta.json, so train, eval
  and `dvc status` see new data even when the folder lives outside the repository, where DVC cannot
  track it.

A small shared utility (like io.py), so that tokenization/, training/ and eval/ agree on one name
and one hash without importing each other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from codex_ml.handoffs import BaseRecord
from codex_ml.hub import NotCached, cached_snapshot, looks_like_hub_id
from codex_ml.io import sha256_file
from codex_ml.params import ModelParams, ParamsError

# Files that define a tokenizer (any of them may be absent). Everything else in the folder is the model.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "merges.txt", "vocab.txt", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model", "chat_template.jinja", "chat_template.json")


@dataclass(frozen=True)
class PretrainedBase:
    """A resolved `model.pretrained`: the name as given, the revision, and the local folder."""

    name: str
    revision: str | None
    folder: Path

    def record(self) -> BaseRecord:
        """What meta.json and models/model record about the base (a hub snapshot's path is
        machine-specific, so the name and revision are what identify it)."""
        return BaseRecord(pretrained=self.name, revision=self.revision,
                          tokenizer_sha256=tokenizer_sha256(self.folder), sha256=folder_sha256(self.folder))


def base_of(model: ModelParams) -> PretrainedBase | None:
    """The resolved `model.pretrained` (and `model.revision`), or None for a from-scratch model."""
    if not model.pretrained:
        return None
    return resolve(model.pretrained, model.revision)


def resolve(name: str, revision: str | None = None) -> PretrainedBase:
    """The local folder of `name`: a folder path as is, or a hub id from the local HF cache only."""
    path = Path(name).expanduser()
    if path.is_dir():
        if revision is not None:
            raise ParamsError(f"model.revision: applies to a hub id only; model.pretrained {name} is a "
                              f"local folder (set model.revision: null)")
        folder = path
    elif path.exists():
        raise ParamsError(f"model.pretrained: {name} is a file; expected a Hugging Face model folder")
    elif looks_like_hub_id(name):
        try:
            folder, _ = cached_snapshot(name, revision)
        except NotCached as exc:
            at = f" (model.revision {revision})" if revision else ""
            raise ParamsError(f"model.pretrained: {name}{at} {exc}, or set model.pretrained to a model "
                              "folder") from None
    else:
        raise ParamsError(f"model.pretrained: {name} is not a folder (nor a hub id such as org/name)")
    if not (folder / "config.json").is_file():
        raise ParamsError(f"model.pretrained: {folder} is not a Hugging Face model folder (no config.json)")
    return PretrainedBase(name=name, revision=revision, folder=folder)


def tokenizer_sha256(folder: Path) -> str:
    """sha256 over the names and contents of the folder's tokenizer files (TOKENIZER_FILES)."""
    h = hashlib.sha256()
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            h.update(f"{name}\0{sha256_file(folder / name)}\0".encode())
    return h.hexdigest()


def folder_sha256(folder: Path) -> str:
    """sha256 over every file of the folder (relative names and contents; links followed)."""
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(folder).parts):
            h.update(f"{f.relative_to(folder).as_posix()}\0{sha256_file(f)}\0".encode())
    return h.hexdigest()
