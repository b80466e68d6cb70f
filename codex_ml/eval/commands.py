"""`codex eval` and `codex generate` (registered in codex_ml/cli.py).

`codex eval --data` joins two capabilities the way the stages do, through files: data/'s prepare
functions write the corpus's prepared JSONL into a temporary folder (never the pipeline's data/), and
eval reads it with `retokenize`, the model's own tokenizer.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from codex_ml import paths
from codex_ml.eval.options import Device, SamplingParams, Split
from codex_ml.params import ParamsError
from codex_ml.runtime import StageError, print_error, setup_logging

if TYPE_CHECKING:
    from codex_ml.params import DataParams, EvalParams

SAMPLING = SamplingParams()  # `codex generate`'s defaults are SamplingParams'


def _fail(command: str, exc: Exception) -> typer.Exit:
    print_error(f"codex {command}", exc)
    return typer.Exit(2)


def eval_command(
    model: Annotated[Path, typer.Option(help="a Hugging Face model folder: models/model, a checkpoint, ...")],
    split: Annotated[list[Split], typer.Option(
        help="a held-out split; repeat for both [default: test; with --data: every document, as split "
             "'data']")] = [],  # noqa: B006
    data: Annotated[str | None, typer.Option(
        help="score another corpus: a folder of code, a JSONL file (.gz, .zst), a Hugging Face dataset "
             "(a folder of parquet/json/arrow shards, a save_to_disk folder, or hf:owner/name from the "
             "local cache), prepared with the pipeline's filters and redaction (the data section of "
             "--params) and encoded with the model's tokenizer, in a temporary folder")] = None,
    tokens: Annotated[Path, typer.Option(help="token files (meta.json + {split}.bin)")] = paths.TOKENS,
    prepared: Annotated[Path, typer.Option(help="prepared text ({split}.jsonl)")] = paths.PREPARED,
    tokenizer: Annotated[Path, typer.Option(help="tokenizer for a model folder without one")] = (
        paths.TOKENIZER),
    retokenize: Annotated[bool, typer.Option(
        help="encode the prepared text with the model's own tokenizer instead of reading the token files "
             "(a model with another tokenizer)")] = False,
    params: Annotated[Path, typer.Option(
        help="params file whose eval section (and the training context, the default window) apply, "
             "if it exists")] = paths.PARAMS,
    window: Annotated[int | None, typer.Option(
        help="tokens per window (default: train.final_seq_len, else train.seq_len)")] = None,
    stride: Annotated[int | None, typer.Option(help="window step (default: window // 2)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="windows per forward pass")] = None,
    bootstrap: Annotated[int | None, typer.Option(help="bootstrap resamples (0: no intervals)")] = None,
    completion_samples: Annotated[int | None, typer.Option(help="line completions per split")] = None,
    completion_max_tokens: Annotated[int | None, typer.Option(
        help="tokens per completion at most (0: min(64, window // 2))")] = None,
    infill_lines: Annotated[int | None, typer.Option(
        help="single lines masked per split and filled in (eval.infill.line; 0: none)")] = None,
    infill_blocks: Annotated[int | None, typer.Option(
        help="blocks of 2-8 lines masked per split and scored (eval.infill.block; 0: none)")] = None,
    device: Annotated[Device, typer.Option(help="where to run")] = "auto",
    out: Annotated[Path | None, typer.Option(help="write the metrics (eval.json format) here")] = None,
    humaneval: Annotated[bool, typer.Option(
        help="HumanEval pass@1 (and pass@k with --samples) in the sandbox, instead of the splits")] = False,
    samples: Annotated[int | None, typer.Option(help="HumanEval: sampled completions per problem (pass@k)")]
        = None,
    limit: Annotated[int | None, typer.Option(help="HumanEval: the first N problems only (0: all 164)")]
        = None,
    rows: Annotated[Path | None, typer.Option(help="HumanEval: write the per-problem rows (NDJSON) here")]
        = None,
) -> None:
    """Evaluate a model on the val/test split, or on any corpus (--data): bits per byte with the
    compressors beside it, loss, accuracy, line completion; or HumanEval (--humaneval)."""
    from codex_ml.kernels import pin_from_params

    try:
        pin_from_params(params, "eval")  # before torch loads: eval.kernels, as the eval stage pins them
    except StageError as exc:
        raise _fail("eval", exc) from None
    from codex_ml.eval.stage import EvalInputs, run_eval, summary_line, write_messages

    setup_logging()
    splits = [str(s) for s in split]
    try:
        eval_params, seq_len, data_params = eval_settings(
            params, dict(window=window, stride=stride, batch_size=batch_size, bootstrap=bootstrap,
                         completion_samples=completion_samples, completion_max_tokens=completion_max_tokens),
            humaneval, dict(n=samples, limit=limit, rows=rows), dict(line=infill_lines, block=infill_blocks))
        if humaneval and data is not None:
            raise StageError("--data and --humaneval: one at a time")
        inputs = EvalInputs(model_dir=model, tokens_dir=tokens, prepared_dir=prepared,
                            tokenizer_dir=tokenizer, retokenize=retokenize or humaneval)
        splits = [] if humaneval else splits or (["data"] if data is not None else ["test"])
        corpus_line = None
        with tempfile.TemporaryDirectory(prefix="codex-eval-data-") as scratch:  # --data's, else empty
            if data is not None:  # the corpus prepared into `scratch`, read with the model's own tokenizer
                corpus_line = prepare_corpus(data, data_params, Path(scratch), whole=splits == ["data"])
                inputs = EvalInputs(model_dir=model, prepared_dir=Path(scratch), tokenizer_dir=tokenizer,
                                    retokenize=True, train_split=splits != ["data"])
            metrics, results, settings = run_eval(eval_params, inputs, tuple(dict.fromkeys(splits)),
                                                  device=device, train_seq_len=seq_len)
    except (StageError, ParamsError) as exc:
        raise _fail("eval", exc) from None
    print(f"model {model}: {settings['parameters']:,} parameters; window {settings['window']}, "
          f"stride {settings['stride']}, {settings['device']}"
          + (f"; documents from {data or settings['documents_from']}" if splits else ""))
    for line in ([corpus_line] if corpus_line else []) + [summary_line(n, m) for n, m in metrics.items()]:
        print(line)
    write_results(metrics, results, out, rows)
    write_messages(results)


def eval_settings(params_file: Path, options: dict[str, int | None], humaneval: bool,
                  humaneval_options: dict[str, Any], infill_options: dict[str, int | None] | None = None
                  ) -> tuple[EvalParams, int | None, DataParams | None]:
    """The eval section of `params_file` (when it exists; else the defaults) with the options given on
    the command line over it, the training context (the default window) and the data section."""
    from codex_ml.params import EvalParams, load_params

    eval_params, seq_len, data_params = EvalParams(), None, None
    if params_file.is_file():
        loaded = load_params(params_file)
        eval_params, seq_len, data_params = loaded.eval, loaded.train.context, loaded.data
    # an option overrides eval.<the same name>
    eval_params = eval_params.replace(**{k: v for k, v in options.items() if v is not None})
    if infill := {k: v for k, v in (infill_options or {}).items() if v is not None}:
        eval_params = eval_params.replace(infill=eval_params.infill.replace(**infill))
    given = {k: v for k, v in humaneval_options.items() if v is not None}
    if humaneval:
        given.pop("rows", None)
        eval_params = eval_params.replace(humaneval=eval_params.humaneval.replace(enabled=True, **given))
    elif given:
        raise StageError("--samples, --limit and --rows apply to --humaneval")
    return eval_params, seq_len, data_params


def write_results(metrics: dict[str, Any], results: list[Any], out: Path | None, rows: Path | None) -> None:
    """--out: the metrics; --rows: HumanEval's per-problem rows."""
    from codex_ml.eval.stage import ndjson
    from codex_ml.io import atomic_open, write_json

    if out is not None:
        write_json(out, metrics)
    if rows is not None:
        with atomic_open(rows, "w") as f:
            f.write(ndjson(next(r.rows for r in results if r.name == "humaneval")))


