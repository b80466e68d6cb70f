"""Personal data in code: e-mail addresses and IP addresses, found as spans for secrets.redact.

E-mail addresses are all replaced (`<EMAIL>`), as BigCode did for The Stack: author lines and
`__author__` are personal data even at example.org. IP addresses (`<IP_ADDRESS>`, BigCode's tag) are
replaced only when `ipaddress` calls them global: private (RFC 1918, RFC 4193), loopback, link-local,
unspecified, multicast, reserved, shared (100.64/10) and the documentation ranges (192.0.2/24,
198.51.100/24, 203.0.113/24, 2001:db8::/32) are kept, because they identify nobody and code needs
them (`127.0.0.1`, `0.0.0.0`, test fixtures); so are the public DNS resolvers BigCode kept (8.8.8.8,
1.1.1.1, ...), which are configuration, not a person. Like BigCode's `filter_versions`, a four-part
dotted number whose first three parts are single digits (`1.2.3.4`, `8.2.4.44`) is a version or a
section number unless "dns" or "server" is on its line.

Speed: the regexes run only on lines a literal-prefixed prefilter finds (`.\\d.\\d.` for IPv4, `:x:`
for IPv6), and e-mail local parts are scanned backwards from each `@` rather than tried at every word.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

Span = tuple[int, int, str]  # start, end, kind

PUBLIC_DNS_RESOLVERS = frozenset({
    "8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "149.112.112.112", "208.67.222.222",
    "208.67.220.220", "76.76.19.19", "94.140.14.14", "94.140.15.15", "2001:4860:4860::8888",
    "2001:4860:4860::8844", "2606:4700:4700::1111", "2606:4700:4700::1001"})

# The local part of an address ends right before '@'; scanning backwards from each '@' is much faster
# than letting the regex engine try every word start in a file full of decorators.
_EMAIL_DOMAIN = re.compile(r"@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b")
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")

_IPV4_PREFILTER = re.compile(r"\.\d{1,3}\.\d{1,3}\.")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)")
_IPV6_PREFILTER = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:]|\.\d)")


def email_spans(text: str) -> Iterator[Span]:
    if "@" not in text:
        return
    last = 0
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
        last = m.end()
        yield start, last, "email"


def _lines_at(text: str, prefilter: re.Pattern[str]) -> Iterator[tuple[int, str]]:
    """(offset, line) of every line holding a prefilter match, each line once."""
    end = -1
    for m in prefilter.finditer(text):
        if m.start() < end:
            continue
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.end())
        end = len(text) if end < 0 else end
        yield start, text[start:end]


def _redactable_ip(value: str, line: str) -> bool:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    if not ip.is_global or ip.is_multicast or ip.is_reserved or value in PUBLIC_DNS_RESOLVERS:
        return False
    if ip.version == 4 and all(len(p) == 1 for p in value.split(".")[:3]):
        # 1.2.3.4, 8.2.4.44: a version or a section number, unless it is a server's address
        lowered = line.lower()
        return "dns" in lowered or "server" in lowered
    # `a[1::2]`, `x[b::c]`: slices, not addresses
    return ip.version == 4 or sum(1 for g in value.split(":") if g) >= 3


def ip_spans(text: str) -> Iterator[Span]:
    for regex, prefilter, kind in ((_IPV4, _IPV4_PREFILTER, "ipv4"), (_IPV6, _IPV6_PREFILTER, "ipv6")):
        for offset, line in _lines_at(text, prefilter):
            for m in regex.finditer(line):
                if _redactable_ip(m.group(), line):
                    yield offset + m.start(), offset + m.end(), kind
