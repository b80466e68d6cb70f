"""The dataset card and the model card: Hugging Face README.md files with a YAML header, built from the
pipeline's own metrics with huggingface_hub's card classes (dataset.py, model.py)."""