def prepare_corpus(data: str, params: DataParams | None, folder: Path, whole: bool) -> str:
    """`--data` prepared into `folder` by the prepare stage's own functions: every document as one split
    `data` (`whole`), or the corpus's own train/val/test split. Returns a line saying what was kept."""
    from codex_ml.data.hf_source import is_dataset_folder
    from codex_ml.data.stage import prepare, prepare_all
    from codex_ml.hub import looks_like_hub_id
    from codex_ml.params import DataParams

    name = data.removeprefix("hf:")
    path = Path(name).expanduser()
    if data.startswith("hf:") or (path.is_dir() and is_dataset_folder(path)):
        source = "hf"
    elif path.is_dir():
        source = "dir"
    elif path.is_file():
        source = "jsonl"
    elif looks_like_hub_id(name, "dataset"):
        source = "hf"  # resolved from the local HF cache only; not there: one error saying so
    else:
        raise StageError(f"--data: {data} not found (expected a folder of code, a JSONL file, a dataset "
                         "folder or a hub dataset id in the local HF cache)")
    where = str(path) if path.exists() else name
    data_params = (params or DataParams()).replace(source=source, path=where)
    if whole:
        m = prepare_all(data_params, folder, "data")
    else:
        m = prepare(data_params, folder, folder / "prepare.json")
    kept: dict[str, Any] = {k: v for k, v in m["rejected"].items() if v}
    redacted = {k: v for k, v in m["redactions"].items() if v}
    scope = ("every document scored as one split, 'data' (no train split: no unigram baseline)" if whole
             else f"its own split by path hash: {m['documents']} documents")
    return (f"corpus {data} ({source}): {sum(m['documents'].values())} documents, "
            f"{sum(m['bytes'].values()):,} bytes after filters; rejected {kept or 'none'}, duplicates "
            f"{m['duplicates']}, redactions {redacted or 'none'}; {scope}")


