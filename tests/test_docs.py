"""README.md and docs/*.md as a tested contract: every shell command they show runs, as written, in a
fresh copy of the repository, in the order shown.

How the documents are read: every fenced code block says what it is. ```sh blocks are commands a
user types; anything else (```text diagrams and listings, ```json layouts) is not run. A ```sh block
runs as one bash script (`set -euo pipefail`, so a failing command fails the test and the output says
which), from the repository root, with the venv's commands on PATH as after
`source .venv/bin/activate`. Blocks run in document order in one copy, so later commands see what
earlier ones made (`dvc exp show` after `dvc exp run`, `dvc pull` after `dvc push`). Three copies,
run side by side on the cores: README.md (this file), README.md's sections on a user's own corpus and
model (OWN_COPY_SECTIONS, tests/test_docs_readme_own.py), docs/*.md by name
(tests/test_docs_guides.py). Those sections and each guide therefore start from a fresh clone, as their
reader may.

What the test changes, and why (each is listed below, and a test fails when one goes stale):
- The quick profile is the copy's default. Its conf/ composes `model=micro` and `train=quick` by
  default, a 512-token vocabulary, a 50-resample bootstrap, 4 line completions, and the stdlib source
  limited to a dozen modules, so `make repro` and each `dvc exp run` take seconds, not the
  default's 7 minutes. The commands themselves are unchanged.
- SUBSTITUTE: placeholders a user replaces (`/path/to/your/repo`, `<exp>`) become real paths/names
  the test makes (a folder of real code with a .gitignore, a JSONL corpus, an experiment's name).
- SKIP: commands that cannot run here, each with the reason and the test that covers it instead.
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
import pytest
import yaml
from dvc.utils.hydra import compose_and_dump

from tests.conftest import ROOT, SAMPLE_MODULES, VENV_BIN, run, subprocess_env
from tests.pretrainedkit import make_pretrained

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# The stdlib modules of the copy's default corpus (a subset of tests/conftest.py's sample).
QUICK_MODULES = SAMPLE_MODULES[:14]

# Commands that are not run: (the command's first line, up to any comment) -> why, and what covers it.
SKIP = {
    "make test": "the test suite itself, which runs this test (CI runs it as .ci/run)",
    "torchrun --standalone --nproc_per_node 8 stages/train.py":
        "needs 8 GPUs; tests/train/test_train_process.py runs stages/train.py under torchrun with 2 CPU "
        "processes (gloo) against one process",
    "torchrun --nnodes 2 --nproc_per_node <procs-per-machine> --rdzv_id <run-id> \\":
        "needs two machines; tests/train/test_two_nodes.py runs this command as two torchrun processes "
        "with its rendezvous on 127.0.0.1",
    "torchrun --standalone --nproc_per_node 2 stages/train.py":
        "train.parallel: fsdp needs 2 CUDA GPUs; tests/train/test_fsdp.py runs it where there are",
    "dvc exp run -S train=gpu -S model=small":
        "one large GPU's profile: 1.5e16 FLOPs, days at the ~50 GFLOP/s bf16 rate of 2 CPU cores; "
        "tests/train/test_gpu_profile.py runs its settings shrunk on CPU, tests/test_cuda.py at full "
        "size on a GPU",
    "python benchmarks/bench_train.py --device cuda --dtype bfloat16 --model llama-small \\":
        "needs a CUDA GPU (--device cuda stops on a CPU); bench_train.py without --device runs on CPUs",
    ("dvc exp run -S data=hf -S data.path=<shared-corpus-folder> -S data.engine=datatrove "
     "-S data.tasks=512 \\"):
        "needs a Slurm cluster; tests/test_slurm.py runs prepare and tokenize as job arrays on a "
        "single-node Slurm on 127.0.0.1",
}
# A whole block is skipped when its first command is here (the rest of it needs the same thing).
SKIP_BLOCKS = {
    "CUDA_VISIBLE_DEVICES=0 dvc exp run --temp -S train.lr=0.001 &":
        "pins one GPU per run; on a CPU-only machine it is two more full runs (~40 s) in temporary "
        "workspaces, which the queue block above already runs",
    "dvc remote add -d -f shared s3://<bucket>/codex-ml":
        "needs an S3 bucket, credentials and AWS_ENDPOINT_URL in the environment; tests/test_s3_remote.py "
        "runs this block as written against moto's S3 server on 127.0.0.1",
    "ray start --head --num-cpus 2 --port 6379 --include-dashboard false --disable-usage-stats":
        "its `ray stop` would stop every Ray process of the machine, tests/test_ray.py's cluster among "
        "them; tests/test_ray.py runs the same on its own `ray start --head` on 127.0.0.1",
}

# Placeholder -> what the test puts there ({corpus}, {jsonl} are filled in per run).
SUBSTITUTE = {
    "/path/to/your/repo": "{corpus}",
    "/path/to/repo": "{corpus}",
    "/path/to/corpus.jsonl": "{jsonl}",  # gzipped: the jsonl source decompresses by extension
    "/path/to/parquet-shards": "{parquet}",
    "/path/to/model-folder": "{pretrained}",
    "path/to/other-model": "models/model",
    "checkpoints/checkpoint-600": "checkpoints/checkpoint-30",  # the quick profile's last step is 30
    "[files...]": "src.py",
    "<exp>": '"$(dvc exp list --name-only | head -n 1)"',
    # llama-small's 30 quick steps and its eval take minutes on 2 cores; the group override is the same
    "model=small": "model=micro",
    # a sweep of one value (DVC's range includes its stop): the same queue and sweep syntax, one run
    # instead of three
    "range(0.001,0.004,0.001)": "range(0.001,0.0015,0.001)",
}

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
    "dvc exp run -S model=pretrained -S model.pretrained=/path/to/model-folder":
        "grep -q '\"base_model_bpb\": [0-9]' metrics/eval.json",
    "make repro": ('test -s reports/report.html && summary="$(codex summary)" && '
                   'test "$(wc -l <<< "$summary")" -le 15 && grep -q "bits per byte" <<< "$summary"'),
    "codex tokenizer decode ids.txt > same.py": "cmp src.py same.py",
    "dvc queue start -j 2": WAIT_FOR_QUEUE,
    # both queued experiments ran to the end, each with its own params
    "dvc exp show --md": QUEUED_BOTH,
    "dvc exp run --queue -S 'train.lr=range(0.001,0.004,0.001)' && dvc queue start -j 2": WAIT_FOR_QUEUE,
    "cd .. && git clone codex-ml codex-ml-copy && cd codex-ml-copy && dvc pull":
        "dvc status | grep -q 'up to date' && ! dvc repro | grep -q 'Running stage'",
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
    """The command without a trailing `# comment` (outside quotes), for matching SKIP and AFTER."""
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
        if key in SKIP:
            out.append(f"echo {_quote(f'skipped: {key} ({SKIP[key]})')}")
            continue
        text = command
        for placeholder, value in SUBSTITUTE.items():
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


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


# --- The documents are well-formed: every block says what it is, every command is accounted for -----


def test_every_code_block_says_what_it_is() -> None:
    untagged = [b.where() for b in all_blocks() if not b.lang]
    assert not untagged, (f"code blocks without a language (```sh for commands that a test runs, ```text "
                          f"for the rest): {untagged}")


def test_every_skip_substitution_and_check_still_matches_a_documented_command() -> None:
    commands = [c for b in all_blocks() if b.lang == "sh" for c in b.commands]
    keys = {uncommented(first_line(c)) for c in commands}
    text = "\n".join(commands)
    stale = [k for k in [*SKIP, *SKIP_BLOCKS, *AFTER] if k not in keys]
    stale += [p for p in SUBSTITUTE if p not in text]
    assert not stale, f"entries that match no command in README.md or docs/ any more: {stale}"


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
    config["defaults"] = [{"model": "micro"} if d == {"model": "mini"} else
                          {"train": "quick"} if d == {"train": "default"} else d
                          for d in config["defaults"]]
    assert {"model": "micro"} in config["defaults"] and {"train": "quick"} in config["defaults"]
    config["tokenizer"]["vocab_size"] = 512
    config["eval"].update(bootstrap=50, completion_samples=4)
    (repo / "conf/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    data = yaml.safe_load((repo / "conf/data/stdlib.yaml").read_text())
    # The user's repository (user_inputs) keeps its code under src/: `codex eval --data` reads it with
    # these include patterns, as it would the user's own.
    data.update(include=[*QUICK_MODULES, "src/**/*.py"], val_fraction=0.2, test_fraction=0.2)
    (repo / "conf/data/stdlib.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    # The user's corpora here are 16-20 files: the profiles' floors for val and test (10 documents
    # each, with train keeping half) would refuse them, rightly; the commands are what is tested.
    for profile in ("dir", "jsonl", "hf"):
        conf = yaml.safe_load((repo / f"conf/data/{profile}.yaml").read_text())
        conf["held_out"] = {"min_documents": 0, "min_bytes": 0}
        (repo / f"conf/data/{profile}.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
    compose_and_dump(repo / "params.yaml", str(repo / "conf"), None, "config", str(repo), [])


def user_inputs(tmp_path: Path, repo: Path) -> dict[str, str]:
    """What a user would bring: their repository (real code, with a .gitignore and a file it ignores),
    a gzipped JSONL corpus, a folder of parquet shards, a source file to tokenize, a pretrained model
    folder with its own tokenizer (a tiny random-init GPT-2 saved with save_pretrained: no hub here)."""
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
    return {"corpus": str(corpus), "jsonl": str(jsonl), "parquet": str(parquet),
            "pretrained": str(pretrained)}


def run_documents(tmp_path: Path, blocks: list[Block], run_elsewhere: tuple[Path, ...] = ()) -> None:
    """Every ```sh block of `blocks`, in order, in one fresh copy (the module docstring says how). An
    `exp run` that a document of `run_elsewhere` shows to the letter is not run again here: that
    document's test runs it."""
    repo = tmp_path / "codex-ml"  # `git clone` names the folder after the repository
    fresh_copy(repo)
    (repo / ".venv").symlink_to(VENV_BIN.parent)
    quick_defaults(repo)
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
        if uncommented(first_line(block.commands[0])) in SKIP_BLOCKS:
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
OWN_COPY_SECTIONS = ("### Your own corpus", "### Fine-tune your own model")


def readme_blocks(own_copy: bool) -> list[Block]:
    return [b for b in code_blocks(README) if (b.section in OWN_COPY_SECTIONS) == own_copy]


def test_the_readme_sections_run_in_their_own_copy_exist() -> None:
    sections = {b.section for b in code_blocks(README) if b.lang == "sh"}
    assert set(OWN_COPY_SECTIONS) <= sections, f"README.md has no ```sh block under {OWN_COPY_SECTIONS}"


@pytest.mark.slow
def test_every_readme_command_runs_in_a_fresh_copy(tmp_path: Path) -> None:
    """README.md's commands but its OWN_COPY_SECTIONS', which tests/test_docs_readme_own.py runs;
    docs/*.md's run in tests/test_docs_guides.py."""
    run_documents(tmp_path, readme_blocks(own_copy=False))
