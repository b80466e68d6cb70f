"""Secret and PII redaction: recall on the planted set in every context, what is kept, what is never
touched, and that redacted Python still parses."""

from __future__ import annotations

import ast
import itertools

import pytest

from codex_ml.data.secrets import KINDS, find_secrets, placeholder, redact
from codex_ml.data.sources import stdlib_root
from tests.planted_secrets import CASES, Case, render

PLANTED = [(case, ctx) for case in CASES for ctx in case.contexts]


def test_the_planted_set_covers_every_kind() -> None:
    assert len(CASES) >= 25
    assert {c.kind for c in CASES} == set(KINDS)


@pytest.mark.parametrize(("case", "context"), PLANTED, ids=[f"{c.name}-{x}" for c, x in PLANTED])
def test_planted_secret_is_redacted_in_context(case: Case, context: str) -> None:
    path, text = render(case, context)
    assert case.secret in text
    redacted, counts = redact(text, path)
    assert case.secret not in redacted
    assert counts[case.kind] >= 1, dict(counts)
    assert placeholder(case.kind) in redacted
    if path.endswith(".py"):
        ast.parse(redacted)  # only the secret's characters changed: the module still parses


def test_recall_per_kind_is_complete() -> None:
    """The table of docs/secrets.md: per kind, the contexts planted and the share redacted."""
    found: dict[str, list[bool]] = {}
    for case, context in PLANTED:
        path, text = render(case, context)
        redacted, counts = redact(text, path)
        found.setdefault(case.kind, []).append(case.secret not in redacted and counts[case.kind] > 0)
    assert {k: sum(v) / len(v) for k, v in found.items()} == {k: 1.0 for k in found}


def test_only_the_secret_is_replaced() -> None:
    case = next(c for c in CASES if c.kind == "basic_auth")
    text, counts = redact(f'DB = "{case.value}"\n')
    assert text == 'DB = "https://deploy:<SECRET:basic_auth>@db.codex-internal.net/prod"\n'
    assert dict(counts) == {"basic_auth": 1}
    azure = next(c for c in CASES if c.kind == "azure_storage_key")
    text, _ = redact(f'CONN = "{azure.value}"\n')
    assert "AccountKey=<SECRET:azure_storage_key>;EndpointSuffix=core.windows.net" in text
    text, _ = redact('{"password": "correct-horse-battery"}')
    assert text == '{"password": "<SECRET:password>"}'
    text, _ = redact('api_key = "hunter2hunter2"\n')  # the name and the quotes stay
    assert text == 'api_key = "<SECRET:password>"\n'


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "0.0.0.0", "10.1.2.3", "192.168.0.10", "172.16.5.4", "169.254.1.1",
     "192.0.2.15", "198.51.100.7", "203.0.113.9", "100.64.0.1", "224.0.0.251", "8.8.8.8", "1.1.1.1",
     "::1", "fe80::1", "fd12:3456:789a::1", "2001:db8::8a2e:370:7334", "2001:4860:4860::8888"],
)
def test_private_documentation_loopback_and_resolver_addresses_are_kept(address: str) -> None:
    code = f'HOST = "{address}"\n'
    assert redact(code) == (code, {})


@pytest.mark.parametrize(
    ("code", "kind"),
    [('HOST = "93.184.216.34"\n', "ipv4"), ('HOST = "2a00:1450:4001:82a::200e"\n', "ipv6"),
     ("# dns server 1.2.3.4\n", "ipv4")],
)
def test_public_addresses_are_redacted(code: str, kind: str) -> None:
    assert redact(code)[1] == {kind: 1}


@pytest.mark.parametrize(
    "code",
    [
        "password = input('Password: ')\n",  # not a literal
        'password = ""\n',  # empty
        'PASSWORD_PROMPT = "Enter %s password"\n',  # format syntax, spaces
        'secret_key = os.environ["SECRET_KEY"]\n',  # an indirect reference
        'api_key = "${API_KEY}"\n',  # a template
        "@functools.lru_cache(maxsize=None)\ndef f(): pass\n",  # decorator is not an e-mail
        "y = a@b.T\n",  # matrix multiply
        "self.assertEqual(name@domain, 3)\n",
        "token = tokenize.generate_tokens(readline)\n",
        "x = a[1::2] + b[c::d]\n",  # slices are not IPv6
        "__version__ = '1.2.3.4'\nSECTION = '8.2.4.44'\n",  # versions, section numbers
        'SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"\n',  # a hash
        'ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"\n',
        'NAME = "PyErr_SetExcFromWindowsErrWithFilenameObject"\n',  # a long identifier
        'UUID = "123e4567-e89b-12d3-a456-426614174000"\n',
        'MASK = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00"\n',  # multicast-shaped netmask
    ],
)
def test_ordinary_code_is_not_mangled(code: str) -> None:
    assert redact(code) == (code, {})


def test_stdlib_code_without_secrets_is_unchanged() -> None:
    root = stdlib_root()
    for name in ("dataclasses.py", "functools.py", "tokenize.py", "json/decoder.py", "argparse.py"):
        text = (root / name).read_text(encoding="utf-8")
        redacted, counts = redact(text)
        emails = counts.pop("email", 0)
        assert not counts, f"{name}: unexpected redactions {counts}"
        assert redacted.count("<EMAIL>") == emails  # the only change is author addresses


def test_overlapping_findings_count_once_by_priority() -> None:
    """A provider format beats the keyword and entropy rules that also match it."""
    case = next(c for c in CASES if c.kind == "github_token")
    text, counts = redact(f'api_key = "{case.value}"\n')
    assert dict(counts) == {"github_token": 1}
    assert text == 'api_key = "<SECRET:github_token>"\n'


def test_findings_are_sorted_and_disjoint() -> None:
    text = "".join(render(c, "json")[1] for c in CASES if "json" in c.contexts)
    spans = find_secrets(text, "all.json")
    assert spans == sorted(spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_non_ascii_documents_keep_character_offsets() -> None:
    case = next(c for c in CASES if c.kind == "high_entropy")
    text = f'# café — naïve\nblob = "{case.value}"\n'
    redacted, counts = redact(text)
    assert redacted == '# café — naïve\nblob = "<SECRET:high_entropy>"\n'
    assert dict(counts) == {"high_entropy": 1}


def test_pii_can_be_kept_while_keys_are_redacted() -> None:
    """data.redact_pii: false keeps e-mail and IP addresses; every key is still redacted."""
    key = next(c for c in CASES if c.kind == "github_token")
    text = f'TOKEN = "{key.value}"\n# maintainer: jane.doe@codex-example.org, server 52.94.236.248\n'
    both, counts = redact(text, "settings.py")
    assert key.value not in both and "jane.doe@" not in both and "52.94.236.248" not in both
    keys_only, kept = redact(text, "settings.py", pii_too=False)
    assert key.value not in keys_only and dict(kept) == {"github_token": 1}
    assert "jane.doe@codex-example.org" in keys_only and "52.94.236.248" in keys_only
    assert counts["email"] == 1 and counts["ipv4"] == 1
