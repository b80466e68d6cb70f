"""The stage scripts, run from the repository root as modules (`python -m stages.prepare`, as dvc.yaml
does): run that way, Python puts the root on sys.path, not this folder, so `stages/tokenize.py` does not
shadow the standard library's `tokenize`.

This file runs first, before any stage imports the project. `dvc repro` runs the stages with whatever
`python` is first on PATH; when that interpreter does not have the project installed (`.venv/bin/dvc
repro` without activating the venv, or a system `dvc`), stop with one line that says what to do instead
of a ModuleNotFoundError traceback from deep inside the first import."""

import importlib.util
import sys

if importlib.util.find_spec("codex_ml") is None:
    sys.stderr.write(
        f"codex-ml: this Python ({sys.executable}) does not have the project installed, so the stage "
        "cannot import codex_ml. Run `make repro`, or `make install` once and then "
        "`source .venv/bin/activate` before `dvc ...` (see README.md, 'Two commands').\n")
    sys.exit(2)
