"""Credentials in prompts → `SECRET` (passwords, keys, tokens) and `USERNAME` (the account they open).

People paste code and configuration into chats: `password = "Beltline@1221"`, `OPENAI_API_KEY=sk-…`,
`postgresql://admin:hunter2@db/prod`, a PEM private key. None of Presidio's recognizers covers these, and
a leaked credential is worse than a leaked name: it opens an account. Two kinds of evidence are used:

- the value's own format, for issuers that prefix their tokens (OpenAI `sk-`, AWS `AKIA`, GitHub `ghp_`,
  Slack `xox?-`, Google `AIza`, Stripe `sk_live_`, JSON Web Tokens, PEM private-key blocks);
- the name it is assigned to (`password`, `secret`, `token`, `api_key`, … and `user`/`username`/`login`),
  in code (`name = "value"`, `"name": "value"`), in env files (`NAME=value`) and in URLs
  (`scheme://user:password@host`); for one-time codes and client or session ids (`code=`, `client_id=`,
  `session_id`) only a long opaque value. Only the value is reported, so the code around it still reads.

On by default (`detection.secrets`); the values are high-precision shapes, so the cost on ordinary
prose is nil.
"""

from __future__ import annotations

import re

from sanitizers.types import Detection

__all__ = ["find_secrets"]

RECOGNIZER = "SecretRecognizer"

# Issuer formats: the value alone says what it is.
_TOKEN_FORMATS = re.compile(
    r"(?<![\w-])(?:"
    r"sk-(?:proj-|ant-|live-)?[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}"  # GitHub
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JSON Web Token
    r")(?![\w-])"
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)", re.DOTALL
)

_SECRET_NAMES = (
    r"pass(?:word|wd|phrase)?|pwd|secret|client_?secret|token|access_?token|refresh_?token|auth_?token"
    r"|api_?key|apikey|access_?key|secret_?key|private_?key|credentials?"
)
_USER_NAMES = r"user(?:_?name)?|login|user_?id|account"
# `name = "value"`, `"name": "value"`, `name: 'value'`: the name may carry a prefix or suffix
# (`db_password`, `uhaul_password`, `SMTP_PASSWORD`), the value is quoted.
_QUOTED_ASSIGNMENT = re.compile(
    rf"(?i)(?<![A-Za-z])(?:[A-Za-z0-9]+[_-])*(?P<name>{_SECRET_NAMES}|{_USER_NAMES})(?:[_-][A-Za-z0-9]+)*[\"']?"
    r"\s{0,3}(?::=|=|:|=>)\s{0,3}[rbfu]?[\"'“”](?P<value>[^\"'“”\s]{3,200})[\"'“”]"
)
# `NAME=value` in env files and shells: the name ends in the secret word (`DB_PASSWORD`, `GITHUB_TOKEN`;
# not `TOKEN_LIMIT`), the value is unquoted up to white space.
_ENV_ASSIGNMENT = re.compile(
    rf"(?<![A-Za-z0-9_])(?:[A-Z0-9]+_)*(?P<name>(?i:{_SECRET_NAMES}|{_USER_NAMES}))"
    r"=(?P<value>[^\s\"'`;|$]{3,200})"
)
# `Password: hunter2!` in prose or YAML: secret names only ("User: hello" starts chat transcripts), and
# the value must look like a password (a digit or a symbol in it), so "Secret: the key is…" stays.
_LABELLED = re.compile(
    rf"(?i)(?<![A-Za-z])(?P<name>{_SECRET_NAMES})\s{{0,3}}[:=]\s{{0,3}}(?P<value>(?=[^\s\"']*[\d@#$%^&*!?])[^\s\"',;]{{3,200}})"
)
# One-time codes and client or session ids (`code=1000.dd7e…`, `client_id=…`, `"session_id": "…"`): the
# names are common words, so only long opaque values (letters and digits, 16+ characters) count.
_OPAQUE_ASSIGNMENT = re.compile(
    r"(?i)(?<![a-z0-9_])(?P<name>client_?id|(?:auth(?:orization)?_?)?code|session_?id|sid|nonce|state|sig(?:nature)?)"
    r"[\"']?\s{0,3}[:=]\s{0,3}[\"']?(?P<value>(?=[^\s\"'&]*\d)(?=[^\s\"'&]*[a-z])[a-z0-9._~+/=-]{16,512})"
)
_URL_CREDENTIALS = re.compile(
    r"(?i)\b[a-z][a-z0-9+.-]{1,20}://(?P<user>[^\s:/@\"'<>]{1,64}):(?P<password>[^\s/@\"'<>]{1,128})@"
)
_USER = re.compile(rf"(?i)^(?:{_USER_NAMES})$")
# Values that stand for a secret kept elsewhere are not secrets themselves: placeholders, templates and
# look-ups (`<token>`, `${TOKEN}`, `{{ token }}`, `os.environ[...]`, `your_password`, `****`).
_NOT_A_VALUE = re.compile(
    r"(?i)^(?:none|null|nil|true|false|undefined|\*+|x+|\.+|<[^>]*>?|\$.*|%\(?\w+\)?s?|\{.*"
    r"|env(?:iron)?\b.*|os\.\w+.*|process\.env.*|getenv.*|your[_-]\w+)$"
)


