"""The dataset card and the model card (codex_ml/cards/): built from real outputs (prepare run on a small
corpus, the committed run's metrics), loaded back with huggingface_hub's own loaders and with
`datasets`, their numbers held to the metrics they came from, the same bytes on a rebuild."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from huggingface_hub import DatasetCard, ModelCard

from codex_ml.cards.dataset import SPLITS, Provenance, dataset_card
from codex_ml.cards.model import ModelInputs, model_card
from codex_ml.data.licenses import DETECTOR
from codex_ml.data.stage import NOT_IN_CARD, prepare
from codex_ml.params import DataParams

REPO = Path(__file__).resolve().parent.parent
TEXTS = Path(__file__).parent / "data" / "licenses"


def corpus(root: Path) -> Path:
    """Forty small modules under MIT and BSD-3-Clause, one under an Apache-2.0 header, a duplicate and
    an empty file (dropped), and an email address to redact."""
    for folder, license_name in (("mit", "MIT"), ("bsd", "BSD-3-Clause")):
        (root / folder).mkdir(parents=True)
        text = (TEXTS / license_name).read_text(encoding="utf-8")
        (root / folder / "LICENSE").write_text(text, encoding="utf-8")
        for i in range(20):
            (root / folder / f"m{i}.py").write_text(f"def {folder}_{i}(x):\n    return x * {i}\n" * 3,
                                                    encoding="utf-8")
    (root / "mit" / "apache.py").write_text("# SPDX-License-Identifier: Apache-2.0\nA = 'a@example.com'\n",
                                            encoding="utf-8")
    (root / "bsd" / "copy.py").write_bytes((root / "bsd" / "m3.py").read_bytes())
    (root / "bsd" / "empty.py").write_text("\n", encoding="utf-8")
    return root


def prepared(tmp_path: Path) -> tuple[Path, dict[str, Any], Provenance]:
    """prepare on the corpus: its folder (with the card the stage wrote) and its metrics."""
    root = corpus(tmp_path / "corpus")
    params = DataParams(source="dir", path=str(root), decontaminate=[], workers=1)
    out = tmp_path / "prepared"
    metrics = prepare(params, out, tmp_path / "prepare.json")
    shown = params.model_dump(mode="json", exclude=set(NOT_IN_CARD))
    provenance = Provenance("0123abcd", False, {"data": shown})
    return out, metrics, provenance


def test_dataset_card_round_trips_and_holds_prepares_numbers(tmp_path: Path) -> None:
    out, metrics, provenance = prepared(tmp_path)
    # the stage's own card: no commit (see below), the same bytes as the card built again
    staged = dataset_card(out, metrics, Provenance(None, False, provenance.params))
    assert (out / "README.md").read_text(encoding="utf-8") == str(staged)
    card = dataset_card(out, metrics, provenance)
    card.save(out / "README.md")

    loaded = DatasetCard.load(out / "README.md")
    assert loaded.data.to_dict() == card.data.to_dict()
    meta = loaded.data.to_dict()
    assert meta["codex_ml"]["licenses"] == metrics["licenses"] == {"BSD-3-Clause": 20, "MIT": 20,
                                                                   "Apache-2.0": 1}
    assert meta["codex_ml"]["license_detector"] == DETECTOR
    assert meta["license"] == "other"  # three licenses: no one id for the whole dataset
    assert meta["size_categories"] == ["n<1K"]
    splits = {s["name"]: s for s in meta["dataset_info"]["splits"]}
    for split in SPLITS:
        assert splits[split]["num_examples"] == metrics["documents"][split]
        assert splits[split]["num_bytes"] == metrics["bytes"][split]
    text = loaded.text
    assert "- dropped 1 exact duplicate" in text and "- dropped 1 document: empty or whitespace only" in text
    assert "- redacted 1 email addresses" in text
    assert "| BSD-3-Clause | 20 |" in text and "`0123abcd`" in text
    # written by the stage into its own output, the card names no commit (it would change the folder
    # with every commit): the commit is the one whose dvc.lock records the folder
    assert "Code at the commit whose dvc.lock records this folder" in staged.text
    assert str(out.parent) not in staged.text  # no machine path: the corpus by its folder's name


def test_the_prepared_folder_loads_with_datasets_by_its_card(tmp_path: Path) -> None:
    """The card's `configs` and `dataset_info` are what `datasets` reads: the folder loads as three
    splits with the documents prepare counted."""
    import datasets

    out, metrics, _ = prepared(tmp_path)
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert {s: loaded[s].num_rows for s in loaded} == metrics["documents"]
    first = json.loads((out / "train-00000.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert loaded["train"][0] == first


def committed_run(**changes: Any) -> ModelInputs:
    """The committed default run's own metrics and params (metrics/, params.yaml)."""
    def read(rel: str) -> dict[str, Any]:
        return json.loads((REPO / rel).read_text(encoding="utf-8"))

    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    fields: dict[str, Any] = {
        "eval": read("metrics/eval.json"), "train": read("metrics/train/metrics.json"),
        "tokenize": read("metrics/tokenize.json"), "prepare": read("metrics/prepare.json"),
        "settings": read("metrics/eval/settings.json"),
        "params": {k: params[k] for k in ("model", "train", "tokenizer")},
        "provenance": Provenance("0123abcd", False, {}, "4b825dc642cb6eb9a060e54bf8d69288.dir")}
    return ModelInputs(**(fields | changes))


