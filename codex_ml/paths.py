"""The pipeline's layout: every file and folder a stage reads or writes, relative to the repository
root, and the names of the splits. Stage scripts, the stages' defaults and the `codex` commands take
their paths from here; dvc.yaml names the same paths (a test holds the two equal)."""

from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "val", "test")
HELD_OUT = SPLITS[1:]  # the splits a model is scored on: val and test

PARAMS = Path("params.yaml")
LOCK = Path("dvc.lock")

# prepare
PREPARED = Path("data/prepared")  # {split}-NNNNN.jsonl shards (codex_ml/shards.py)
DECONTAMINATED = PREPARED / "decontaminated.ndjson"  # every document decontamination removed
PREPARED_CARD = PREPARED / "README.md"  # the dataset card (codex_ml/cards/dataset.py)
PREPARE_METRICS = Path("metrics/prepare.json")

# tokenize
TOKENIZER = Path("models/tokenizer")
TOKENS = Path("data/tokens")  # token shards, indexes and meta.json (codex_ml/handoffs.py)
TOKENIZE_METRICS = Path("metrics/tokenize.json")

# train
TRAINED = Path("models/trained")  # the model train shipped, which eval scores
CHECKPOINTS = Path("models/checkpoints")
TRAIN_LIVE = Path("metrics/train")  # dvclive's folder: metrics.json and plots/
TRAIN_METRICS = TRAIN_LIVE / "metrics.json"
TRAIN_PLOTS = TRAIN_LIVE / "plots" / "metrics"

# eval
EVAL_METRICS = Path("metrics/eval.json")
EVAL_ROWS = Path("metrics/eval")  # per-document rows, line completions, settings.json

# release
MODEL = Path("models/model")  # the trained model's files and its model card: what users take
MODEL_CARD = MODEL / "README.md"

# report
REPORTS = Path("reports")  # report.md, report.html, figures/
REPORT_PAGE = REPORTS / "report.html"
