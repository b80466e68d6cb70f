"""Secret and PII redaction: credentials, e-mail and IP addresses replaced by typed placeholders.

A finding is replaced by `<SECRET:kind>` (`<EMAIL>`, `<IP_ADDRESS>` for personal data) and counted
per kind in the prepare metrics. Only the secret's own characters are replaced -- the value of
`password = "..."`, the password of `https://user:pw@host` -- so the code around it still parses
(tests/test_secrets_stdlib.py compiles every changed stdlib file).

Detectors, by priority where two claim the same characters:
1. private-key blocks (PEM, OpenSSH, PGP, PuTTY; also inside a JSON string, as in a GCP service
   account file);
2. provider formats: detect-secrets' plugin regexes plus the formats it lacks (secret_rules.py, which
   argues the choice of detect-secrets over a gitleaks-style rule set);
3. secret-keyword assignments (`password`, `secret`, `api_key`, `*_token`, ... = a literal):
   detect-secrets' KeywordDetector regexes, per file type (unquoted values count in YAML/INI/.env),
   with its heuristic filters plus ours: a value of at least 8 characters with no spaces or
   template/format syntax;
4. high-entropy strings: a quoted run of 20+ base64 characters whose Shannon entropy is at least
   `HIGH_ENTROPY_LIMIT`, that detect-secrets' filters do not call sequential, a UUID or templated.
   Pure hex strings are never flagged on entropy alone: in code they are hashes and test vectors
   (hundreds in the stdlib, docs/secrets.md), and a hex secret under a secret-like name is rule 3's;
5. PII (pii.py): e-mail addresses, and public IPv4/IPv6 addresses.

Speed: detect-secrets run the documented way (every plugin on every line) takes ~70-100 s on the
31 MB stdlib. Here every rule first asks for a literal anchor with `in` on the whole document (C
speed), then runs its regexes only on the lines that hold one; high-entropy candidates are runs found
on a byte mask (`bytes.translate` + `find`), never by a regex tried at every position.
"""

from __future__ import annotations

import bisect
import itertools
import re
import string
from collections import Counter
from collections.abc import Iterator

from detect_secrets.filters import heuristic
from detect_secrets.plugins import keyword
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString

from codex_ml.data import pii
from codex_ml.data.secret_rules import PRIVATE_KEY_ANCHORS, PRIVATE_KEY_BLOCK, PROVIDER_RULES, Rule

Span = tuple[int, int, str]

# Chosen from the measurement in docs/secrets.md: random keys of 32+ base64 characters score 4.7-5.3;
# stdlib strings that reach 4.5 are alphabets, identifiers and encodings in tests.
HIGH_ENTROPY_LIMIT = 4.5
HIGH_ENTROPY_MIN_LENGTH = 20
KEYWORD_MIN_LENGTH = 8

# File types whose values need no quotes (YAML, INI, TOML, .env, properties).
CONFIG_SUFFIXES = (".yaml", ".yml", ".ini", ".cfg", ".toml", ".env", ".properties", ".conf")

PII_KINDS = ("email", "ipv4", "ipv6")
KINDS = tuple(sorted({r.kind for r in PROVIDER_RULES}
                     | {"private_key", "password", "high_entropy", *PII_KINDS}))
PLACEHOLDERS = {"email": "<EMAIL>", "ipv4": "<IP_ADDRESS>", "ipv6": "<IP_ADDRESS>"}


def placeholder(kind: str) -> str:
    return PLACEHOLDERS.get(kind, f"<SECRET:{kind}>")


# Every keyword of detect-secrets' list holds one of these (`api_?key` holds "key", `passwd` "pass"):
# six scans of a document find the lines worth its regexes.
KEYWORD_ANCHORS = ("pass", "pwd", "secret", "key", "token", "contrase")
# detect-secrets has no `token` keyword; the same regex shapes, for *_token names.
_TOKEN_NAMES = r"(?:access|auth|api|bearer|refresh|session|secret)_?token\w*"
_KEYWORD_NAME = re.compile(rf"{keyword.DENYLIST_REGEX}|{_TOKEN_NAMES}", re.IGNORECASE)


def _token_regex(quote: str) -> dict[re.Pattern[str], int]:
    return {re.compile(rf"{_TOKEN_NAMES}({keyword.CLOSING})?{keyword.OPTIONAL_WHITESPACE}[:=]"
                       rf"{keyword.OPTIONAL_WHITESPACE}({quote})({keyword.SECRET})(\2)",
                       flags=re.IGNORECASE): 3}


