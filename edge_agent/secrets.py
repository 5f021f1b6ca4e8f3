"""Secret values: masked in repr, and scrubbed from every log line the agent writes."""

from __future__ import annotations

import logging
from urllib.parse import unquote, urlsplit, urlunsplit

_KNOWN: set[str] = set()


class Secret(str):
    """A string that never shows itself in repr/format of containers or logs."""

    def __new__(cls, value: str) -> Secret:
        if value:
            _KNOWN.add(value)
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return "Secret('***')"


def redact(text: str) -> str:
    for value in sorted(_KNOWN, key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


def split_userinfo(url: str) -> tuple[str, str | None]:
    """`http://user:pw@host/p` -> (`http://host/p`, `user:pw`); the password becomes a Secret,
    so the log filter scrubs it wherever else it turns up (an error text, a traceback line)."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    password = userinfo.partition(":")[2]
    for form in {password, unquote(password)} - {""}:
        Secret(form)
    return urlunsplit(parts._replace(netloc=host)), userinfo


def redact_url(url: str) -> str:
    """A URL as the agent prints or logs it: any user-info becomes `***`."""
    bare, userinfo = split_userinfo(url)
    if userinfo is None:
        return url
    parts = urlsplit(bare)
    return urlunsplit(parts._replace(netloc=f"***@{parts.netloc}"))


class RedactingFilter(logging.Filter):
    """Applied to the agent's handler: a secret that slips into a message is replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
