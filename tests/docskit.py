"""The machinery of the docs tests (tests/test_docs*.py): README.md and docs/*.md as a tested contract,
every shell command they show run, as written, in a fresh copy of the repository, in the order shown.

How the documents are read: every fenced code block says what it is. ```sh blocks are commands a
user types; anything else (```text diagrams and listings, ```json layouts) is not run. A ```sh block
runs as one bash script (`set -euo pipefail`, so a failing command fails the test and the output says
which), from the repository root, with the venv's commands on PATH as after
`source .venv/bin/activate`. Blocks run in document order in one copy, so later commands see what
earlier ones made (`dvc exp show` after `dvc exp run`, `dvc pull` after `dvc push`). Three copies,
run side by side on the cores: README.md (tests/test_docs.py), README.md's sections on a user's own
corpus and model (OWN_COPY_SECTIONS, tests/test_docs_readme_own.py), docs/*.md by name
(tests/test_docs_guides.py). Those sections and each guide therefore start from a fresh clone, as their
reader may.

What the test changes, and why (each is listed below, and a test fails when one goes stale). The
commands themselves are never edited: smaller data and fewer steps go in through the copy's params.
- The quick profile is the copy's default. Its conf/ composes `model=llama-micro` and `train=quick` by
  default, a 512-token vocabulary, a 50-resample bootstrap, 4 line completions, and the stdlib source
  limited to a dozen modules, so each `dvc exp run` takes seconds. README.md's copy trains its
  `make repro` for the default's 1,200 steps (REPRO_TRAIN, tiny windows), so the checkpoints a
  default run keeps are there for its `codex eval` on one.
- PLACEHOLDERS: what a user fills in, written `<like-this>` (`<your-repo>`, `<exp>`), becomes a real
  path or name the test makes (a folder of real code with a .gitignore, a JSONL corpus, an
  experiment's name). Any other `<...>` in a command fails the test.
- Skipped: a command whose comment says it needs GPUs, machines, a cluster, a bucket or a network
  (NEEDS), and a whole block when its first command says so; and `make test` (SELF), which runs this
  test.
- AFTER: checks added after a command, where exit status 0 alone would not show it did its job, and
  harness steps (waiting for the queue that `dvc queue start` leaves running in the background).

The copy is the working tree (tracked and untracked-but-not-ignored files: what a fresh clone of the
committed tree holds), with `.venv` linked to this venv instead of reinstalled (an install takes
minutes and the network): the Makefile's install stamp is named by the content of pyproject.toml and
requirements.lock, so `make` in the copy sees this venv as installed and installs nothing.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from dvc.utils.hydra import compose_and_dump

from tests.conftest import ROOT, SAMPLE_MODULES, VENV_BIN, run, subprocess_env
from tests.pretrainedkit import make_pretrained

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# The stdlib modules of the copy's default corpus (a subset of tests/conftest.py's sample).
QUICK_MODULES = SAMPLE_MODULES[:14]

# A command is not run when its comment says what it needs that this machine lacks: "# needs 8 GPUs",
# "# needs 2 machines ...", "# needs an S3 bucket ...". A block whose first command says so is skipped
# whole (the rest of it needs the same).
NEEDS = re.compile(r"#\s*needs\b.*\b(GPUs?|machines?|cluster|bucket|network)\b", re.IGNORECASE)
# The suite itself, which runs this test (CI runs it as .ci/run).
SELF = "make test"

# Placeholder -> what the test puts there ({corpus}, {jsonl}, ... are filled in per run).
PLACEHOLDERS = {
    "<your-repo>": "{corpus}",
    "<corpus.jsonl>": "{jsonl}",  # gzipped: the jsonl source decompresses by extension
    "<parquet-folder>": "{parquet}",
    "<model-folder>": "{pretrained}",
    "<source.py>": "src.py",
    "<exp>": '"$(dvc exp list --name-only | head -n 1)"',
    "<git-remote>": "{git_remote}",  # a bare repository: the team's git server
    "<storage>": "{storage}",  # a folder: the team's DVC remote
}
PLACEHOLDER = re.compile(r"<[a-z][a-z0-9.-]*>")

# README.md's `make repro` trains for the default's steps (so the checkpoints a default run keeps exist),
# on the smallest windows: its copy's params.yaml only (`dvc exp run` recomposes conf/: quick again).
REPRO_TRAIN = {"max_steps": 1200, "batch_size": 2, "seq_len": 64, "final_seq_len": 128,
               "warmup_steps": 5, "eval_every": 1200, "eval_batches": 1, "checkpoint_every": 100}

# `dvc queue start` returns at once, its workers run in the background: wait until none is queued or
# running (up to 5 minutes), then fail if one failed.
WAIT_FOR_QUEUE = ("for _ in $(seq 300); do grep -qE 'Queued|Running' <<< \"$(dvc queue status)\" || break; "
                  "sleep 1; done; ! grep -E 'Queued|Running|Failed' <<< \"$(dvc queue status)\"")

QUEUED_BOTH = ("dvc exp show --json | python -c 'import json, sys; lrs = sorted(r[\"data\"][\"params\"]"
               "[\"params.yaml\"][\"data\"][\"train\"][\"lr\"] for b in json.load(sys.stdin) "
               "for e in b.get(\"experiments\") or [] for r in e[\"revs\"] "
               "if \"metrics/eval.json\" in r[\"data\"][\"metrics\"]); "
               "assert {0.0005, 0.005} <= set(lrs), lrs'")

# Bash run after a command (matched by its first line): checks of what it did, and harness steps.
AFTER = {
    "dvc exp run -S model=pretrained -S model.pretrained=<model-folder>":
        "grep -q '\"base_model_bpb\": [0-9]' metrics/eval.json",
    "make repro": ('test -s reports/report.html && summary="$(codex summary)" && '
                   'test "$(wc -l <<< "$summary")" -le 15 && grep -q "bits per byte" <<< "$summary"'),
    "codex tokenizer decode ids.txt > same.py": "cmp src.py same.py",
    "codex eval --model models/checkpoints/checkpoint-1200 --split val --out ckpt.json":
        "grep -q '\"bits_per_byte\": [0-9]' ckpt.json",
    "dvc queue start -j 2": WAIT_FOR_QUEUE,
    # both queued experiments ran to the end, each with its own params
    "dvc exp show --md": QUEUED_BOTH,
    "cd .. && git clone <git-remote> teammate && cd teammate && dvc pull":
        "dvc status | grep -q 'up to date' && ! dvc repro | grep -q 'Running stage'",
    # the teammate has the pushed experiment, and applying it brings its outputs from the remote
    "dvc exp apply <exp>": "dvc status | grep -q 'up to date' && git status --short | grep -q params.yaml",
}


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    commands: tuple[str, ...]  # one entry per command; continuation lines stay joined with "\\\n"
    section: str  # the nearest markdown heading above it ("" before the first)

    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def code_blocks(doc: Path) -> Iterator[Block]:
    lines = doc.read_text(encoding="utf-8").splitlines()
    i, section = 0, ""
    while i < len(lines):
        m = re.match(r"^(\s*)```(\S*)\s*$", lines[i])
        if not m:
            if lines[i].startswith("#"):
                section = lines[i].strip()
            i += 1
            continue
        indent, lang, start = m.group(1), m.group(2), i + 1
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        commands: list[str] = []
        for text in body:
            if commands and commands[-1].endswith("\\"):
                commands[-1] += "\n" + text
            elif text.strip() and not text.lstrip().startswith("#"):
                commands.append(text)
        yield Block(doc, start, lang, tuple(commands), section)


def first_line(command: str) -> str:
    return command.split("\n", 1)[0]


def all_blocks() -> list[Block]:
    return [b for doc in DOCS for b in code_blocks(doc)]


def uncommented(line: str) -> str:
    """The command without a trailing `# comment` (outside quotes), for matching SELF and AFTER."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def script_of(block: Block, values: dict[str, str], ran: set[str]) -> str:
    """The block as a bash script. A command already run, to the letter, by an earlier block (docs/
    repeat the README's examples) is not run again: it works as written because it already did."""
    out = ["set -euo pipefail", f"echo '### {block.where()}'"]
    for command in block.commands:
        key = uncommented(first_line(command))
        if key == SELF or NEEDS.search(command):
            out.append(f"echo {_quote(f'skipped: {key} ({needs(command) or SELF})')}")
            continue
        text = command
        for placeholder, value in PLACEHOLDERS.items():
            text = text.replace(placeholder, value.format(**values))
        if uncommented(text) in ran and "exp run" in text:
            out.append(f"echo {_quote(f'ran already (above, or by README.md test): {key}')}")
            continue
        ran.add(uncommented(text))
        out.append(f'echo "[$(date +%T)]" {_quote("$ " + text)}')
        out.append(text)
        check = AFTER.get(key)
        if check:
            out.append(check)
    return "\n".join(out) + "\n"


