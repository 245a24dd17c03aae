"""What a run says while it works: a live board on a terminal, plain lines in a
log file, JSON lines for cron and log collectors. Secrets never get through."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterable, TextIO

# Events that change which column of the board a shot is in.
_COLUMN = {
    "submitted": "running",
    "reconciled": "running",
    "succeeded": "fetching",
    "downloaded": "done",
    "copied": "done",
    "reused": "done",
    "failed": "failed",
    "refused": "failed",
    "expired": "failed",
    "ambiguous": "failed",
    "stalled": "stalled",
    "download stalled": "stalled",
}


class Log:
    """Writes run events; ``style`` is "tty", "plain" or "json"."""

    def __init__(self, style: str = "plain", stream: TextIO | None = None, secrets: Iterable[str] = ()):
        self.style = style
        self.stream = stream or sys.stderr
        self.secrets = [s for s in secrets if s]
        self.columns: dict[str, str] = {}
        self.total = 0  # shots this run carries; those not yet in a column are queued
        self.started = time.monotonic()
        self._board_shown = False

    def redacting(self, secrets: Iterable[str]) -> Log:
        """This log, keeping these secrets out too (the keys are known once the providers are)."""
        log = Log(self.style, self.stream, [*self.secrets, *secrets])
        log.started, log._board_shown, log.columns, log.total = self.started, self._board_shown, dict(self.columns), self.total
        return log

    def expect(self, total: int) -> None:
        """How many shots the run carries: those not yet in a column are queued."""
        self.total = total

    @classmethod
    def choose(cls, log_format: str | None, stream: TextIO | None = None, secrets: Iterable[str] = ()) -> Log:
        stream = stream or sys.stderr
        style = log_format or ("tty" if stream.isatty() else "plain")
        return cls(style, stream, secrets)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def event(self, key: str, what: str, **fields: Any) -> None:
        if what in _COLUMN:
            self.columns[key] = _COLUMN[what]
        details = {k: self.redact(str(v)) for k, v in fields.items() if v is not None}
        if self.style == "json":
            record = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "shot": key, "event": what, **details}
            self._write(json.dumps(record, ensure_ascii=False) + "\n")
            return
        text = " ".join(f"{k}={v}" for k, v in details.items())
        line = f"{datetime.now().strftime('%H:%M:%S')} {key} {what}" + (f" {text}" if text else "")
        if self.style == "tty":
            self._clear_board()
            self._write(line + "\n")
            self._draw_board()
        else:
            self._write(line + "\n")

    def note(self, message: str, event: str = "note", level: str = "info", **fields: Any) -> None:
        """A line about the run itself, not one shot."""
        message = self.redact(message)
        if self.style == "json":
            now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
            record = {"time": now, "level": level, "event": event, "message": message, **fields}
            self._write(json.dumps(record, ensure_ascii=False) + "\n")
            return
        if self.style == "tty":
            self._clear_board()
        self._write(message + "\n")
        if self.style == "tty":
            self._draw_board()

    def tick(self) -> None:
        """Redraw the board (the clock moves between events too)."""
        if self.style == "tty":
            self._draw_board()

    def finish(self) -> None:
        if self.style == "tty":
            self._clear_board()

    def _draw_board(self) -> None:
        counts = Counter(self.columns.values())
        counts["queued"] = max(0, self.total - len(self.columns))
        elapsed = int(time.monotonic() - self.started)
        parts = [f"{counts[c]} {c}" for c in ("queued", "running", "fetching", "done", "failed", "stalled") if counts[c]]
        self._write(f"\r\x1b[K▶ {' · '.join(parts) or 'starting'} · {elapsed // 60:02d}:{elapsed % 60:02d}")
        self._board_shown = True

    def _clear_board(self) -> None:
        if self._board_shown:
            self._write("\r\x1b[K")
            self._board_shown = False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
