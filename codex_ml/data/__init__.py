"""Corpus preparation: sources, filters, secret redaction, dedup and the stable split."""