def generate_command(
    prompt: Annotated[str, typer.Argument(help="text to continue (with --suffix: the text before the gap)")],
    model: Annotated[Path, typer.Option(help="a Hugging Face model folder")] = paths.MODEL,
    suffix: Annotated[str | None, typer.Option(
        help="the text after the gap: the model fills in the middle (its tokenizer needs FIM sentinels)")]
        = None,
    suffix_file: Annotated[Path | None, typer.Option(help="--suffix read from this file (UTF-8)")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(
        help="tokens to generate at most [default: 128, or half the model's context if that is shorter]")]
        = SAMPLING.max_new_tokens,
    temperature: Annotated[float, typer.Option(help="sampling temperature; 0 = greedy")] = (
        SAMPLING.temperature),
    top_k: Annotated[int, typer.Option(help="sample from the k most likely tokens; 0 = all")] = (
        SAMPLING.top_k),
    top_p: Annotated[float, typer.Option(help="nucleus: smallest set with this probability; 1 = all")]
        = SAMPLING.top_p,
    seed: Annotated[int, typer.Option(help="the same seed gives the same text")] = SAMPLING.seed,
    tokenizer: Annotated[Path, typer.Option(help="tokenizer for a model folder without one")] = (
        paths.TOKENIZER),
    device: Annotated[Device, typer.Option(help="where to run")] = "auto",
) -> None:
    """Continue PROMPT with a model, streaming the text as it is generated; with --suffix, fill in the
    middle between PROMPT and the suffix (printed after it)."""
    from codex_ml.eval.generate import generate

    setup_logging()
    sampling = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                              top_p=top_p, seed=seed)
    try:
        sampling.check()
        suffix = read_suffix(suffix, suffix_file)
        from codex_ml.eval.model import check_model_dir

        check_model_dir(model)  # before the prompt is echoed: a missing model is one clear error
        if suffix is not None:  # and a model that cannot fill in the middle
            from codex_ml.eval.generate import fim_sentinels
            from codex_ml.eval.model import load_tokenizer

            fim_sentinels(model, load_tokenizer(model, tokenizer))
        sys.stdout.write(prompt)
        sys.stdout.flush()
        generate(model, prompt, sampling, tokenizer_dir=tokenizer, device=device, stream=sys.stdout,
                 suffix=suffix)
    except StageError as exc:
        raise _fail("generate", exc) from None
    sys.stdout.write((suffix or "") + "\n")


def read_suffix(suffix: str | None, suffix_file: Path | None) -> str | None:
    """--suffix, or --suffix-file's text (one of them at most)."""
    if suffix_file is None:
        return suffix
    if suffix is not None:
        raise StageError("--suffix and --suffix-file: one at a time")
    try:
        return suffix_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StageError(f"--suffix-file: cannot read {suffix_file} as UTF-8 text ({exc})") from None
