"""The one path for what r2v says on stderr: stdlib ``logging`` records, written as
JSON lines (for cron and log shippers) or as plain lines (for people).

A record carries its event name, level, the run's id, the shot's key and fields
(billed seconds, cost, a task id...). Secrets are taken out by a filter on the
logger, before any handler or formatter sees the record. Nothing here imports
more than the standard library: ``r2v --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone, tzinfo
from typing import Any, Callable, Iterable, Mapping, TextIO

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_NAMES = {number: name for name, number in LEVELS.items()}


def level_name(record: logging.LogRecord) -> str:
    return _NAMES.get(record.levelno, record.levelname.lower())


_ZONE: list[tzinfo] = [timezone.utc]  # JSON lines' zone: UTC unless a log time zone is set


def use_time_zone(name: str) -> None:
    """JSON lines in this IANA zone (with its offset), as --log-timezone / R2V_LOG_TIMEZONE ask."""
    from zoneinfo import ZoneInfo  # only when a zone is given

    _ZONE[0] = ZoneInfo(name)


def timestamp(record: logging.LogRecord) -> str:
    """ISO 8601 with milliseconds and the offset (UTC unless a zone is set): log shippers parse it as it is."""
    return datetime.fromtimestamp(record.created, _ZONE[0]).isoformat(timespec="milliseconds")


def _plain_value(value: Any) -> Any:
    """A field as JSON keeps it: numbers and flags as they are, anything else as text."""
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, event, run id, shot key (null when the line
    is about the run itself), the message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": timestamp(record),
            "level": level_name(record),
            "event": getattr(record, "event", "note"),
            "run_id": getattr(record, "run_id", None),
            "shot": getattr(record, "shot", None),
        }
        message = record.getMessage()
        if message:
            line["message"] = message
        for name, value in getattr(record, "fields", {}).items():
            line.setdefault(name, _plain_value(value))
        return json.dumps(line, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """For people: ``HH:MM:SS key event k=v…`` for a shot, the message alone for the run."""

    def format(self, record: logging.LogRecord) -> str:
        shot = getattr(record, "shot", None)
        if shot is None:
            return record.getMessage()
        fields = getattr(record, "fields", {})
        text = " ".join(f"{k}={v}" for k, v in fields.items())
        clock = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        return f"{clock} {shot} {getattr(record, 'event', '')}" + (f" {text}" if text else "")


class Redact(logging.Filter):
    """Keeps the given secrets out of a record's message and fields."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def scrub(self, value: Any) -> Any:
        if not isinstance(value, str):
            if isinstance(value, (bool, int, float)) or value is None:
                return value
            value = str(value)
        for secret in self.secrets:
            value = value.replace(secret, "***")
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.scrub(record.getMessage())
        record.args = None
        fields = getattr(record, "fields", None)
        if fields is not None:
            setattr(record, "fields", {k: self.scrub(v) for k, v in fields.items()})
        return True


class StreamHandler(logging.Handler):
    """Writes each formatted record to a stream; ``write`` may be replaced (the live
    board prints lines above itself)."""

    def __init__(self, stream: TextIO, formatter: logging.Formatter):
        super().__init__()
        self.stream = stream
        self.setFormatter(formatter)
        self.write: Callable[[str], None] = self.write_plain

    def write_plain(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write(self.format(record))
        except BrokenPipeError:
            raise
        except Exception:  # a log line must never end a paid run
            self.handleError(record)


def make_logger(stream: TextIO, json_lines: bool, secrets: Iterable[str] = ()) -> tuple[logging.Logger, StreamHandler, Redact]:
    """A logger of its own (not in logging's global registry: two runs in one process
    never share handlers), named ``r2v`` so a host application recognises it."""
    logger = logging.Logger("r2v", logging.DEBUG)
    redact = Redact(secrets)
    logger.addFilter(redact)
    handler = StreamHandler(stream, JsonFormatter() if json_lines else PlainFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    return logger, handler, redact


def emit(
    logger: logging.Logger, level: str, event: str, message: str = "", *,
    run_id: str | None = None, shot: str | None = None, fields: Mapping[str, Any] | None = None,
) -> None:
    """One record; ``fields`` (None values left out) may hold a field named "message" too."""
    kept = {k: v for k, v in (fields or {}).items() if v is not None}
    logger.log(LEVELS.get(level, logging.INFO), "%s", message, extra={"event": event, "run_id": run_id, "shot": shot, "fields": kept})

