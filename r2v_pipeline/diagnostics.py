"""Errors and warnings as values: a message for a person, tied to a place in a file."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Position:
    """A place in a manifest file; line and column count from 1."""

    file: str
    line: int = 1
    col: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in the input, where it stands."""

    position: Position
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.position}: {prefix}{self.message}"


@dataclass
class Diagnostics:
    """Collects every problem of a run so they can be shown all at once."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, position: Position, message: str) -> None:
        self.items.append(Diagnostic(position, message))

    def warning(self, position: Position, message: str) -> None:
        self.items.append(Diagnostic(position, message, "warning"))

    def extend(self, other: Iterable[Diagnostic]) -> None:
        self.items.extend(other)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in dict.fromkeys(self.items) if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in dict.fromkeys(self.items) if d.severity == "warning"]

    def sorted(self) -> list[Diagnostic]:
        """Unique diagnostics in file order (the same problem found twice shows once)."""
        return sorted(set(self.items), key=lambda d: (d.position, d.severity, d.message))


class ManifestError(Exception):
    """Raised when a manifest cannot be used; carries every diagnostic found."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean "x"?)' suffix when a close choice exists, else ''."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{matches[0]}"?)' if matches else ""
