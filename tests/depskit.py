"""Each dvc.yaml stage's code, read from its source: the import closure of the script its `cmd` runs, and
what its `deps` list fails to cover (tests/test_dvc_deps.py, tests/test_pipeline_run.py).

DVC reruns a stage when one of its deps changes, and knows nothing of Python imports: a module the stage
imports but does not list can change the stage's results while `dvc status` calls it up to date. So the
closure is computed here, as Python would import it, and compared with the deps:

- the entry point is the cmd's `python <path>.py` (its folder first on sys.path, as Python puts it) or
  `python -m <module>` (the working directory first, and the module's packages' __init__.py run before
  it), after any `VAR=value` assignments;
- every import is followed, at module level or inside a function (a lazy import runs too), absolute or
  relative, to a source file of this repository (a module found on the entry point's path or at the
  repository root); importing `a.b.c` runs `a/__init__.py` and `a/b/__init__.py` too, so they are in it;
- imports under `if TYPE_CHECKING:` are left out: they never run;
- third-party modules (torch, transformers, ...) are not followed: requirements.lock pins them.
"""

from __future__ import annotations

import ast
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Entry:
    script: Path  # the file the cmd runs, relative to the repository root
    path: tuple[Path, ...]  # sys.path's folders inside the repository, in order (relative)


def entry_of(cmd: str, root: Path) -> Entry:
    """The Python entry point of a stage's cmd; ValueError when the cmd runs none this can read."""
    words = shlex.split(cmd)
    while words and "=" in words[0] and not words[0].startswith("-"):
        words.pop(0)  # VAR=value before the command
    if not words or not Path(words[0]).name.startswith("python"):
        raise ValueError(f"not `python <script>.py` or `python -m <module>`: {cmd!r}")
    args = words[1:]
    if len(args) >= 2 and args[0] == "-m":
        path = (Path("."),)
        script = module_file(args[1], path, root)
        if script is None:
            raise ValueError(f"module {args[1]!r} of {cmd!r} is no file of the repository")
        return Entry(script, path)
    if args and args[0].endswith(".py"):
        script = Path(args[0])
        if not (root / script).is_file():
            raise ValueError(f"{script} of {cmd!r} does not exist")
        return Entry(script, (script.parent, Path(".")))
    raise ValueError(f"not `python <script>.py` or `python -m <module>`: {cmd!r}")


def module_file(name: str, path: tuple[Path, ...], root: Path) -> Path | None:
    """The repository file that `import name` runs, searching `path` in order (a package's
    __init__.py, else the module's .py); None for a module outside the repository."""
    rel = Path(*name.split("."))
    for folder in path:
        for candidate in (folder / rel / "__init__.py", folder / rel.with_suffix(".py")):
            if (root / candidate).is_file():
                return Path(*candidate.parts)  # normalised: no leading "./"
    return None


def module_name(file: Path, path: tuple[Path, ...]) -> tuple[str, bool]:
    """(dotted name, is a package) of a repository file, by the first sys.path folder holding it."""
    for folder in path:
        try:
            rel = file.relative_to(folder) if folder != Path(".") else file
        except ValueError:
            continue
        parts = rel.with_suffix("").parts
        package = parts[-1] == "__init__"
        return ".".join(parts[:-1] if package else parts), package
    raise ValueError(f"{file} is on none of {path}")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(source: str, module: str, package: bool) -> set[str]:
    """Every module name the source may import when it runs (`from a import b` may import `a.b`)."""
    here = module if package else module.rpartition(".")[0]
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)] if here else []
                base = ".".join([*anchor, *([base] if base else [])])
            if base:
                names.add(base)
            names.update(f"{base}.{alias.name}".lstrip(".") for alias in node.names if alias.name != "*")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return names


def closure(entry: Entry, root: Path) -> set[Path]:
    """Every repository file that running the entry point can import (relative paths)."""
    seen: set[Path] = set()
    todo = [entry.script]
    if entry.path[0] == Path("."):  # `python -m a.b` imports package `a` (a/__init__.py) before it runs
        parents = module_name(entry.script, entry.path)[0].split(".")[:-1]
        todo += [f for i in range(1, len(parents) + 1)
                 if (f := module_file(".".join(parents[:i]), entry.path, root)) is not None]
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        if file == entry.script and entry.path[0] != Path("."):
            module, package = "__main__", False
        else:
            module, package = module_name(file, entry.path)
        for name in imported_names((root / file).read_text(encoding="utf-8"), module, package):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py, a/b/__init__.py
                found = module_file(".".join(parts[:i]), entry.path, root)
                if found is not None and found not in seen:
                    todo.append(found)
    return seen


def covered(file: Path, dep: str) -> bool:
    dep = dep.rstrip("/")
    return str(file) == dep or str(file).startswith(dep + "/")


def dep_problems(dep: str, files: set[Path], root: Path, outs: set[str]) -> list[str]:
    """What is wrong with one dep of a stage whose closure is `files` (see stage_problems)."""
    path = root / dep
    if not path.exists():
        known = dep in outs or (root / f"{dep.rstrip('/')}.dvc").exists()
        return [] if known else [f"{dep} is a dep that does not exist (nor is any stage's output)"]
    holds_source = path.suffix == ".py" or (path.is_dir() and any(path.rglob("*.py")))
    if holds_source and not any(covered(f, dep) for f in files):
        return [f"{dep} is a dep of which the stage imports nothing"]
    return []


def stage_problems(root: Path) -> dict[str, list[str]]:
    """Per stage of root/dvc.yaml, what is wrong with its deps (empty lists dropped):
    - a file of the closure that no dep covers;
    - a dep that is not in the repository, nor another stage's output, nor a `dvc add`ed path;
    - a dep holding Python source of which no file is in the closure (the stage no longer imports it)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    outs = {next(iter(o)) if isinstance(o, dict) else o
            for s in stages.values() for key in ("outs", "metrics", "plots") for o in s.get(key, [])}
    problems: dict[str, list[str]] = {}
    for name, stage in stages.items():
        deps = [next(iter(d)) if isinstance(d, dict) else d for d in stage.get("deps", [])]
        try:
            files = closure(entry_of(stage["cmd"], root), root)
        except ValueError as e:
            problems[name] = [f"cmd: {e}"]
            continue
        found = [f"{f} is imported but no dep covers it" for f in sorted(files)
                 if not any(covered(f, d) for d in deps)]
        found += [problem for dep in deps for problem in dep_problems(dep, files, root, outs)]
        if found:
            problems[name] = found
    return problems
