"""Training: windows from the token streams, transformers' Trainer with verified checkpoints and exact
resume, dvclive telemetry. The stage's recipe is codex_ml.training.stage.run_training."""