_CODE_KEYWORDS = {**keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP, **_token_regex(keyword.QUOTE)}
_CONFIG_KEYWORDS = {**keyword.CONFIG_DENYLIST_REGEX_TO_GROUP, **_token_regex(keyword.QUOTE + "?")}

_ENTROPY = Base64HighEntropyString(limit=HIGH_ENTROPY_LIMIT)
_B64_CHARS = (string.ascii_letters + string.digits + "+/=_-").encode()
_B64_MASK = bytes(ord("a") if i in _B64_CHARS else ord(" ") for i in range(256))
_B64_RUN = b"a" * HIGH_ENTROPY_MIN_LENGTH
_HEX = frozenset(string.hexdigits)


class _Doc:
    """One document and what the detectors share: its lower-cased copy, its UTF-8 bytes and the runs of
    20+ base64 characters in them (every token-shaped secret lies in one), joined as one short string."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.lowered = text.lower()
        self.config = path.lower().endswith(CONFIG_SUFFIXES) or path.rsplit("/", 1)[-1].startswith(".env")
        self.data = text.encode("utf-8")
        mask = self.data.translate(_B64_MASK)
        self.runs: list[tuple[int, int]] = []
        pos = mask.find(_B64_RUN)
        while pos >= 0:
            end = mask.find(b" ", pos + HIGH_ENTROPY_MIN_LENGTH)
            end = len(mask) if end < 0 else end
            self.runs.append((pos, end))
            pos = mask.find(_B64_RUN, end)
        self.run_text = b"\n".join(self.data[a:b] for a, b in self.runs).decode("ascii")
        self._run_lowered: str | None = None

    @property
    def run_lowered(self) -> str:
        if self._run_lowered is None:
            self._run_lowered = self.run_text.lower()
        return self._run_lowered

    def char_offset(self, byte_offset: int) -> int:
        if len(self.data) == len(self.text):  # ASCII: bytes and characters line up
            return byte_offset
        return len(self.data[:byte_offset].decode("utf-8"))


def _lines_with(text: str, needle: str, haystack: str) -> Iterator[tuple[int, str]]:
    """(offset, line) for every line of `text` where `needle` occurs in `haystack` (text or its
    lower-cased copy, same offsets), each line once."""
    pos = haystack.find(needle)
    while pos >= 0:
        start = text.rfind("\n", 0, pos) + 1
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        yield start, text[start:end]
        pos = haystack.find(needle, end)


def _rule_spans(rule: Rule, doc: _Doc) -> Iterator[Span]:
    haystack = doc.lowered if rule.lowercase_anchors else doc.text
    if rule.prefilter is not None:
        needles = sorted({m.group() for m in rule.prefilter.finditer(doc.run_text)})
    else:
        probe = (doc.run_lowered if rule.lowercase_anchors else doc.run_text) if rule.in_runs \
            else haystack
        needles = [a for a in rule.anchors if a in probe]
    if not needles:
        return
    lines: dict[int, str] = {}
    for needle in needles:
        lines.update(_lines_with(doc.text, needle, haystack))
    for offset, line in sorted(lines.items()):
        for regex in rule.regexes:
            for m in regex.finditer(line):
                start, end = m.span(rule.group)
                value = line[start:end]
                if value.startswith("AccountKey="):  # keep the connection string's field name
                    start += len("AccountKey=")
                    value = value[len("AccountKey="):]
                if start < end and (rule.valid is None or rule.valid(value)):
                    yield offset + start, offset + end, rule.kind


def _plausible_keyword_value(value: str, line: str) -> bool:
    return (len(value) >= KEYWORD_MIN_LENGTH
            and not any(c.isspace() or c in "%{}<>$\\()[]" for c in value)
            and not heuristic.is_sequential_string(value)
            and not heuristic.is_potential_uuid(value)
            and not heuristic.is_not_alphanumeric_string(value)
            and not heuristic.is_indirect_reference(line))


def _keyword_spans(doc: _Doc) -> Iterator[Span]:
    lines: dict[int, str] = {}
    for anchor in KEYWORD_ANCHORS:
        if anchor in doc.lowered:
            lines.update(_lines_with(doc.text, anchor, doc.lowered))
    regexes = _CONFIG_KEYWORDS if doc.config else _CODE_KEYWORDS
    for offset, line in sorted(lines.items()):
        # A cheap test first: the detect-secrets regexes need a keyword name and (in code) a quote.
        if len(line) > 1000 or not (doc.config or "'" in line or '"' in line or "`" in line) \
                or not _KEYWORD_NAME.search(line):
            continue
        for regex, group in regexes.items():
            for m in regex.finditer(line):
                value = m.group(group)
                if value and _plausible_keyword_value(value, line):
                    yield offset + m.start(group), offset + m.end(group), "password"


def _mixed_classes(value: str) -> bool:
    """Digits, lower and upper case all present: a random base64 key of 20+ characters lacks one of
    them with probability < 3% (at 32 characters < 0.5%); the alphabets, identifiers and words that
    reach the entropy limit in code lack one almost always (docs/secrets.md)."""
    return any(c.isdigit() for c in value) and any(c.islower() for c in value) \
        and any(c.isupper() for c in value)


def _is_alphabet(value: str) -> bool:
    """Mostly consecutive characters (`abcdefgh...`, `zyxw...`, `ABC...XYZ234567`): an alphabet
    constant, which detect-secrets' `is_sequential_string` only knows in upper case and in order."""
    steps = sum(1 for a, b in itertools.pairwise(value) if abs(ord(a) - ord(b)) == 1)
    return steps >= len(value) // 2


