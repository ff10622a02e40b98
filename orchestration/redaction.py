"""Credentials out of every message: one helper for errors, logs and metadata that may hold a URL
or a DSN (issue 14: a password inside the webhook URL was echoed in errors).

`redact(text)` cuts, anywhere in free text:

* the userinfo of a URL: `https://user:secret@host/path` -> `https://***@host/path` (any scheme:
  http(s), postgresql, s3, ...);
* the value of a secret-named query or keyword parameter: `?token=...`, `&sig=...`, `key=`,
  `api_key=`, `password=`, `X-Amz-Signature=` ... -> `token=***` (URLs, libpq keyword DSNs,
  `key: value` pairs alike);
* any of the `secrets` given (the webhook's signing secret, a DSN's password), wherever it is.

`redact_url(url)` is the same for one URL; `RedactingFilter` applies it to a library's log
records (httpx logs every request's URL at INFO).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

MASK = "***"

# scheme://userinfo@ : userinfo is anything up to the first @ that is not a path, query or space
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#@\s\"'<>]*)@")
_SECRET_NAMES = (
    r"(?:[A-Za-z0-9_\-]*(?:token|secret|passw(?:or)?d|passwd|pwd|api[_\-]?key|apikey|access[_\-]?key"
    r"|private[_\-]?key|client[_\-]?secret|signature|credential))"
    r"|key|sig|pass|x-amz-signature|x-amz-credential|x-amz-security-token"
)
_SECRET_NAME = re.compile(_SECRET_NAMES, re.IGNORECASE)
# name=value in a query string or a keyword DSN; name: value / name = value in free text
_PARAM = re.compile(
    rf"(?P<name>(?<![A-Za-z0-9_\-])(?:{_SECRET_NAMES}))(?P<sep>\s*[=:]\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s&;,#'\"<>)\]}]+)",
    re.IGNORECASE,
)


def redact(text: object, secrets: Iterable[str | None] = ()) -> str:
    """`text` (anything: str() of it) with URL userinfo, secret-named parameters and the given
    `secrets` replaced by '***'."""
    out = str(text)
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        out = out.replace(secret, MASK)
    out = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", out)
    return _PARAM.sub(_param, out)


def _param(m: re.Match[str]) -> str:
    if m.group("sep").strip() == ":" and m.group("value").startswith("//"):
        return m.group(0)  # 'key://...' is a URL scheme, not a 'key: value' pair
    return f"{m.group('name')}{m.group('sep')}{MASK}"


def url_secrets(url: str) -> list[str]:
    """The secrets inside one URL, to be cut wherever else they appear: the userinfo's password
    (or a lone user, usually a token: https://TOKEN@host) and secret-named query values."""
    try:
        parts = urlsplit(url)
        password, username = parts.password, parts.username
    except ValueError:  # not a URL urllib can split: the patterns of `redact` still apply
        return []
    found = [password] if password is not None else [username]
    found += [v for k, v in parse_qsl(parts.query) if _SECRET_NAME.fullmatch(k)]
    return [s for s in found if s]


def redact_url(url: object, secrets: Iterable[str | None] = ()) -> str:
    """One URL (or DSN) fit for a message: userinfo and secret parameters cut."""
    return redact(url, secrets)


class RedactingFilter(logging.Filter):
    """A logging filter rewriting each record's message through `redact` (formatted once, the
    arguments dropped): installed on a library's logger, its URLs never reach a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error path
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_installed: set[str] = set()


def redact_logger(name: str) -> None:
    """Install RedactingFilter on logger `name` once (idempotent)."""
    if name not in _installed:
        logging.getLogger(name).addFilter(RedactingFilter())
        _installed.add(name)
