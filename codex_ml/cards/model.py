"""The model card of a trained model (`README.md` beside its weights), built with huggingface_hub's
ModelCard and ModelCardData from the stages' own metrics: metrics/eval.json's scores (as the Hub's
`model-index`, each with its 95% interval), train's steps, tokens and time, tokenize's tokenizer,
prepare's licenses; never a number the stages did not write.

Its license is `release.license` when set; otherwise the training documents' license when they all have
the same one; otherwise `other`, with a sentence saying why. A LoRA run names its base model and the
adapter folder. The same inputs give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from codex_ml.cards.dataset import SPLITS, Provenance, describe, licenses_of
from codex_ml.cards.words import UNKNOWN, count, license_fields

# (key in a split of metrics/eval.json, metric type, what it is); each has its `_ci` beside it.
SCORES = (("bits_per_byte", "bits_per_byte", "bits per byte"),
          ("accuracy", "accuracy", "next-token accuracy"),
          ("completion_exact_match", "exact_match", "line completion exact match"))
BASELINES = (("xz_bpb", "xz -9e"), ("gzip_bpb", "gzip -9"), ("unigram_bpb", "unigram model of train"),
             ("base_model_bpb", "the base model, untuned"))
TRAIN_PARAMS = ("optimizer", "lr", "muon_lr", "batch_size", "grad_accum", "seq_len", "final_seq_len",
                "max_steps", "warmup_steps", "weight_decay", "ema_decay", "dtype", "seed")


@dataclass(frozen=True)
class ModelInputs:
    """What the card is built from: the stages' metrics files, parsed, and the params that made them."""

    eval: dict[str, Any]  # metrics/eval.json
    train: dict[str, Any]  # metrics/train/metrics.json
    tokenize: dict[str, Any]  # metrics/tokenize.json
    prepare: dict[str, Any]  # metrics/prepare.json
    settings: dict[str, Any]  # metrics/eval/settings.json
    params: dict[str, Any]  # params.yaml's `model`, `train` and `tokenizer` sections
    provenance: Provenance  # data_hash: DVC's md5 of data/prepared, from dvc.lock
    dataset_card: str = "../../data/prepared/README.md"  # the dataset card, relative to the model folder
    base_model_id: str | None = None  # the Hub id of model.pretrained, when it names one
    license: str | None = None  # release.license
    name: str = "codex-ml model"
    extra: dict[str, Any] = field(default_factory=dict)


def ci_args(block: dict[str, Any], key: str) -> dict[str, Any] | None:
    ci = block.get(f"{key}_ci")
    return {"ci_95": [float(ci[0]), float(ci[1])]} if isinstance(ci, list | tuple) and len(ci) == 2 else None


def eval_results(inputs: ModelInputs) -> list[EvalResult]:
    """metrics/eval.json as the Hub's eval results: per split the scores with their intervals and the
    baselines on the same bytes; HumanEval and infilling when they ran."""
    corpus, _ = describe(inputs.prepare.get("source", {}))
    found = []
    for split in (s for s in SPLITS if isinstance(inputs.eval.get(s), dict)):
        block = inputs.eval[split]
        common: dict[str, Any] = {"task_type": "text-generation", "dataset_type": "codex-ml-prepared",
                  "dataset_name": corpus, "dataset_split": split,
                  "dataset_revision": inputs.provenance.data_hash}
        for key, metric, words in SCORES:
            if isinstance(block.get(key), int | float):
                found.append(EvalResult(**common, metric_type=metric, metric_name=words,
                                        metric_value=float(block[key]), metric_args=ci_args(block, key)))
        for key, words in BASELINES:
            value = block.get("baselines", {}).get(key)
            if isinstance(value, int | float):
                found.append(EvalResult(**common, metric_type=f"bits_per_byte_{key.removesuffix('_bpb')}",
                                        metric_name=f"bits per byte of {words} (baseline)",
                                        metric_value=float(value)))
    found += humaneval_results(inputs.eval.get("humaneval"))
    infilling = inputs.eval.get("infilling")
    if isinstance(infilling, dict):
        for key, value in sorted(infilling.items()):
            if isinstance(value, int | float) and not isinstance(value, bool):
                found.append(EvalResult(task_type="text-generation", dataset_type="codex-ml-prepared",
                                        dataset_name=corpus, dataset_split="test",
                                        metric_type=f"infilling_{key}",
                                        metric_value=float(value), metric_args=ci_args(infilling, key)))
    return found


