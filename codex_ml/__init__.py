"""codex-ml: a reproducible DVC pipeline that trains small language models on your own corpus."""

__version__ = "0.1.0"
