"""The release stage's work: the model train made and eval scored, published as `models/model` with
its model card (`README.md`) beside the weights.

The card holds eval's numbers, which exist only after eval has scored the model, and a DVC output
belongs to one stage: so train writes `models/trained`, eval scores it, and release assembles
`models/model` from its files (hard links, or copies across file systems) and the card, in one
atomic swap. `codex eval`, `codex generate` and a user read `models/model`.

The card names no commit (the folder would change with every commit, its inputs unchanged): the
commit is the one whose dvc.lock records the folder. The data's hash is DVC's own, read from the
prepare stage's entry in dvc.lock.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from codex_ml import paths
from codex_ml.cards.dataset import Provenance
from codex_ml.cards.model import ModelInputs, model_card
from codex_ml.handoffs import ModelRecord
from codex_ml.io import atomic_dir, write_text
from codex_ml.runtime import StageError

CARD_PARAMS = ("model", "train", "tokenizer")  # the params sections the card shows
# where the dataset card is, from inside the model folder
DATASET_CARD = os.path.relpath(paths.PREPARED_CARD, paths.MODEL)


def read_json(path: Path, stage: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageError(f"{path}: missing; run the {stage} stage first (`dvc repro {stage}`)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise StageError(f"{path}: cannot read it ({exc}); run `dvc repro -f {stage}`") from None
    if not isinstance(data, dict):
        raise StageError(f"{path}: expected a JSON object; run `dvc repro -f {stage}`")
    return data


def locked_md5(lock: Path, stage: str, out: Path) -> str | None:
    """DVC's md5 of `out` as dvc.lock records it for `stage`; None when dvc.lock does not (yet)."""
    try:
        entry = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {}).get(stage, {})
    except (OSError, yaml.YAMLError):
        return None
    for item in entry.get("outs", []) if isinstance(entry, dict) else []:
        if isinstance(item, dict) and Path(str(item.get("path"))) == out:
            md5 = item.get("md5")
            return str(md5) if md5 else None
    return None


def base_model_id(model_dir: Path) -> str | None:
    """The Hub id of the base a tuned model came from (its codex_model.json), when that names one and
    not a folder of this machine."""
    record = ModelRecord.load(model_dir)
    if record is None:
        return None
    name = record.base_model.pretrained
    return None if Path(name).is_absolute() or Path(name).exists() else name


def model_inputs(root: Path, trained: Path, license: str | None = None) -> ModelInputs:
    """The card's inputs from the pipeline's files under `root` (its layout: codex_ml/paths.py)."""
    raw = yaml.safe_load((root / paths.PARAMS).read_text(encoding="utf-8")) or {}
    return ModelInputs(
        eval=read_json(root / paths.EVAL_METRICS, "eval"),
        train=read_json(root / paths.TRAIN_METRICS, "train"),
        tokenize=read_json(root / paths.TOKENIZE_METRICS, "tokenize"),
        prepare=read_json(root / paths.PREPARE_METRICS, "prepare"),
        settings=read_json(root / paths.EVAL_ROWS / "settings.json", "eval"),
        params={k: raw.get(k, {}) for k in CARD_PARAMS},
        provenance=Provenance(None, False, {}, locked_md5(root / paths.LOCK, "prepare", paths.PREPARED)),
        dataset_card=DATASET_CARD,
        base_model_id=base_model_id(trained),
        license=license,
    )


def link_tree(src: Path, dst: Path) -> None:
    """Every file of `src` at the same place under `dst`: a hard link, or a copy where links fail
    (another file system)."""
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def release(root: Path, trained: Path, out: Path, license: str | None = None) -> ModelInputs:
    """`out`: the files of `trained` and the model card (its license `license`, release.license, when
    given), swapped in whole."""
    if not (trained / "config.json").is_file():
        raise StageError(f"{trained}: no trained model; run the train stage first (`dvc repro train`)")
    inputs = model_inputs(root, trained, license)
    card = model_card(inputs)
    with atomic_dir(out) as tmp:
        link_tree(trained, tmp)
        write_text(tmp / paths.MODEL_CARD.name, str(card))
    return inputs
