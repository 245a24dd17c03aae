"""What a run says while it works: a live board on a terminal, plain lines in a
log file, JSON lines for cron and log collectors. Secrets never get through.

Every line goes through one stdlib ``logging`` logger (logs.py): the style only
picks the formatter, and on a terminal the handler prints above the board.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any, Iterable, Sequence, TextIO

from ..logs import StreamHandler, emit, make_logger
from .board import COLUMN, Board, BoardShot, LiveBoard

__all__ = ["Log", "BoardShot", "new_run_id"]


def new_run_id() -> str:
    """A run's id: the ledger, the report folder and every log line carry it."""
    return uuid.uuid4().hex[:12]


class Log:
    """Writes run events; ``style`` is "tty", "plain" or "json"."""

    def __init__(self, style: str = "plain", stream: TextIO | None = None, secrets: Iterable[str] = (), run_id: str | None = None):
        self.style = style
        self.stream = stream or sys.stderr
        self.run_id = run_id or new_run_id()
        self.logger, self._handler, self._redact = make_logger(self.stream, style == "json", secrets)
        self.board = Board()
        self._live: LiveBoard | None = None
        if style == "tty":
            self._live = LiveBoard(self.stream, self.board)
            self._handler.write = self._live.line

    @property
    def secrets(self) -> list[str]:
        return self._redact.secrets

    @property
    def columns(self) -> dict[str, str]:
        """Each shot's column on the board, for shots the run has heard of."""
        return {key: row.state for key, row in self.board.rows.items() if row.state != "queued"}

    @property
    def handler(self) -> StreamHandler:
        return self._handler

    def redacting(self, secrets: Iterable[str]) -> Log:
        """This log, keeping these secrets out too (the keys are known once the providers are).
        The same log, board and stream: only the filter learns the new secrets."""
        self._redact.secrets.extend(s for s in secrets if s and s not in self._redact.secrets)
        return self

    def expect(self, total: int, shots: Sequence[BoardShot] = ()) -> None:
        """How many shots the run carries (those not yet in a column are queued), and
        what the board shows of each before it starts."""
        self.board.expect(total, tuple(shots))

    def spend_limit(self, money: float | None, currency: str | None) -> None:
        """The budget the board shows spend against."""
        self.board.budget, self.board.currency = money, currency

    @classmethod
    def choose(cls, log_format: str | None, stream: TextIO | None = None, secrets: Iterable[str] = (), run_id: str | None = None) -> Log:
        stream = stream or sys.stderr
        style = log_format or "tty"
        if style == "tty" and not _terminal(stream):
            style = "plain"  # the board only on a terminal that can draw it: a file or pipe gets plain lines
        return cls(style, stream, secrets, run_id)

    def redact(self, text: str) -> str:
        return str(self._redact.scrub(text))

    def event(self, key: str, what: str, **fields: Any) -> None:
        """Something happened to one shot; ``fields`` with None are left out."""
        if fields.get("cost") is not None and self.board.currency:
            fields.setdefault("currency", self.board.currency)
        if what in COLUMN or key in self.board.rows:
            self.board.event(key, what, fields)
        emit(self.logger, _level(what), what, run_id=self.run_id, shot=key, fields=fields)

    def note(self, message: str, event: str = "note", level: str = "info", **fields: Any) -> None:
        """A line about the run itself, not one shot."""
        emit(self.logger, level, event, message, run_id=self.run_id, fields=fields)

    def tick(self) -> None:
        """Redraw the board (the clock moves between events too)."""
        if self._live is not None:
            self._live.draw()

    def finish(self) -> None:
        """Take the board down: no line left behind, the cursor shown again."""
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()
            self._handler.write = self._handler.write_plain  # what follows (the summary) prints as plain lines


def _terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except ValueError:  # a closed stream
        return False


def _level(event: str) -> str:
    """A shot's event as a log level: a person looks at failures and stalls."""
    column = COLUMN.get(event)
    if column == "failed":
        return "error"
    if column == "stalled" or event.startswith("failed") or event in ("taken over", "ambiguous submit"):
        return "warning"
    return "info"