def needs(command: str) -> str:
    """What a command says it needs (its NEEDS comment), or ""."""
    m = NEEDS.search(command)
    return m.group(0).lstrip("# ") if m else ""


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


# --- Every documented command, in order, in a fresh copy -------------------------------------------------


def fresh_copy(dst: Path) -> None:
    """The working tree as a fresh clone would have it, committed on `main`."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def quick_defaults(repo: Path) -> None:
    """The quick profile as the copy's default (see the module docstring)."""
    config = yaml.safe_load((repo / "conf/config.yaml").read_text())
    config["defaults"] = [{"model": "llama-micro"} if d == {"model": "qwen3-mini"} else
                          {"train": "quick"} if d == {"train": "default"} else d
                          for d in config["defaults"]]
    assert {"model": "llama-micro"} in config["defaults"] and {"train": "quick"} in config["defaults"]
    config["tokenizer"]["vocab_size"] = 512
    config["eval"].update(bootstrap=50, completion_samples=4)
    config["eval"]["infill"].update(line=4, block=2)
    (repo / "conf/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    data = yaml.safe_load((repo / "conf/data/stdlib.yaml").read_text())
    # The user's repository (user_inputs) keeps its code under src/: `codex eval --data` reads it with
    # these include patterns, as it would the user's own.
    data.update(include=[*QUICK_MODULES, "src/**/*.py"], val_fraction=0.2, test_fraction=0.2)
    (repo / "conf/data/stdlib.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    # The user's corpora here are 16-20 files: the profiles' floors for val and test (10 documents
    # each, with train keeping half) would refuse them, rightly, and their 2% would hold out none;
    # the commands are what is tested.
    for profile in ("dir", "jsonl", "hf"):
        text = (repo / f"conf/data/{profile}.yaml").read_text()
        conf = yaml.safe_load(text)
        conf["data"].update(held_out={"min_documents": 0, "min_bytes": 0}, val_fraction=0.2,
                            test_fraction=0.2)
        header = "".join(line + "\n" for line in text.splitlines() if line.startswith("# @package"))
        (repo / f"conf/data/{profile}.yaml").write_text(header + yaml.safe_dump(conf, sort_keys=False))
    compose_and_dump(repo / "params.yaml", str(repo / "conf"), None, "config", str(repo), [])


def user_inputs(tmp_path: Path, repo: Path) -> dict[str, str]:
    """What a user would bring: their repository (real code, with a .gitignore and a file it ignores),
    a gzipped JSONL corpus, a folder of parquet shards, a source file to tokenize, a pretrained model
    folder with its own tokenizer (a tiny random-init GPT-2 saved with save_pretrained: no hub here),
    and a team's git server (a bare repository) and DVC remote (a folder) to share runs through."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    corpus = tmp_path / "your-repo"
    for rel in SAMPLE_MODULES[14:30]:
        (corpus / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stdlib / rel, corpus / "src" / rel)
    (corpus / "build").mkdir()
    shutil.copyfile(stdlib / "ast.py", corpus / "build" / "generated_copy.py")
    (corpus / ".gitignore").write_text("build/\n")
    jsonl = tmp_path / "corpus.jsonl.gz"
    with gzip.open(jsonl, "wt", encoding="utf-8") as f:
        for rel in SAMPLE_MODULES[:20]:
            f.write(json.dumps({"path": rel, "text": (stdlib / rel).read_text(encoding="utf-8")}) + "\n")
    parquet = tmp_path / "parquet-shards"  # as datasets ship: numbered parquet shards
    parquet.mkdir()
    for i, rels in enumerate((SAMPLE_MODULES[20:30], SAMPLE_MODULES[30:40])):
        pq.write_table(pa.table({"path": list(rels), "text": [(stdlib / r).read_text(encoding="utf-8")
                                                              for r in rels]}),
                       parquet / f"train-{i:05d}-of-00002.parquet")
    shutil.copyfile(stdlib / "textwrap.py", repo / "src.py")
    texts = [(stdlib / rel).read_text(encoding="utf-8") for rel in QUICK_MODULES]
    pretrained = make_pretrained("gpt2", texts, tmp_path / "gpt2-model")
    git_remote = tmp_path / "team.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(git_remote)], tmp_path)
    return {"corpus": str(corpus), "jsonl": str(jsonl), "parquet": str(parquet),
            "pretrained": str(pretrained), "git_remote": str(git_remote),
            "storage": str(tmp_path / "storage")}


def run_documents(tmp_path: Path, blocks: list[Block], run_elsewhere: tuple[Path, ...] = (),
                  repro_train: dict | None = None) -> None:
    """Every ```sh block of `blocks`, in order, in one fresh copy (the module docstring says how). An
    `exp run` that a document of `run_elsewhere` shows to the letter is not run again here: that
    document's test runs it."""
    repo = tmp_path / "codex-ml"  # `git clone` names the folder after the repository
    fresh_copy(repo)
    (repo / ".venv").symlink_to(VENV_BIN.parent)
    quick_defaults(repo)
    if repro_train:
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["train"].update(repro_train)
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "fresh clone, quick profile as the default"], repo)
    values = user_inputs(tmp_path, repo)

    env = subprocess_env(VIRTUAL_ENV=str(repo / ".venv"))  # as after `source .venv/bin/activate`
    ran: set[str] = set()
    for block in (b for doc in run_elsewhere for b in code_blocks(doc) if b.lang == "sh"):
        script_of(block, values, ran)  # only to know its commands
    for block in blocks:
        if block.lang != "sh" or not block.commands:
            continue
        if NEEDS.search(block.commands[0]):
            continue
        # Before every block: `make` in the copy must find this venv installed, or it would reinstall
        # the project into it from the copy (pyproject.toml changed since `make install` ran here).
        installed = subprocess.run(["make", "-q", "install"], cwd=repo, env=subprocess_env())
        assert installed.returncode == 0, (
            f"{VENV_BIN.parent} lacks the Makefile's install stamp for this pyproject.toml and "
            "requirements.lock: run `make install` first (the test will not reinstall into this venv)")
        script = script_of(block, values, ran)
        proc = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=900)
        assert proc.returncode == 0, (f"a command from {block.where()} failed (exit {proc.returncode})\n"
                                      f"--- script\n{script}\n--- stdout\n{proc.stdout[-6000:]}"
                                      f"\n--- stderr\n{proc.stderr[-6000:]}")


README = ROOT / "README.md"

# README.md's sections that start from a fresh clone of their own, as their reader may (a user's own
# corpus or model needs nothing the sections before made): tests/test_docs_readme_own.py runs them,
# so that README.md's commands, in two copies, and docs/*.md's, in a third, share the cores.
OWN_COPY_SECTIONS = ("## Your own corpus", "## Fine-tune a pretrained model")


def readme_blocks(own_copy: bool) -> list[Block]:
    return [b for b in code_blocks(README) if (b.section in OWN_COPY_SECTIONS) == own_copy]