def humaneval_results(block: Any) -> list[EvalResult]:
    if not isinstance(block, dict):
        return []
    common: dict[str, Any] = {"task_type": "text-generation", "dataset_type": "openai_humaneval",
              "dataset_name": "HumanEval",
              "dataset_split": "test"}
    results = [EvalResult(**common, metric_type="pass@1", metric_name="greedy pass@1",
                          metric_value=float(block["pass@1"]), metric_args=ci_args(block, "pass@1"))]
    sampled = block.get("sampled")
    if isinstance(sampled, dict):
        for key in sorted(k for k in sampled if k.startswith("pass@") and not k.endswith("_ci")):
            results.append(EvalResult(**common, metric_type=key,
                                      metric_name=f"sampled {key} (n={sampled['n']})",
                                      metric_value=float(sampled[key]), metric_args=ci_args(sampled, key)))
    return results


def model_license(inputs: ModelInputs) -> tuple[dict[str, Any], str]:
    """The card's license fields and the sentence that says where they came from."""
    if inputs.license:
        return license_fields([inputs.license]), f"{inputs.license}, as release.license sets it."
    licenses = licenses_of(inputs.prepare)
    if len(licenses) == 1 and UNKNOWN not in licenses:
        (only,) = licenses
        return license_fields([only]), (f"{only}: every training document is under it (the dataset card's "
                                        "licenses table). Set release.license to state another.")
    why = (f"the training documents carry {count(len(licenses), 'license')} (the dataset card's licenses "
           "table)" if licenses else "no license was recorded for the training documents")
    return {"license": "other"}, (f"other: {why}, so none is derived for the model. Whether and how the "
                                  "model may be shared depends on them; set release.license once decided.")


def card_data(inputs: ModelInputs) -> ModelCardData:
    model, lora = inputs.params.get("model", {}), inputs.params.get("model", {}).get("lora", {})
    fields, _ = model_license(inputs)
    tags = ["code", "codex-ml", *(["lora", "peft"] if lora.get("enabled") else [])]
    return ModelCardData(
        model_name=inputs.name, **fields, language=["code"], library_name="transformers",
        pipeline_tag="text-generation", tags=tags, base_model=inputs.base_model_id,
        eval_results=eval_results(inputs) or None,
        codex_ml={"architecture": inputs.settings.get("architecture"), "registry_name": model.get("name"),
                  "parameters": inputs.train.get("model", {}).get("parameters"),
                  "base_model": base_name(inputs), "lora": bool(lora.get("enabled")),
                  "dataset_card": inputs.dataset_card, "data_dvc_md5": inputs.provenance.data_hash,
                  **({"commit": inputs.provenance.commit, "dirty": inputs.provenance.dirty}
                     if inputs.provenance.commit else {})},
    )


def model_card(inputs: ModelInputs) -> ModelCard:
    """The card, YAML header and body, from `inputs`."""
    data = card_data(inputs)
    _, license_note = model_license(inputs)
    body = [f"# {inputs.name}", "", *summary(inputs), *data_section(inputs), *training_section(inputs),
            *eval_section(data), "## License", "", license_note, "", *use_section(inputs),
            *reproduce_section(inputs)]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body).rstrip() + "\n")


def base_name(inputs: ModelInputs) -> str | None:
    """model.pretrained as given (a Hub id, a folder of the repository), but a folder given by its
    absolute path by its name only: where it is on this machine is no part of the model."""
    pretrained = inputs.params.get("model", {}).get("pretrained")
    if not pretrained:
        return None
    path = PurePath(str(pretrained))
    return path.name if path.is_absolute() else str(pretrained)


def summary(inputs: ModelInputs) -> list[str]:
    model, train = inputs.params.get("model", {}), inputs.train
    params = train.get("model", {}).get("parameters") or inputs.settings.get("parameters")
    arch = inputs.settings.get("architecture", "a causal language model")
    if model.get("pretrained"):
        how = f"fine-tuned from {base_name(inputs)}"
        if model.get("lora", {}).get("enabled"):
            how += (f" with LoRA (r {model['lora'].get('r')}); the adapter is in `adapter/`, the folder "
                    "holds the base with the adapter merged")
    else:
        how = f"trained from scratch (codex-ml registry model {model.get('name')})"
    trainable = train.get("model", {}).get("trainable_parameters")
    sizes = f"{params:,} parameters" if isinstance(params, int) else "parameters not recorded"
    if isinstance(trainable, int) and trainable != params:
        sizes += f", {trainable:,} of them trained"
    return [f"A {arch} of {sizes}, {how}, on source code by codex-ml's pipeline. `AutoModelForCausalLM` "
            "and `AutoTokenizer` load this folder.", ""]


