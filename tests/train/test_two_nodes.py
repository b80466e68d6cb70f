"""The README's two-machine torchrun command, run as two torchrun processes on this machine with a
c10d rendezvous on 127.0.0.1 (one process per "node"): the same losses and model as one process."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from codex_ml.params import load_params
from codex_ml.training.stage import run_training
from tests.clusters import free_port
from tests.conftest import ROOT, subprocess_env
from tests.trainkit import series

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

PARAMS = {"train": {"max_steps": 20, "eval_every": 10, "checkpoint_every": 10}}


def readme_two_machine_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^\s*(torchrun --nnodes 2 .*?\\\n.*?-m stages\.train)", readme, re.M)
    assert found, "README.md: no `torchrun --nnodes 2 ... -m stages.train` command"
    return found[1].replace("\\\n", " ")


def test_two_torchrun_nodes_on_loopback_train_the_one_process_model(workdir: Callable[..., Path]) -> None:
    one = workdir(PARAMS, name="one")
    run_training(load_params("params.yaml"))
    two = workdir(PARAMS, name="two")  # both "machines" see this folder, as a shared file system
    command = readme_two_machine_command()
    for placeholder, value in (("<procs-per-machine>", "1"), ("<run-id>", "codex-test"),
                               ("<host>", "127.0.0.1"), ("<port>", str(free_port()))):
        assert placeholder in command, (placeholder, command)
        command = command.replace(placeholder, value)
    # the folder is no checkout: the stages package is found through PYTHONPATH
    nodes = [subprocess.Popen(shlex.split(command), cwd=two, env=subprocess_env(PYTHONPATH=str(ROOT)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    try:
        outs = [node.communicate(timeout=600)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(outs)
    assert '"processes": 2' in (two / "metrics/train/metrics.json").read_text()
    # Same global batch split over the two nodes: the same curve up to gloo's summation order.
    for name in ("train/loss", "val/loss"):
        a, b = series(one, name), series(two, name)
        assert [s for s, _ in a] == [s for s, _ in b]
        assert [v for _, v in b] == pytest.approx([v for _, v in a], rel=1e-4), name
    from transformers import AutoModelForCausalLM

    got = AutoModelForCausalLM.from_pretrained(two / "models/trained").state_dict()
    want = AutoModelForCausalLM.from_pretrained(one / "models/trained").state_dict()
    assert list(got) == list(want)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-3, atol=1e-4)
