"""What a provider client is handed to send: the planned body and the local files
behind it, without the planner that made them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .media_info import MediaInfo

# How a plan's body names a local file until the runner sends it.
LOCAL_SCHEME = "local"


@dataclass(frozen=True)
class LocalFile:
    path: Path  # absolute
    shown: str  # as messages and plans show it
    info: MediaInfo

    @property
    def placeholder(self) -> str:
        """How a plan's body names the file until the runner sends it."""
        return f"{LOCAL_SCHEME}:{self.shown}"
