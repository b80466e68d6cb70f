"""Secret redaction: credentials and e-mail addresses replaced by typed placeholders.

Each pattern names a kind; a match is replaced by `<SECRET:kind>` (or `<EMAIL>`), and the counts per
kind go into the prepare metrics. For assignments (`password = "..."`) only the value is replaced, so
the code around it still reads as code. Patterns are anchored on distinctive prefixes, which keeps
ordinary code (the standard library) untouched; tests plant one example of every kind.
"""

from __future__ import annotations

import re
from collections import Counter

# (kind, regex). Order matters where patterns could overlap: the private-key block first.
_PATTERNS: list[tuple[str, str]] = [
    ("private_key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
                    r"[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    ("aws_key", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
    ("gitlab_token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    # name = "value" / name: 'value' / "name": "value" — only the value (group `value`) is replaced.
    # The value must look like a credential: no spaces or format syntax, at least 8 characters.
    ("assignment", r"(?P<name>(?i:\b[a-z_]*(?:password|passwd|api_?key|secret_?key|access_?token"
                   r"|auth_?token|client_?secret)[a-z_]*)\b[\"']?\s*[:=]\s*)"
                   r"(?P<quote>[\"'])(?P<value>[^\"'\s%{}<>$\\]{8,})(?P=quote)"),
    ("email", r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b"),
]

_COMBINED = re.compile("|".join(f"(?P<k_{kind}>{rx})" for kind, rx in _PATTERNS))

KINDS = tuple(sorted({"password" if k == "assignment" else k for k, _ in _PATTERNS}))


def _placeholder(kind: str) -> str:
    return "<EMAIL>" if kind == "email" else f"<SECRET:{kind}>"


def redact(text: str) -> tuple[str, Counter[str]]:
    """Return `text` with every secret replaced, and the count of replacements per kind."""
    counts: Counter[str] = Counter()

    def replace(m: re.Match[str]) -> str:
        kind = next(k[2:] for k, v in m.groupdict().items() if k.startswith("k_") and v is not None)
        if kind == "assignment":
            counts["password"] += 1
            return f"{m.group('name')}{m.group('quote')}{_placeholder('password')}{m.group('quote')}"
        counts[kind] += 1
        return _placeholder(kind)

    return _COMBINED.sub(replace, text), counts
