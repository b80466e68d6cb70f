"""Secret redaction: credentials and e-mail addresses replaced by typed placeholders.

Each pattern names a kind; a match is replaced by `<SECRET:kind>` (or `<EMAIL>`), and the counts per
kind go into the prepare metrics. For assignments (`password = "..."`) only the value is replaced, so
the code around it still reads as code. Patterns are anchored on distinctive literals, which keeps
ordinary code (the standard library) untouched; tests plant one example of every kind.

Speed: one combined regex runs at ~2.5 MB/s on code, because Python's `re` tries every alternative at
every position. Each pattern here instead runs only on documents containing its literal anchor (a
C-speed substring test), which makes redaction ~10x faster on the stdlib (benchmarks/bench_prepare.py).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    kind: str
    regex: re.Pattern[str]
    anchors: tuple[str, ...]  # the pattern can only match where one of these occurs
    lowercase_anchors: bool = False  # anchors are tested against the lower-cased text

    def may_match(self, text: str, lowered: Callable[[], str]) -> bool:
        haystack = lowered() if self.lowercase_anchors else text
        return any(a in haystack for a in self.anchors)


# Order matters where patterns could overlap: a private-key block is replaced before anything in it.
PATTERNS: tuple[Pattern, ...] = (
    Pattern("private_key", re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"), ("PRIVATE KEY",)),
    Pattern("aws_key", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b"),
            ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA")),
    Pattern("github_token",
            re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
            ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    Pattern("gitlab_token", re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}"), ("glpat-",)),
    Pattern("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), ("xox",)),
    Pattern("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
            ("eyJ",)),
    # name = "value" / name: 'value' / "name": "value": only the quoted value is replaced. The value must
    # look like a credential: at least 8 characters, no spaces or format/template syntax.
    Pattern("password", re.compile(
        r"(?P<name>(?i:password|passwd|api_?key|secret_?key|access_?token|auth_?token|client_?secret)"
        r"[A-Za-z_]*[\"']?\s*[:=]\s*)(?P<quote>[\"'])(?P<value>[^\"'\s%{}<>$\\]{8,})(?P=quote)"),
        ("password", "passwd", "apikey", "api_key", "secret_key", "secretkey", "access_token",
         "accesstoken", "auth_token", "authtoken", "client_secret", "clientsecret"),
        lowercase_anchors=True),
    Pattern("email", re.compile(
        r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b"), ("@",)),
)

KINDS = tuple(sorted(p.kind for p in PATTERNS))

# The local part of an address ends right before '@'; scanning backwards from each '@' is much faster
# than letting the regex engine try every word start in a file full of decorators.
_EMAIL_DOMAIN = re.compile(r"@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b")
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")


def _placeholder(kind: str) -> str:
    return "<EMAIL>" if kind == "email" else f"<SECRET:{kind}>"


def _redact_emails(text: str) -> tuple[str, int]:
    out, last, count = [], 0, 0
    for m in _EMAIL_DOMAIN.finditer(text):
        at = m.start()
        start = at
        while start > last and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        # Only the start of the maximal run can begin an address: it must be an ASCII letter or digit
        # not glued to a preceding word character (`foo_bar@x.org` is an identifier, not an address).
        before = text[start - 1] if start > 0 else " "
        if start == at or not (text[start].isascii() and text[start].isalnum()) \
                or before.isalnum() or before in "_.+%-":
            continue
        out.append(text[last:start])
        out.append(_placeholder("email"))
        last = m.end()
        count += 1
    out.append(text[last:])
    return "".join(out), count


def redact(text: str) -> tuple[str, Counter[str]]:
    """Return `text` with every secret replaced, and the count of replacements per kind."""
    counts: Counter[str] = Counter()
    lowered_cache: list[str] = []

    def lowered() -> str:
        if not lowered_cache:
            lowered_cache.append(text.lower())
        return lowered_cache[0]

    for p in PATTERNS:
        if not p.may_match(text, lowered):
            continue
        if p.kind == "email":
            text, n = _redact_emails(text)
        elif p.kind == "password":
            text, n = p.regex.subn(lambda m: f"{m.group('name')}{m.group('quote')}<SECRET:password>"
                                             f"{m.group('quote')}", text)
        else:
            text, n = p.regex.subn(_placeholder(p.kind), text)
        if n:
            counts[p.kind] += n
            lowered_cache.clear()
    return text, counts
