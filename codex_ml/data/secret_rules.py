"""The secret detectors: which credential formats are recognised, from which maintained rule, and the
cheap literal each one needs to be present before it is run.

Why detect-secrets (Yelp, on PyPI) rather than a gitleaks-style rule set: it is what BigCode's PII
pipeline for The Stack used, it is a Python library (no Go binary to ship, no subprocess per document,
nothing to download at run time), its provider plugins are maintained upstream with tests, and its
heuristics (sequential strings, UUIDs, templated values, indirect references) are the precision filters
a code corpus needs. gitleaks' ~200 TOML rules are broader, but they are written for Go's RE2, come with
a binary we would have to pin per platform, and using them from Python means porting and re-testing each
one by hand -- a fork, not a dependency. So the regexes here are detect-secrets' own (`denylist`
attributes of its plugin classes, imported, never copied); what detect-secrets lacks (GCP API keys,
Anthropic and Hugging Face tokens, OpenAI's project keys, GitHub fine-grained PATs, bare npm tokens, an
AWS secret key in an unquoted `.env` line) is added below in detect-secrets' own plugin form
(`RegexBasedDetector` subclasses), each with the format it is taken from (gitleaks' rule of the same
name, or the provider's documentation).

We call the plugins' regexes ourselves instead of `detect_secrets.core.scan`: the scan API runs every
plugin on every line (0.3 MB/s on the stdlib), reads global settings, and with the
verification filter enabled its plugins make network calls. Here each rule runs only on the lines
that hold one of its `anchors` (a C-speed substring test), and the value is taken from the match span
(`group`), so `https://user:<SECRET:basic_auth>@host` keeps its user and host.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from detect_secrets.plugins import (
    aws,
    azure_storage_key,
    basic_auth,
    github_token,
    gitlab_token,
    jwt,
    mailchimp,
    npm,
    openai,
    pypi_token,
    sendgrid,
    slack,
    square_oauth,
    stripe,
    twilio,
)
from detect_secrets.plugins.base import RegexBasedDetector


@dataclass(frozen=True)
class Rule:
    kind: str
    regexes: tuple[re.Pattern[str], ...]
    anchors: tuple[str, ...]  # the rule can only match on a line holding one of these
    group: int = 0  # which group of a match is the secret (0: all of it)
    lowercase_anchors: bool = False  # anchors are looked up in the lower-cased text
    valid: Callable[[str], bool] | None = None  # a further check on the value
    prefilter: re.Pattern[str] | None = None  # candidate lines from this regex instead of anchors
    # Whether every match lies inside a run of 20+ base64 characters (secrets.py looks for the anchors
    # in those runs, ~4% of a code corpus, instead of the whole text); False for formats with dots,
    # short values or anchors outside the value.
    in_runs: bool = True


# Formats detect-secrets 1.5 lacks, as detect-secrets plugins.
class GcpApiKeyDetector(RegexBasedDetector):
    """Google Cloud / Firebase API keys (gitleaks `gcp-api-key`)."""
    secret_type = "GCP API Key"
    denylist = (re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),)


class AnthropicKeyDetector(RegexBasedDetector):
    """Anthropic API and admin keys (gitleaks `anthropic-api-key`, `anthropic-admin-api-key`)."""
    secret_type = "Anthropic API Key"
    denylist = (re.compile(r"\bsk-ant-(?:api|admin)\d\d-[A-Za-z0-9_-]{80,}"),)


class OpenAIProjectKeyDetector(RegexBasedDetector):
    """OpenAI's current key formats (`sk-proj-`, `sk-svcacct-`, `sk-admin-`); detect-secrets knows only
    the legacy `...T3BlbkFJ...` shape."""
    secret_type = "OpenAI Token"
    denylist = (re.compile(r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}"),)


class HuggingFaceTokenDetector(RegexBasedDetector):
    """Hugging Face user and organisation tokens (gitleaks `huggingface-access-token`)."""
    secret_type = "Hugging Face Token"
    denylist = (re.compile(r"\b(?:hf|api_org)_[A-Za-z]{34}(?![A-Za-z0-9_])"),)


class GitHubFineGrainedTokenDetector(RegexBasedDetector):
    """GitHub fine-grained personal access tokens (gitleaks `github-fine-grained-pat`)."""
    secret_type = "GitHub Token"
    denylist = (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{82}(?![A-Za-z0-9_])"),)


class NpmBareTokenDetector(RegexBasedDetector):
    """npm access tokens outside an `.npmrc` line (gitleaks `npm-access-token`)."""
    secret_type = "NPM tokens"
    denylist = (re.compile(r"\bnpm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),)


class AwsSecretKeyUnquotedDetector(RegexBasedDetector):
    """An AWS secret access key under its usual name without quotes (`.env`, YAML, INI); detect-secrets'
    own AWS rule requires quotes."""
    secret_type = "AWS Access Key"
    denylist = (re.compile(r"(?i:aws_?secret_?(?:access_?)?key)[\"']?\s*[:=]\s*"
                           r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"),)


def _jwt_valid(value: str) -> bool:
    return bool(jwt.JwtTokenDetector.is_formally_valid(value))


def _slack_valid(value: str) -> bool:
    return len(value) >= 20  # `xoxb-1-a` style fragments in docs are not tokens


def _twilio_valid(value: str) -> bool:
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value[2:])


_AWS_ID, _AWS_SECRET = aws.AWSKeyDetector.denylist
_SLACK_TOKEN, _SLACK_WEBHOOK = slack.SlackDetector.denylist
_AWS_ID_PREFIXES = ("AKIA", "ASIA", "ABIA", "ACCA", "A3T")
_GITLAB_PREFIXES = ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "GR1348941", "glcbt-", "glimt-",
                    "glptt-", "glagent-", "gloas-")

# Provider rules. Twilio's prefixes ("AC", "SK") are in every other line of English, so its candidates
# come from a prefilter regex run on the base64 runs. Order is priority where two rules claim
# overlapping text (the more specific format first); the keyword and high-entropy rules (secrets.py)
# come after all of these.
PROVIDER_RULES: tuple[Rule, ...] = (
    Rule("aws_key", (_AWS_ID,), _AWS_ID_PREFIXES),
    Rule("aws_secret_key", (_AWS_SECRET, *AwsSecretKeyUnquotedDetector.denylist), ("aws",), group=1,
         lowercase_anchors=True, in_runs=False),
    Rule("azure_storage_key", tuple(azure_storage_key.AzureStorageKeyDetector.denylist),
         ("AccountKey=",)),
    Rule("gcp_api_key", GcpApiKeyDetector.denylist, ("AIza",)),
    Rule("github_token", (*github_token.GitHubTokenDetector.denylist,
                          *GitHubFineGrainedTokenDetector.denylist),
         ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    Rule("gitlab_token", tuple(gitlab_token.GitLabTokenDetector.denylist), _GITLAB_PREFIXES),
    Rule("slack_webhook", (_SLACK_WEBHOOK,), ("hooks.slack.com",), in_runs=False),
    Rule("slack_token", (_SLACK_TOKEN,), ("xox",), lowercase_anchors=True, valid=_slack_valid),
    Rule("stripe_key", tuple(stripe.StripeDetector.denylist), ("sk_live_", "rk_live_")),
    Rule("twilio_key", tuple(twilio.TwilioKeyDetector.denylist), (), valid=_twilio_valid,
         prefilter=re.compile(r"(?:AC|SK)[0-9a-z]{32}")),
    Rule("sendgrid_key", tuple(sendgrid.SendGridDetector.denylist), ("SG.",), in_runs=False),
    Rule("npm_token", tuple(npm.NpmDetector.denylist), ("_authToken",), group=1),
    Rule("npm_token", NpmBareTokenDetector.denylist, ("npm_",)),
    Rule("pypi_token", tuple(pypi_token.PypiTokenDetector.denylist), ("pypi-AgE",)),
    Rule("jwt", tuple(jwt.JwtTokenDetector.denylist), ("eyJ",), valid=_jwt_valid, in_runs=False),
    Rule("anthropic_key", AnthropicKeyDetector.denylist, ("sk-ant-",)),
    Rule("openai_key", (*OpenAIProjectKeyDetector.denylist, *openai.OpenAIDetector.denylist),
         ("sk-",)),
    Rule("huggingface_token", HuggingFaceTokenDetector.denylist, ("hf_", "api_org_")),
    Rule("mailchimp_key", tuple(mailchimp.MailchimpDetector.denylist), ("-us",)),
    Rule("square_oauth", tuple(square_oauth.SquareOAuthDetector.denylist), ("sq0csp-",)),
    Rule("basic_auth", tuple(basic_auth.BasicAuthDetector.denylist), ("://",), group=1, in_runs=False),
)

# Private keys span lines (or sit in one JSON string with `\n` escapes, as in a GCP service-account
# file): detect-secrets' PrivateKeyDetector spots the header, this takes the whole block.
PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"|PuTTY-User-Key-File-\d:[\s\S]*?Private-MAC: [0-9a-f]+")
PRIVATE_KEY_ANCHORS = ("PRIVATE KEY", "PuTTY-User-Key-File")