def test_model_card_eval_numbers_are_metrics_eval_json(tmp_path: Path) -> None:
    inputs = committed_run()
    model_card(inputs).save(tmp_path / "README.md")
    assert str(model_card(committed_run())) == (tmp_path / "README.md").read_text(encoding="utf-8")
    loaded = ModelCard.load(tmp_path / "README.md")
    results = {(r.dataset_split, r.metric_type): r for r in loaded.data.eval_results}
    for split in ("val", "test"):
        ev = inputs.eval[split]
        bpb = results[(split, "bits_per_byte")]
        assert bpb.metric_value == ev["bits_per_byte"]
        assert bpb.metric_args == {"ci_95": ev["bits_per_byte_ci"]}
        assert bpb.dataset_revision == "4b825dc642cb6eb9a060e54bf8d69288.dir"
        assert results[(split, "accuracy")].metric_value == ev["accuracy"]
        for key in ("xz", "gzip", "unigram"):
            assert results[(split, f"bits_per_byte_{key}")].metric_value == ev["baselines"][f"{key}_bpb"]
    assert len(results) == len(loaded.data.eval_results)  # one result per (split, metric)
    assert loaded.data.to_dict()["codex_ml"]["parameters"] == inputs.train["model"]["parameters"]
    assert f"{inputs.train['train']['tokens_seen']:,} tokens seen" in loaded.text


def test_model_card_humaneval_when_it_ran(tmp_path: Path) -> None:
    inputs = committed_run()
    he = {"pass@1": 0.0183, "pass@1_ci": [0.0, 0.0427], "problems": 164, "passed": 3,
          "sampled": {"n": 10, "pass@1": 0.02, "pass@1_ci": [0.01, 0.03], "pass@10": 0.06,
                      "pass@10_ci": [0.03, 0.09]}}
    model_card(committed_run(eval=inputs.eval | {"humaneval": he})).save(tmp_path / "README.md")
    results = [r for r in ModelCard.load(tmp_path / "README.md").data.eval_results
               if r.dataset_name == "HumanEval"]
    assert [(r.metric_type, r.metric_value, r.metric_args) for r in results] == [
        ("pass@1", 0.0183, {"ci_95": [0.0, 0.0427]}), ("pass@1", 0.02, {"ci_95": [0.01, 0.03]}),
        ("pass@10", 0.06, {"ci_95": [0.03, 0.09]})]


@pytest.mark.parametrize(("licenses", "explicit", "expected"), [
    ({"MIT": 40}, None, {"license": "mit"}),
    ({"GPL-3.0-only": 40}, None, {"license": "gpl-3.0"}),
    ({"Python-2.0.1 AND 0BSD": 1660, "MIT": 9}, None, {"license": "other"}),
    ({"MIT": 3, "unknown": 1}, None, {"license": "other"}),
    ({"MIT": 40, "GPL-3.0-only": 2}, "Apache-2.0", {"license": "apache-2.0"}),
    ({"Python-2.0.1": 40}, None, {"license": "other", "license_name": "python-2.0.1",
                                  "license_link": "https://spdx.org/licenses/Python-2.0.1.html"}),
])
def test_model_license(licenses: dict[str, int], explicit: str | None, expected: dict[str, str]) -> None:
    """release.license when set; else the data's one license; else `other`, with a sentence saying why."""
    inputs = committed_run(license=explicit)
    card = model_card(committed_run(prepare=inputs.prepare | {"licenses": licenses}, license=explicit))
    meta = ModelCard(str(card)).data.to_dict()
    assert {k: meta[k] for k in ("license", "license_name", "license_link") if k in meta} == expected
    if expected["license"] == "other" and not explicit:
        assert "none is derived for the model" in card.text or "every training document" in card.text


def test_lora_card_names_base_and_adapter() -> None:
    inputs = committed_run()
    model = inputs.params["model"] | {"pretrained": "base-models/gpt2-small",
                                      "lora": inputs.params["model"]["lora"] | {"enabled": True}}
    card = model_card(committed_run(params=inputs.params | {"model": model},
                                    base_model_id="openai-community/gpt2"))
    meta = ModelCard(str(card)).data.to_dict()
    assert meta["base_model"] == "openai-community/gpt2"
    assert {"lora", "peft"} <= set(meta["tags"])
    assert meta["codex_ml"]["base_model"] == "base-models/gpt2-small"
    assert "fine-tuned from base-models/gpt2-small with LoRA" in card.text and "`adapter/`" in card.text


def test_release_license_is_one_spdx_expression_or_one_error_naming_the_key() -> None:
    from codex_ml.params import ParamsError, parse_params

    assert parse_params({"release": {"license": "apache-2.0 or mit"}}).release.license == "Apache-2.0 OR MIT"
    assert parse_params({}).release.license is None
    for bad in ("Apache 2", "MIT AND", "Foo-1.0"):
        with pytest.raises(ParamsError, match=r"release\.license: expected an SPDX license expression"):
            parse_params({"release": {"license": bad}})
