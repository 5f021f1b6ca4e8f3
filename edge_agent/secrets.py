"""Secret values: masked in repr, and scrubbed from every log line the agent writes."""

from __future__ import annotations

import logging

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


class RedactingFilter(logging.Filter):
    """Applied to the agent's handler: a secret that slips into a message is replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
