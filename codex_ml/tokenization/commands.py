"""`codex tokenizer ...`: train, check and use a tokenizer folder from a shell (files or stdin/stdout)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast

import typer

from codex_ml import paths
from codex_ml.io import atomic_dir, write_bytes
from codex_ml.params import ParamsError, TokenizerParams
from codex_ml.runtime import StageError, print_error
from codex_ml.tokenization import configure_threads, load_tokenizer, train_tokenizer
from codex_ml.tokenization.validate import PROBES, check_tokenizer

app = typer.Typer(
    help="Train, check and use a codex-ml tokenizer folder (such as models/tokenizer). "
         "Inputs are files or '-' for stdin; output goes to stdout unless --output is given.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

TokenizerDir = Annotated[Path, typer.Option(
    "--tokenizer", "-t",
    help="Tokenizer folder (written by `dvc repro tokenize` or `codex tokenizer train`).")]
Inputs = Annotated[list[str] | None, typer.Argument(
    help="Text files ('-' or nothing: stdin). A .jsonl file gives one document per line (its 'text').",
    show_default=False)]
Output = Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")]
Threads = Annotated[int, typer.Option(help="Encoding threads; 0 = all cores.", min=0)]

DEFAULTS = TokenizerParams()
Trainable = Literal["sentencepiece", "hf-bpe"]  # the backends `codex tokenizer train` trains
DEFAULT_BACKEND = cast(Trainable, DEFAULTS.backend)  # the schema's default, a trained one
F = TypeVar("F", bound=Callable[..., Any])


def one_line_errors(fn: F) -> F:
    """Bad input, params or tokenizer folders end the command with one line on stderr, exit 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (StageError, ParamsError, InputError) as exc:
            print_error("codex tokenizer", exc)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


class InputError(ValueError):
    """An input file that cannot be read as the command needs it."""


def read_inputs(inputs: list[str] | None) -> Iterator[tuple[str, str]]:
    """(name, text) of each input file ('-' or none: stdin), its exact UTF-8 content."""
    for name in inputs or ["-"]:
        if name == "-":
            data = sys.stdin.buffer.read()  # bytes: the text exactly, no newline translation
        else:
            try:
                data = Path(name).read_bytes()
            except FileNotFoundError:
                raise InputError(f"{name}: no such file") from None
            except IsADirectoryError:
                raise InputError(f"{name}: is a folder; give files (e.g. a shell glob)") from None
        try:
            yield ("<stdin>" if name == "-" else name), data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{name}: not UTF-8 text ({exc})") from None


def read_documents(inputs: list[str] | None) -> Iterator[tuple[str, str]]:
    """(name, text) of every document: a whole file, or each line's 'text' of a .jsonl file."""
    for name, text in read_inputs(inputs):
        if not name.endswith(".jsonl"):
            yield name, text
            continue
        for n, line in enumerate(text.splitlines(), 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{name}:{n}: not valid JSON ({exc})") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise InputError(f"{name}:{n}: expected a JSON object with a string 'text'")
            yield f"{name}:{n}", record["text"]


def write_output(output: Path | None, data: bytes) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_bytes(output, data)


@app.command()
@one_line_errors
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Tokenizer folder to write (replaced whole).")],
    inputs: Inputs = None,
    backend: Annotated[Trainable, typer.Option(help="the tokenizer to train")] = DEFAULT_BACKEND,
    vocab_size: Annotated[int, typer.Option(
        help="Tokens in the vocabulary, specials and bytes included.")] = DEFAULTS.vocab_size,
    model_type: Annotated[Literal["bpe", "unigram"], typer.Option(help="sentencepiece's model")] = (
        DEFAULTS.model_type),
    max_sentence_length: Annotated[int, typer.Option(
        help="sentencepiece: longest line learned from, bytes.")] = DEFAULTS.max_sentence_length,
) -> None:
    """Train a tokenizer on text files and save a folder that AutoTokenizer loads.

    The same training as the tokenize stage (which trains on data/prepared/train.jsonl). Each file is
    one document; a .jsonl file gives one document per line. The folder is replaced whole.
    """
    params = TokenizerParams(backend=backend, vocab_size=vocab_size, model_type=model_type,
                             max_sentence_length=max_sentence_length)
    texts = [text for _, text in read_documents(inputs)]
    tok = train_tokenizer(texts, params)
    with atomic_dir(out) as tmp:
        tok.save(tmp)
    typer.echo(f"{out}: {tok.backend} ({params.model_type}), {tok.vocab_size} tokens, trained on "
               f"{len(texts)} document(s)", err=True)


