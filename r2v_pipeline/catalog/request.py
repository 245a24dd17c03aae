"""What a provider client is handed to send: the planned body and the local files
behind it, without the planner that made them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .media_info import MediaInfo

# How a plan's body names a local file until the runner sends it.
LOCAL_SCHEME = "local"


@dataclass(frozen=True)
class LocalFile:
    """A file on this machine a request sends, with what checking found in it."""

    path: Path  # absolute
    shown: str  # as messages and plans show it
    info: MediaInfo

    @property
    def placeholder(self) -> str:
        """How a plan's body names the file until the runner sends it."""
        return f"{LOCAL_SCHEME}:{self.shown}"


Transport = Literal["inline", "upload", "public"]


@dataclass(frozen=True)
class OutgoingRequest:
    """One shot's request as the plan made it: the body with each local file still a
    placeholder (or its public URL), the files behind them and how each is sent."""

    model: str
    body: dict[str, Any]
    files: dict[str, LocalFile] = field(default_factory=dict)  # body URL -> local file behind it
    transports: dict[str, str] = field(default_factory=dict)  # body URL -> inline | upload | public
    headers: dict[str, str] = field(default_factory=dict)  # extra headers a manifest sends
    prompt: str = ""  # as rendered into the body: later stages read it here, not from the body
