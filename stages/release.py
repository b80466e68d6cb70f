"""release: models/trained (train) + every stage's metrics -> models/model with its model card."""

from pathlib import Path

from codex_ml import paths
from codex_ml.cards.release import release
from codex_ml.params import load_params
from codex_ml.runtime import log, run_stage


def main() -> None:
    params = load_params(paths.PARAMS)  # the card shows params.yaml's sections: a valid file first
    release(Path("."), paths.TRAINED, paths.MODEL, params.release.license)
    log.info("release: %s with its model card %s", paths.MODEL, paths.MODEL_CARD)


if __name__ == "__main__":
    run_stage("release", main)