@app.command()
@one_line_errors
def validate(
    inputs: Annotated[list[str] | None, typer.Argument(
        help="Text files to check on (default: built-in probes: tabs, CRLF, Unicode, special-token text).",
        show_default=False)] = None,
    tokenizer: TokenizerDir = paths.TOKENIZER,
    threads: Threads = 0,
) -> None:
    """Check a tokenizer folder on texts: lossless, and AutoTokenizer gives the same ids.

    Loads the folder with its backend and with transformers.AutoTokenizer (same special tokens), then
    checks on each text that decode(encode(text)) == text and that AutoTokenizer's ids equal the
    backend's. Exit 0 when all pass, 1 when any fails (listed), 2 when the folder is unusable.
    """
    n = configure_threads(threads)
    tok = load_tokenizer(tokenizer)
    specials = asdict(tok.special_ids)
    typer.echo(f"{tokenizer}: {tok.backend}, {tok.vocab_size} tokens, special ids "
               + " ".join(f"{k}={v}" for k, v in specials.items()))
    docs = list(read_documents(inputs)) if inputs else [(f"probe {i}", t) for i, t in enumerate(PROBES)]
    names, texts = [d[0] for d in docs], [d[1] for d in docs]
    result = check_tokenizer(tok, tokenizer, texts, names, n)
    typer.echo(f"round trip: {result.round_trip_exact}/{result.documents} exact"
               + (f"; failing: {', '.join(result.round_trip_failures)}"
                  if result.round_trip_failures else ""))
    typer.echo(f"AutoTokenizer: {result.autotokenizer_match}/{result.documents} identical ids"
               + (f"; differing: {', '.join(result.autotokenizer_failures)}"
                  if result.autotokenizer_failures else ""))
    if not result.ok:
        raise typer.Exit(1)
    typer.echo("ok")


@app.command()
@one_line_errors
def encode(
    inputs: Inputs = None,
    tokenizer: TokenizerDir = paths.TOKENIZER,
    output: Output = None,
    format: Annotated[Literal["ids", "json"], typer.Option(
        "--format", "-f", help="ids: space-separated ids, one line per document; "
                               "json: one {name, ids, tokens} object per line.")] = "ids",
    eos: Annotated[bool, typer.Option(help="End each document with EOS, as in the token files.")] = False,
    threads: Threads = 0,
) -> None:
    """Encode text to token ids, exactly as the pipeline's token files hold them.

    One output line per document. Round trip: `codex tokenizer encode f.py | codex tokenizer decode`
    gives f.py back byte for byte.
    """
    n = configure_threads(threads)
    tok = load_tokenizer(tokenizer)
    docs = list(read_documents(inputs))
    lines = []
    for (name, _), ids in zip(docs, tok.encode_batch([t for _, t in docs], n), strict=True):
        if eos:
            ids = [*ids, tok.special_ids.eos]
        if format == "ids":
            lines.append(" ".join(map(str, ids)))
        else:
            record = {"name": name, "ids": ids, "tokens": tok.pieces(ids)}
            lines.append(json.dumps(record, ensure_ascii=False))
    write_output(output, "".join(line + "\n" for line in lines).encode("utf-8"))


@app.command()
@one_line_errors
def decode(
    inputs: Annotated[list[str] | None, typer.Argument(
        help="Files of token ids separated by whitespace (or JSON lists, or `encode --format json` "
             "lines); '-' or nothing: stdin.", show_default=False)] = None,
    tokenizer: TokenizerDir = paths.TOKENIZER,
    output: Output = None,
) -> None:
    """Decode token ids back to text.

    All inputs form one id sequence; the text is written exactly, with no newline added. pad, bos and
    eos decode to nothing.
    """
    tok = load_tokenizer(tokenizer)
    ids: list[int] = []
    for name, text in read_inputs(inputs):
        ids.extend(parse_ids(name, text, tok.vocab_size))
    write_output(output, tok.decode(ids).encode("utf-8"))


def parse_ids(name: str, text: str, vocab_size: int) -> list[int]:
    ids: list[int] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line.startswith(("[", "{")):
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{name}:{n}: not valid JSON ({exc})") from None
            values = value.get("ids") if isinstance(value, dict) else value
            if not isinstance(values, list):
                raise InputError(f"{name}:{n}: expected a JSON list of ids or an object with 'ids'")
        else:
            values = line.split()
        for v in values:
            i: int | None = None
            if isinstance(v, str) and v.lstrip("-").isdigit():
                i = int(v)
            elif isinstance(v, int) and not isinstance(v, bool):
                i = v
            if i is None or not 0 <= i < vocab_size:
                raise InputError(f"{name}:{n}: {v!r} is not a token id (an integer in [0, {vocab_size}))")
            ids.append(i)
    return ids

