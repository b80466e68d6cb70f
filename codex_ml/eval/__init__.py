"""eval: bits per byte, loss, accuracy and line completion with bootstrap intervals; `codex eval` and
`codex generate`."""
