"""`codex eval` and `codex generate` (registered in codex_ml/cli.py).

`codex eval --data` joins two capabilities the way the stages do, through files: data/'s prepare
functions write the corpus's prepared JSONL into a temporary folder (never the pipeline's data/), and
eval reads it with `retokenize`, the model's own tokenizer.
"""

from __future__ import annotations

import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from codex_ml.params import ParamsError
from codex_ml.runtime import StageError, setup_logging

if TYPE_CHECKING:
    from codex_ml.params import DataParams


def _fail(command: str, exc: Exception) -> typer.Exit:
    print(f"codex {command}: error: {exc}", file=sys.stderr)
    return typer.Exit(2)


def eval_command(
    model: Annotated[Path, typer.Option(help="a Hugging Face model folder: models/model, a checkpoint, ...")],
    split: Annotated[list[str], typer.Option(
        help="val or test; repeat for both [default: test; with --data: every document, as split 'data']")]
        = [],  # noqa: B006
    data: Annotated[str | None, typer.Option(
        help="score another corpus: a folder of code, a JSONL file (.gz, .zst), a Hugging Face dataset "
             "(a folder of parquet/json/arrow shards, a save_to_disk folder, or hf:owner/name from the "
             "local cache), prepared with the pipeline's filters and redaction (the data section of "
             "--params) and encoded with the model's tokenizer, in a temporary folder")] = None,
    tokens: Annotated[Path, typer.Option(help="token files (meta.json + {split}.bin)")] = Path("data/tokens"),
    prepared: Annotated[Path, typer.Option(help="prepared text ({split}.jsonl)")] = Path("data/prepared"),
    tokenizer: Annotated[Path, typer.Option(help="tokenizer for a model folder without one")] = Path(
        "models/tokenizer"),
    retokenize: Annotated[bool, typer.Option(
        help="encode the prepared text with the model's own tokenizer instead of reading the token files "
             "(a model with another tokenizer)")] = False,
    params: Annotated[Path, typer.Option(
        help="params file whose eval section (and the training context, the default window) apply, "
             "if it exists")]
        = Path("params.yaml"),
    window: Annotated[int | None, typer.Option(
        help="tokens per window (default: train.final_seq_len, else train.seq_len)")] = None,
    stride: Annotated[int | None, typer.Option(help="window step (default: window // 2)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="windows per forward pass")] = None,
    bootstrap: Annotated[int | None, typer.Option(help="bootstrap resamples (0: no intervals)")] = None,
    completion_samples: Annotated[int | None, typer.Option(help="line completions per split")] = None,
    completion_max_tokens: Annotated[int | None, typer.Option(
        help="tokens per completion at most (0: min(64, window // 2))")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
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
    from codex_ml.eval.data import SPLITS
    from codex_ml.eval.evaluate import EvalInputs, run_eval, summary_line, write_messages
    from codex_ml.io import write_json
    from codex_ml.params import EvalParams, load_params

    setup_logging()
    try:
        for s in split:
            if s not in SPLITS:
                raise StageError(f"--split: expected one of {', '.join(SPLITS)}, got {s!r}")
        if device not in ("auto", "cpu", "cuda"):
            raise StageError(f"--device: expected auto, cpu or cuda, got {device!r}")
        eval_params, seq_len, data_params = EvalParams(), None, None
        if params.is_file():
            loaded = load_params(params)
            eval_params, seq_len, data_params = loaded.eval, loaded.train.context, loaded.data
        overrides = {k: v for k, v in dict(window=window, stride=stride, batch_size=batch_size,
                                            bootstrap=bootstrap, completion_samples=completion_samples,
                                            completion_max_tokens=completion_max_tokens).items()
                     if v is not None}
        eval_params = eval_params.replace(**overrides)  # an option overrides eval.<the same name>
        if humaneval:
            he = {k: v for k, v in dict(n=samples, limit=limit).items() if v is not None}
            eval_params = eval_params.replace(humaneval=eval_params.humaneval.replace(enabled=True, **he))
            split = []
        elif samples is not None or limit is not None or rows is not None:
            raise StageError("--samples, --limit and --rows apply to --humaneval")
        inputs = EvalInputs(model_dir=model, tokens_dir=tokens, prepared_dir=prepared,
                            tokenizer_dir=tokenizer, retokenize=retokenize or humaneval)
        corpus_line = None
        with ExitStack() as stack:
            if data is not None:
                if humaneval:
                    raise StageError("--data and --humaneval: one at a time")
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="codex-eval-data-")))
                corpus_line = prepare_corpus(data, data_params, folder, whole=not split)
                inputs = EvalInputs(model_dir=model, prepared_dir=folder, tokenizer_dir=tokenizer,
                                    retokenize=True, train_split=bool(split))
                split = split or ["data"]
            elif not split and not humaneval:
                split = ["test"]
            metrics, results, settings = run_eval(eval_params, inputs, tuple(dict.fromkeys(split)),
                                                  device=device, train_seq_len=seq_len)
    except (StageError, ParamsError) as exc:
        raise _fail("eval", exc) from None
    print(f"model {model}: {settings['parameters']:,} parameters; window {settings['window']}, "
          f"stride {settings['stride']}, {settings['device']}"
          + (f"; documents from {data or settings['documents_from']}" if split else ""))
    if corpus_line:
        print(corpus_line)
    for name, m in metrics.items():
        print(summary_line(name, m))
    if out is not None:
        write_json(out, metrics)
    write_messages(results)
    if rows is not None:
        from codex_ml.eval.evaluate import ndjson
        from codex_ml.io import atomic_open

        with atomic_open(rows, "w") as f:
            f.write(ndjson(next(r.rows for r in results if r.name == "humaneval")))


def prepare_corpus(data: str, params: DataParams | None, folder: Path, whole: bool) -> str:
    """`--data` prepared into `folder` by the prepare stage's own functions: every document as one split
    `data` (`whole`), or the corpus's own train/val/test split. Returns a line saying what was kept."""
    from codex_ml.data.hf_source import is_dataset_folder
    from codex_ml.data.prepare import prepare, prepare_all
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
    prompt: Annotated[str, typer.Argument(help="text to continue")],
    model: Annotated[Path, typer.Option(help="a Hugging Face model folder")] = Path("models/model"),
    max_new_tokens: Annotated[int | None, typer.Option(
        help="tokens to generate at most [default: 128, or half the model's context if that is shorter]")]
        = None,
    temperature: Annotated[float, typer.Option(help="sampling temperature; 0 = greedy")] = 0.8,
    top_k: Annotated[int, typer.Option(help="sample from the k most likely tokens; 0 = all")] = 50,
    top_p: Annotated[float, typer.Option(help="nucleus: smallest set with this probability; 1 = all")]
        = 0.95,
    seed: Annotated[int, typer.Option(help="the same seed gives the same text")] = 1337,
    tokenizer: Annotated[Path, typer.Option(help="tokenizer for a model folder without one")] = Path(
        "models/tokenizer"),
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
) -> None:
    """Continue PROMPT with a model, streaming the text as it is generated."""
    from codex_ml.eval.generate import SamplingParams, generate

    setup_logging()
    sampling = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                              top_p=top_p, seed=seed)
    try:
        if device not in ("auto", "cpu", "cuda"):
            raise StageError(f"--device: expected auto, cpu or cuda, got {device!r}")
        sampling.check()
        from codex_ml.eval.model import check_model_dir

        check_model_dir(model)  # before the prompt is echoed: a missing model is one clear error
        sys.stdout.write(prompt)
        sys.stdout.flush()
        generate(model, prompt, sampling, tokenizer_dir=tokenizer, device=device, stream=sys.stdout)
    except StageError as exc:
        raise _fail("generate", exc) from None
    sys.stdout.write("\n")