def _high_entropy_spans(doc: _Doc) -> Iterator[Span]:
    data = doc.data
    for pos, end in doc.runs:
        before = data[pos - 1:pos]
        after = data[end:end + 1]
        quoted = before in (b'"', b"'") and after == before
        bare = doc.config and after in (b"\n", b"\r", b"")
        if bare and before in (b"\n", b""):  # `.env`'s NAME=value is one run: the value follows `=`
            name, eq, _ = data[pos:end].partition(b"=")
            bare = bool(eq) and name.decode().isidentifier() \
                and end - pos - len(name) - 1 >= HIGH_ENTROPY_MIN_LENGTH
            pos += len(name) + 1 if bare else 0
        elif bare:
            bare = before in (b"=", b" ", b":")
        if not (quoted or bare):
            continue
        value = data[pos:end].decode("ascii")
        if (not _HEX.issuperset(value) and _mixed_classes(value) and not _is_alphabet(value)
                and _ENTROPY.calculate_shannon_entropy(value) >= HIGH_ENTROPY_LIMIT
                and not heuristic.is_sequential_string(value)
                and not heuristic.is_potential_uuid(value)
                and not heuristic.is_templated_secret(value)):
            start = doc.char_offset(pos)
            yield start, start + len(value), "high_entropy"


def find_secrets(text: str, path: str = "", pii_too: bool = True) -> list[Span]:
    """Every finding in `text` as (start, end, kind), non-overlapping, sorted by position. `path`
    (its suffix) decides whether unquoted config values count; `pii_too` adds e-mail and IP addresses."""
    doc = _Doc(text, path)
    candidates: list[Span] = []
    if any(a in text for a in PRIVATE_KEY_ANCHORS):
        candidates += [(*m.span(), "private_key") for m in PRIVATE_KEY_BLOCK.finditer(text)]
    for rule in PROVIDER_RULES:
        candidates += _rule_spans(rule, doc)
    candidates += _keyword_spans(doc)
    candidates += _high_entropy_spans(doc)
    if pii_too:
        candidates += pii.email_spans(text)
        candidates += pii.ip_spans(text)
    # Earlier detectors win where spans overlap (the list is in priority order).
    kept: list[Span] = []  # sorted by start, never overlapping
    for span in candidates:
        i = bisect.bisect(kept, span)
        if (i == 0 or kept[i - 1][1] <= span[0]) and (i == len(kept) or kept[i][0] >= span[1]):
            kept.insert(i, span)
    return kept


def redact(text: str, path: str = "", pii_too: bool = True) -> tuple[str, Counter[str]]:
    """Return `text` with every secret (and, with `pii_too`, PII) finding replaced, and the count per
    kind."""
    spans = find_secrets(text, path, pii_too)
    counts: Counter[str] = Counter(kind for _, _, kind in spans)
    if not spans:
        return text, counts
    out, last = [], 0
    for start, end, kind in spans:
        out += [text[last:start], placeholder(kind)]
        last = end
    out.append(text[last:])
    return "".join(out), counts
