"""The `codex` command: the library from a shell.

Each capability registers its commands below; the work itself lives in the capability's package.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="codex",
    help="codex-ml from a shell: tokenizers, evaluation and generation with the pipeline's models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """codex-ml: train, evaluate and sample small language models on your own corpus."""


# --- codex tokenizer ... (codex_ml.tokenization) --------------------------------------------

from codex_ml.tokenization.commands import app as tokenizer_app  # noqa: E402  (kept in this block)

app.add_typer(tokenizer_app, name="tokenizer")

# --- codex eval / codex generate (codex_ml.eval) ---------------------------------------------

from codex_ml.eval.commands import eval_command, generate_command  # noqa: E402  (kept in this block)

app.command("eval")(eval_command)
app.command("generate")(generate_command)

# --- codex compare (codex_ml.compare) -------------------------------------------------------

from codex_ml.compare.command import compare_command  # noqa: E402  (kept in this block)

app.command("compare")(compare_command)

# --- codex summary (codex_ml.report) -----------------------------------------------------------


@app.command("summary")
def summary_command(
    elapsed: float | None = typer.Option(None, help="seconds the run took, to print beside the numbers"),
) -> None:
    """The last run in brief: bits per byte beside the compressors, training, the report's path."""
    from codex_ml.report.inputs import Paths
    from codex_ml.report.summary import summary_lines
    from codex_ml.runtime import StageError, print_error

    try:
        lines = summary_lines(Paths(), elapsed)
    except StageError as exc:
        print_error("codex summary", exc)
        raise typer.Exit(2) from None
    print("\n".join(lines))


if __name__ == "__main__":
    app()