def data_section(inputs: ModelInputs) -> list[str]:
    p, tok = inputs.prepare, inputs.tokenize
    corpus, _ = describe(p.get("source", {}))
    rows = [f"| {s} | {p['documents'][s]:,} | {p['bytes'][s]:,} | {tok.get('tokens', {}).get(s, 0):,} |"
            for s in SPLITS]
    tokenizer = inputs.params.get("tokenizer", {})
    return ["## Training data", "",
            f"Source code from {corpus}: its [dataset card]({inputs.dataset_card}) tells what was kept "
            f"and why, and its licenses. {data_hash(inputs)}", "",
            "| split | documents | bytes | tokens |", "|---|---|---|---|", *rows, "",
            f"Tokenizer: {tok.get('backend', tokenizer.get('backend', '?'))} "
            f"({tokenizer.get('vocab_size', '?')} tokens), "
            f"{tok.get('bytes_per_token', {}).get('train', '?')} bytes per token on train.", ""]


def data_hash(inputs: ModelInputs) -> str:
    if inputs.provenance.data_hash:
        return f"DVC's md5 of the data: `{inputs.provenance.data_hash}`."
    return "DVC's md5 of the data is the one dvc.lock records for data/prepared."


def training_section(inputs: ModelInputs) -> list[str]:
    t = inputs.train.get("train", {})
    train_params = inputs.params.get("train", {})
    settings = ", ".join(f"{k} {train_params[k]}" for k in TRAIN_PARAMS if k in train_params)
    cpus = inputs.train.get("system", {}).get("cpu", {}).get("count")
    hardware = f"{inputs.settings.get('device', '?')}, {int(cpus) if cpus else '?'} CPU cores"
    return ["## Training", "", f"Params: {settings}.", "",
            f"{t.get('steps', '?')} steps, {t.get('tokens_seen', 0):,} tokens seen "
            f"({t.get('passes', 0):.2f} passes over train), {t.get('wall_time_s', 0):.0f} s on {hardware} "
            f"in {t.get('processes', 1)} process(es), {t.get('tokens_per_s', 0):,.0f} tokens/s. Shipped: "
            f"step {t.get('shipped_step', '?')} ({t.get('shipped', 'the last step')}).", ""]


def eval_section(data: ModelCardData) -> list[str]:
    rows = []
    for r in data.eval_results or []:
        ci = (r.metric_args or {}).get("ci_95")
        interval = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
        where = r.dataset_split if r.dataset_type == "codex-ml-prepared" else r.dataset_name
        rows.append(f"| {where} | {r.metric_name or r.metric_type} | "
                    f"{r.metric_value:.4f} | {interval} |")
    if not rows:
        return ["## Evaluation", "", "The eval stage wrote no scores for this model.", ""]
    return ["## Evaluation", "", "From metrics/eval.json: each document scored alone, 95% bootstrap "
            "intervals over documents (problems for HumanEval); the baselines compress the same bytes.", "",
            "| split | metric | value | 95% interval |", "|---|---|---|---|", *rows, ""]


def use_section(inputs: ModelInputs) -> list[str]:
    return ["## Intended use and limitations", "",
            "For research and for completing code like its training data: a small model trained on one "
            "corpus, it completes the idioms of that corpus and little else. It is not instruction-tuned, "
            "has no safety training, and can repeat its training documents verbatim, with their licenses' "
            "terms; what it writes is untested code. Held-out scores are on documents of the same corpus "
            "(split by path hash, near-copies kept in one split), not on other code.", ""]


def reproduce_section(inputs: ModelInputs) -> list[str]:
    """The params (a base model folder by its name); the commit when the caller gives one. A card
    written inside the stage's own output leaves it out (the folder would change with every commit,
    its inputs unchanged): the commit is the one whose dvc.lock records this folder."""
    if inputs.provenance.commit:
        dirty = ", with uncommitted changes" if inputs.provenance.dirty else ""
        code = f"Code at commit `{inputs.provenance.commit}`{dirty}"
    else:
        code = "Code at the commit whose dvc.lock records this folder"
    params = dict(inputs.params)
    if params.get("model", {}).get("pretrained"):
        params["model"] = {**params["model"], "pretrained": base_name(inputs)}
    return ["## Reproduce", "", f"{code}; `dvc repro` with these params:", "",
            "```yaml", *yaml.safe_dump(params, sort_keys=True).splitlines(), "```", ""]
