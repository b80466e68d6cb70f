"""report: one Markdown and one self-contained HTML page from every stage's metrics and dvc.lock."""
