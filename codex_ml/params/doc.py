"""docs/params.md from the schema: every key with its type, default, allowed values and meaning, the
rules between keys that the validators enforce, and what each profile of conf/ changes.

`python -m codex_ml.params.doc > docs/params.md` (`make params-doc`); a test fails while the file
differs from what this prints, so the page cannot drift from the code. The profiles are composed from
conf/ by Hydra, as `dvc exp run -S <group>=<option>` composes them; tests/test_params.py holds RULES to
the validators (each is enforced, and every key a validator names has one).
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from codex_ml.params import Params
from codex_ml.params.section import Hint, constraints, expected_of, has_bounds

HEADER = """# Params

Every key of `params.yaml`, generated from the schema in `codex_ml/params/` (`make params-doc`; a test
fails while this page is stale). `params.yaml` is composed from `conf/` (Hydra groups); change a value
for one run with `dvc exp run` and `-S <key>=<value>`, or pick a profile with `-S train=quick`,
`-S model=llama-small`, `-S data=dir`. Types are strict: `1.5` is not an integer, `"1"` is not a number,
booleans are `true` or `false`. Bad values stop the first stage before any work, with one line per
problem naming its key: every problem of the file in one run.
"""


# The checks between keys (model and field validators), as a reader needs them: key -> the rule.
RULES = {
    "data.path": "required when data.source is dir, jsonl or hf",
    "data.revision": "only with data.source hf",
    "data.include": "at least one glob",
    "data.val_fraction + data.test_fraction": "a sum < 1: train keeps the rest",
    "data.decontaminate": "each benchmark once",
    "data.held_out.near_dup_threshold": "a number in (0, 1], or null (off)",
    "data.slurm.partition": "required when data.executor is slurm",
    "data.slurm.time": "a Slurm time limit such as 04:00:00",
    "tokenizer.backend": "pretrained needs model.pretrained",
    "tokenizer.vocab_size": "an integer in [261, 4294967296] for hf-bpe, [262, 4294967296] for sentencepiece "
                            "(the special and byte tokens come first); pretrained: the model's own",
    "tokenizer.model_type": "unigram only with backend sentencepiece",
    "model.name": "a registry name, unless model.pretrained is set",
    "model.revision": "only with model.pretrained (a hub id)",
    "model.lora.target_modules": "at least one module name",
    "model.lora.qlora": "needs model.lora.enabled and model.pretrained",
    "train.final_seq_len": "0, or a multiple > 1 of train.seq_len",
    "train.batch_size": "a multiple of train.final_seq_len / train.seq_len, and of the torchrun processes",
    "train.warmup_steps": "< train.max_steps",
    "train.eval_every": "<= train.max_steps",
    "train.fsdp_cpu_offload": "needs train.parallel: fsdp",
    "train.parallel": "fsdp does not train LoRA adapters (model.lora.enabled)",
    "eval.window": "0 (the model's context) or an integer >= 2; for a registry model at most its context "
                   "(train.final_seq_len, else train.seq_len)",
    "eval.stride": "< the eval window",
    "eval.completion_max_tokens": "< the eval window",
    "report.baseline_rev": "a git revision (commit, tag, branch) or null",
    "release.license": "an SPDX expression of ids on the SPDX list (or LicenseRef-*), or null",
}

CONF = Path(__file__).resolve().parents[2] / "conf"


def type_name(annotation: Any) -> str:
    """The YAML author's name of a key's type."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return "mapping"
    if annotation is type(None):
        return "null"
    return {int: "integer", float: "number", bool: "boolean", str: "string"}.get(annotation, str(annotation))


def rows(model: type[BaseModel], prefix: str) -> list[tuple[str, list[str]]]:
    """(section, table rows) for `model` and every section nested in it, depth first."""
    own: list[str] = []
    nested: list[tuple[str, list[str]]] = []
    for name, info in model.model_fields.items():
        dotted = f"{prefix}.{name}" if prefix else name
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested.extend(rows(annotation, dotted))
            continue
        default = info.get_default(call_default_factory=True)
        allowed = expected_of(info) if has_bounds(info) else ""
        if not allowed and (hints := [m.text for m in constraints(info)[1] if isinstance(m, Hint)]):
            allowed = hints[0]
        own.append(f"| `{dotted}` | {type_name(annotation)} | `{json.dumps(default)}` | {allowed} | "
                   f"{info.description or ''} |")
    return ([(prefix, own)] if own else []) + nested


def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            out.update(flat(value, dotted))
        else:
            out[dotted] = value
    return out


def profiles(conf: Path = CONF) -> str:
    """Per option of each conf/ group, the keys it sets that the default composition does not."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    if not (conf / "config.yaml").is_file():
        raise SystemExit(f"{conf}: no config.yaml (the profiles are composed from the repository's conf/)")
    lines = ["## Profiles", "", "What `-S <group>=<option>` sets that the default does not, as `dvc exp run` "
             "composes conf/ (the rules above say what a profile still needs from you, such as "
             "`data.path` or `model.pretrained`).", "", "| profile | sets |", "| --- | --- |"]
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        def composed(overrides: list[str]) -> dict[str, Any]:
            cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=False)
            assert isinstance(cfg, dict)
            return flat({str(k): v for k, v in cfg.items()})

        base = composed([])
        config = yaml.safe_load((conf / "config.yaml").read_text())
        chosen = {k: v for d in config["defaults"] if isinstance(d, dict) for k, v in d.items()}
        for group in sorted(p.name for p in conf.iterdir() if p.is_dir()):
            for option in sorted(p.stem for p in (conf / group).glob("*.yaml")):
                if option == chosen.get(group):
                    lines.append(f"| `{group}={option}` | the default |")
                    continue
                other = composed([f"{group}={option}"])
                sets = [f"`{k}: {json.dumps(other[k])}`" for k in sorted(other) if other[k] != base.get(k)]
                lines.append(f"| `{group}={option}` | {', '.join(sets) or 'nothing'} |")
    return "\n".join(lines) + "\n"


def rules() -> str:
    lines = ["## Rules between keys", "", "Checked with the types and ranges above, before any stage "
             "works: a value that breaks one stops the run with one line naming the key.", "",
             "| key | rule |", "| --- | --- |"]
    lines += [f"| `{key}` | {text} |" for key, text in RULES.items()]
    return "\n".join(lines) + "\n"


def markdown() -> str:
    parts = [HEADER]
    for section, table in rows(Params, ""):
        doc = (Params.model_fields[section.split(".")[0]].description or "") if "." not in section else ""
        title = f"## `{section}`" + (f" ({doc})" if doc else "")
        head = "| key | type | default | allowed | meaning |\n| --- | --- | --- | --- | --- |"
        parts.append(f"{title}\n\n{head}\n" + "\n".join(table) + "\n")
    parts += [rules(), profiles()]
    return "\n".join(parts)


if __name__ == "__main__":
    print(markdown(), end="")
