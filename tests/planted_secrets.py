"""A planted set of credentials and PII, one case per format, built at test time (no real secret is in
the repository: every value comes from a seeded hash, in the provider's documented shape) and
rendered in the syntactic contexts code and config put them in."""

from __future__ import annotations

import base64
import hashlib
import json
import string
from dataclasses import dataclass

ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "_-"


def rand(alphabet: str, n: int, salt: str) -> str:
    """`n` characters of `alphabet` from a seeded hash stream: deterministic, random-looking, and
    (for alphabets with them) holding digits, lower and upper case."""
    out: list[str] = []
    counter = 0
    while len(out) < n:
        block = hashlib.sha256(f"{salt}:{counter}".encode()).digest()
        out.extend(alphabet[b % len(alphabet)] for b in block)
        counter += 1
    value = "".join(out[:n])
    if alphabet in (ALNUM, B64URL):  # guarantee all three classes, as real keys have
        value = "aZ7" + value[3:]
    return value


def _b64url(obj: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


@dataclass(frozen=True)
class Case:
    name: str  # the planted case
    kind: str  # the kind it must be counted as
    value: str  # what is written into the file
    secret: str  # what must not survive redaction (the value, or the part of it that is secret)
    key: str = "setting"  # the name it is assigned to
    contexts: tuple[str, ...] = ("assignment", "dict", "comment", "docstring", "url", "yaml", "json",
                                 "env")


_PEM_BODY = "\n".join(rand(ALNUM + "+/", 64, f"pem{i}") for i in range(4))
_PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{_PEM_BODY}\n-----END RSA PRIVATE KEY-----"
_PW = rand(ALNUM, 16, "basic")
_QUOTED_ONLY = ("assignment", "dict", "yaml", "json", "env")

CASES: tuple[Case, ...] = (
    Case("aws_access_key_id", "aws_key", v := "AKIA" + rand(string.ascii_uppercase + string.digits, 16,
                                                            "aws"), v),
    Case("aws_secret_access_key", "aws_secret_key", v := rand(ALNUM + "/+", 40, "awss"), v,
         key="aws_secret_access_key", contexts=("assignment", "dict", "comment", "url", "yaml", "json",
                                                "env")),
    Case("azure_storage_connection_string", "azure_storage_key",
         "DefaultEndpointsProtocol=https;AccountName=codexdata;AccountKey="
         + (k := rand(ALNUM + "+/", 86, "azure") + "==") + ";EndpointSuffix=core.windows.net", k),
    Case("gcp_api_key", "gcp_api_key", v := "AIza" + rand(B64URL, 35, "gcp"), v),
    Case("github_classic_pat", "github_token", v := "ghp_" + rand(ALNUM, 36, "gh"), v),
    Case("github_fine_grained_pat", "github_token", v := "github_pat_" + rand(ALNUM + "_", 82, "ghf"), v),
    Case("gitlab_pat", "gitlab_token", v := "glpat-" + rand(ALNUM, 20, "gl"), v),
    Case("slack_bot_token", "slack_token",
         v := f"xoxb-{rand(string.digits, 12, 's1')}-{rand(string.digits, 13, 's2')}-"
              f"{rand(string.ascii_lowercase + string.digits, 24, 's3')}", v),
    Case("slack_webhook", "slack_webhook",
         v := f"https://hooks.slack.com/services/T{rand(ALNUM, 8, 'w1')}/B{rand(ALNUM, 8, 'w2')}/"
              f"{rand(ALNUM, 24, 'w3')}", v),
    Case("stripe_live_key", "stripe_key", v := "sk_live_" + rand(ALNUM, 24, "stripe"), v),
    Case("twilio_api_key", "twilio_key", v := "SK" + rand("0123456789abcdef", 32, "twilio"), v),
    Case("sendgrid_key", "sendgrid_key",
         v := f"SG.{rand(B64URL, 22, 'sg1')}.{rand(B64URL, 43, 'sg2')}", v),
    Case("npm_token", "npm_token", v := "npm_" + rand(ALNUM, 36, "npm"), v),
    Case("pypi_token", "pypi_token", v := "pypi-AgEIcHlwaS5vcmc" + rand(B64URL, 80, "pypi"), v),
    Case("jwt", "jwt", v := _b64url({"alg": "HS256", "typ": "JWT"}) + "."
         + _b64url({"sub": "1234567890", "name": "codex"}) + "." + rand(B64URL, 43, "jwt"), v),
    Case("openai_project_key", "openai_key", v := "sk-proj-" + rand(B64URL, 56, "openai"), v),
    Case("anthropic_key", "anthropic_key", v := "sk-ant-api03-" + rand(B64URL, 93, "anthropic"), v),
    Case("huggingface_token", "huggingface_token", v := "hf_" + rand(string.ascii_letters, 34, "hf"), v),
    Case("mailchimp_key", "mailchimp_key",
         v := rand(string.ascii_lowercase + string.digits, 32, "mc") + "-us12", v),
    Case("square_oauth_secret", "square_oauth", v := "sq0csp-" + rand(B64URL, 43, "square"), v),
    Case("basic_auth_url", "basic_auth", f"https://deploy:{_PW}@db.codex-internal.net/prod", _PW,
         contexts=("assignment", "dict", "comment", "docstring", "yaml", "json", "env")),
    Case("password_assignment", "password", v := rand(ALNUM, 16, "pw"), v, key="db_password",
         contexts=_QUOTED_ONLY),
    Case("api_token_assignment", "password", v := rand(ALNUM, 20, "tok"), v, key="api_token",
         contexts=_QUOTED_ONLY),
    Case("high_entropy_string", "high_entropy", v := rand(ALNUM + "+/", 40, "entropy"), v, key="blob",
         contexts=_QUOTED_ONLY),
    Case("private_key_pem", "private_key", _PEM, _PEM_BODY.split("\n")[1],
         contexts=("assignment", "yaml", "json")),
    Case("gcp_service_account", "private_key",
         _PEM.replace("RSA PRIVATE", "PRIVATE"), _PEM_BODY.split("\n")[2], key="private_key",
         contexts=("json",)),
    Case("email", "email", v := "jane.doe+code@corp-mail.com", v),
    Case("ipv4_public", "ipv4", v := "93.184.216.34", v),
    Case("ipv6_public", "ipv6", v := "2a00:1450:4001:82a::200e", v),
)


def render(case: Case, context: str) -> tuple[str, str]:
    """(file name, text) of `case` written in `context`."""
    key, value = case.key, case.value
    multiline = "\n" in value
    if context == "assignment":
        quote = '"""' if multiline else '"'
        return "settings.py", f"import os\n\n{key} = {quote}{value}{quote}\nDEBUG = False\n"
    if context == "dict":
        return "settings.py", f'CONFIG = {{\n    "{key}": "{value}",\n    "debug": False,\n}}\n'
    if context == "comment":
        return "client.py", f"# {key}: {value}\ndef connect():\n    return None\n"
    if context == "docstring":
        return "client.py", (f'def connect():\n    """Connect to the service.\n\n    Example: {value}\n'
                             f'    """\n    return None\n')
    if context == "url":
        return "client.py", (f'import urllib.request\n\nURL = "https://api.codex-internal.net/v1/items'
                             f'?{key}={value}&page=2"\n')
    if context == "yaml":
        if multiline:
            body = "\n".join("  " + line for line in value.split("\n"))
            return "config.yaml", f"service:\n  name: api\n{key}: |\n{body}\nport: 8080\n"
        return "config.yaml", f"service:\n  name: api\n  {key}: {value}\n  port: 8080\n"
    if context == "json":
        fields: dict[str, object] = {"type": "service_account", "project_id": "codex", key: value,
                                     "port": 8080}
        return "config.json", json.dumps(fields, indent=2) + "\n"
    if context == "env":
        return ".env", f"APP_NAME=codex\n{key.upper()}={value}\nPORT=8080\n"
    raise ValueError(f"unknown context {context!r}")


def planted_line(case: Case) -> str:
    """One line of Python holding the case (the assignment context), for the prepare tests."""
    return render(case, "assignment")[1].split("\n", 2)[2].replace("DEBUG = False\n", "")


# One planted example of every kind, as a line of Python (the assignment context): kind -> (line, secret)
PLANTED_SECRETS: dict[str, tuple[str, str]] = {}
for _case in CASES:
    if _case.kind not in PLANTED_SECRETS and "assignment" in _case.contexts:
        PLANTED_SECRETS[_case.kind] = (planted_line(_case), _case.secret)
PLANTED = {kind: line for kind, (line, _) in PLANTED_SECRETS.items()}