# Substrings each family cannot match without, checked first: most prompts hold none of them, and a
# plain `in` costs far less than running the regexes over the text (see _patterns_to_run).
_TOKEN_PREFIXES = ("sk-", "sk_", "rk_", "pk_", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
                   "xox", "AIza", "glpat-", "hf_", "eyJ")
_SECRET_STEMS = ("pass", "pwd", "secret", "token", "key", "credential")
_USER_STEMS = ("user", "login", "account")
_OPAQUE_STEMS = ("client", "code", "session", "sid", "nonce", "state", "sig")


def _patterns_to_run(text: str) -> list[re.Pattern[str]]:
    """The assignment patterns whose name stems occur in `text` (all of them need an '=' or a ':')."""
    if "=" not in text and ":" not in text:
        return []
    lowered = text.lower()
    secret = any(stem in lowered for stem in _SECRET_STEMS)
    named = secret or any(stem in lowered for stem in _USER_STEMS)
    patterns = [_QUOTED_ASSIGNMENT, _ENV_ASSIGNMENT] if named else []
    if secret:
        patterns.append(_LABELLED)
    if any(stem in lowered for stem in _OPAQUE_STEMS):
        patterns.append(_OPAQUE_ASSIGNMENT)
    return patterns


def _value(kind: str, start: int, end: int, value: str) -> Detection | None:
    if _NOT_A_VALUE.match(value):
        return None
    return Detection(kind, start, end, 0.8, RECOGNIZER)


def find_secrets(text: str) -> list[Detection]:
    if not text:
        return []
    found: dict[tuple[int, int], Detection] = {}
    if any(prefix in text for prefix in _TOKEN_PREFIXES):
        for match in _TOKEN_FORMATS.finditer(text):
            found[match.span()] = Detection("SECRET", match.start(), match.end(), 0.9, RECOGNIZER)
    if "PRIVATE KEY-----" in text:
        for match in _PRIVATE_KEY.finditer(text):
            found[match.span()] = Detection("SECRET", match.start(), match.end(), 0.95, RECOGNIZER)
    for pattern in _patterns_to_run(text):
        for match in pattern.finditer(text):
            kind = "USERNAME" if _USER.match(match.group("name")) else "SECRET"
            detection = _value(kind, match.start("value"), match.end("value"), match.group("value"))
            if detection is not None:
                found.setdefault(match.span("value"), detection)
    for match in _URL_CREDENTIALS.finditer(text) if "://" in text and "@" in text else ():
        for group, kind in (("user", "USERNAME"), ("password", "SECRET")):
            detection = _value(kind, match.start(group), match.end(group), match.group(group))
            if detection is not None:
                found.setdefault(match.span(group), detection)
    return list(found.values())
