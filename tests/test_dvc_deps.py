"""dvc.yaml's code deps cover what each stage imports, so a changed module reruns every stage that runs it.

The closure comes from the source (tests/depskit.py); these tests hold dvc.yaml to it, and show the check
fails on the mistakes it exists for: an import planted deep in a stage's code, a dep dropped, a dep
renamed away. tests/test_pipeline_run.py shows real DVC then reports the stage changed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.depskit import closure, covered, entry_of, stage_problems


def test_every_stage_lists_the_code_it_imports_and_nothing_stale() -> None:
    problems = stage_problems(ROOT)
    assert not problems, "dvc.yaml's deps do not match the stages' imports:\n" + "\n".join(
        f"  {stage}: {p}" for stage, found in problems.items() for p in found)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The pipeline's definition and code in a temporary folder, to plant mistakes in."""
    for item in ("dvc.yaml", "stages", "codex_ml", "base-models"):
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, tmp_path / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(src, tmp_path / item)
    return tmp_path


def stages_of(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


def plant(file: Path, code: str) -> None:
    """A function at the end of `file` whose body is `code`: a lazy import, run only when called."""
    body = "".join(f"    {line}\n" for line in code.splitlines())
    file.write_text(file.read_text() + f"\n\ndef _planted() -> None:\n{body}")


def deepest(root: Path, stage: dict) -> Path:
    """The module of the stage's closure farthest from its script (not the script itself)."""
    entry = entry_of(stage["cmd"], root)
    files = sorted(closure(entry, root) - {entry.script}, key=lambda f: (len(f.parts), str(f)))
    return files[-1]


def test_an_import_planted_inside_a_function_deep_in_each_stage_is_named(project: Path) -> None:
    assert stage_problems(project) == {}
    (project / "planted").mkdir()
    (project / "planted" / "extra.py").write_text('"""A module no dep covers."""\n')
    (project / "planted" / "guarded.py").write_text('"""Imported for type checking only."""\n')
    for stage in stages_of(project).values():
        plant(project / deepest(project, stage),
              "import planted.extra  # noqa: F401\n"
              "from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    import planted.guarded  # noqa: F401")
    problems = stage_problems(project)
    assert set(problems) == set(stages_of(project))
    for stage, found in problems.items():
        assert found == ["planted/extra.py is imported but no dep covers it"], (stage, found)


def test_a_relative_import_of_a_new_sibling_module_is_named(project: Path) -> None:
    """A new module beside one that a stage lists file by file (not by its folder) is not covered."""
    planted = 0
    for name, stage in stages_of(project).items():
        entry = entry_of(stage["cmd"], project)
        files = closure(entry, project)
        by_file = [f for f in sorted(files) if f.name != "__init__.py" and f != entry.script
                   and f.parent != entry.script.parent and str(f) in stage["deps"]
                   and not any(covered(f.parent, d) for d in stage["deps"])]
        if not by_file:
            continue
        sibling = by_file[0].with_name(f"planted_{name}.py")
        (project / sibling).write_text('"""A new module beside one the stage lists."""\n')
        plant(project / by_file[0], f"from . import planted_{name}  # noqa: F401")
        assert f"{sibling} is imported but no dep covers it" in stage_problems(project).get(name, [])
        planted += 1
    assert planted, "no stage lists a module file by file: nothing to plant beside"


def test_a_dropped_dep_and_a_dep_that_no_longer_exists_are_named(project: Path) -> None:
    pipeline = yaml.safe_load((project / "dvc.yaml").read_text())
    name, stage = next(iter(pipeline["stages"].items()))
    entry = entry_of(stage["cmd"], project)
    files = closure(entry, project)
    dropped = next(d for d in stage["deps"] if str(d).endswith(".py") and str(d) != str(entry.script))
    stage["deps"].remove(dropped)
    stage["deps"].append("codex_ml/no_such_module.py")
    (project / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    found = stage_problems(project)[name]
    assert f"{dropped} is imported but no dep covers it" in found
    assert "codex_ml/no_such_module.py is a dep that does not exist (nor is any stage's output)" in found
    assert {Path(dropped)} <= files


def test_a_dep_the_stage_no_longer_imports_is_named(project: Path) -> None:
    pipeline = yaml.safe_load((project / "dvc.yaml").read_text())
    for name, stage in pipeline["stages"].items():
        entry = entry_of(stage["cmd"], project)
        files = closure(entry, project)
        unused = sorted(f.relative_to(project) for f in project.rglob("*.py")
                        if f.relative_to(project) not in files and f.parent != project / entry.script.parent)
        if unused:
            stage["deps"].append(str(unused[0]))
            (project / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
            assert f"{unused[0]} is a dep of which the stage imports nothing" in stage_problems(project)[name]
            return
    pytest.fail("every stage imports every module: nothing to add")


def other_form(cmd: str) -> str:
    """`python stages/x.py` as `python -m stages.x`, and back."""
    if m := re.search(r"python -m (\S+)", cmd):
        return cmd.replace(m.group(0), "python " + m.group(1).replace(".", "/") + ".py")
    m = re.search(r"python (\S+)\.py", cmd)
    assert m, cmd
    return cmd.replace(m.group(0), "python -m " + m.group(1).replace("/", "."))


def test_python_m_and_a_script_path_give_the_same_closure() -> None:
    """Both ways a cmd can run a stage: the script's folder is first on sys.path for a path, the working
    directory for -m; the code beyond the script's own folder is the same either way."""
    for name, stage in stages_of(ROOT).items():
        a, b = entry_of(stage["cmd"], ROOT), entry_of(other_form(stage["cmd"]), ROOT)
        assert a.script == b.script and a.path != b.path, name
        outside = [{f for f in closure(e, ROOT) if f.parent != e.script.parent} for e in (a, b)]
        assert outside[0] == outside[1] and len(outside[0]) > 5, name


def test_a_cmd_that_runs_no_python_entry_point_is_an_error(project: Path) -> None:
    pipeline = yaml.safe_load((project / "dvc.yaml").read_text())
    name = next(iter(pipeline["stages"]))
    pipeline["stages"][name]["cmd"] = "bash run.sh"
    (project / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    assert stage_problems(project)[name] == [
        "cmd: not `python <script>.py` or `python -m <module>`: 'bash run.sh'"]
