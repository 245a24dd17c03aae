"""Settings that cron jobs and containers give by environment: each also a flag, one order.

A setting's value is the first given of: the flag (or the Python API's
argument), the environment variable, the manifest, the default. ``resolve`` is
that order; ``SETTINGS`` names every such setting (the README's table is made
from the same facts). Light on purpose: ``r2v --help`` imports it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, TypeVar

T = TypeVar("T")

SIMULATED = "simulated"  # the subfolder of output and state folders that simulated runs keep to
LOG_FORMATS = ("tty", "plain", "json")


@dataclass(frozen=True)
class Setting:
    """One setting: where it may be given, and what it is when it is not."""

    name: str
    flag: str
    variable: str
    manifest: str | None  # the manifest's key, when a manifest may set it
    default: str  # as the README says it


OUTPUT_DIR = Setting("output folder", "--out", "R2V_OUTPUT_DIR", "output.dir", "`out` beside the series file")
STATE_DIR = Setting("state folder (the ledger)", "--state", "R2V_STATE_DIR", "output.state", "`.r2v` beside the series file")
LOG_FORMAT = Setting("log format (`tty`, `plain`, `json`)", "--log-format", "R2V_LOG_FORMAT", None, "`tty` on a terminal, else `plain`")
LOG_TIMEZONE = Setting("time zone of log lines (IANA name)", "--log-timezone", "R2V_LOG_TIMEZONE", None, "plain: the machine's (`TZ`); JSON: UTC")
LEDGER_URL = Setting("shared ledger (PostgreSQL URL)", "--ledger", "R2V_LEDGER_URL", None, "the ledger file in the state folder")
SETTINGS = (OUTPUT_DIR, STATE_DIR, LEDGER_URL, LOG_FORMAT, LOG_TIMEZONE)


def resolve(*layers: Optional[T]) -> Optional[T]:
    """The first layer given (not None), in the order flag, environment, manifest, default."""
    return next((value for value in layers if value is not None), None)


def from_environment(setting: Setting, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable's value; unset or blank counts as not given (a container's ``VAR=``)."""
    value = (os.environ if environ is None else environ).get(setting.variable, "").strip()
    return value or None


def given(setting: Setting, flag: T | None, parse: Callable[[str], T], environ: Mapping[str, str] | None = None) -> T | None:
    """What overrides the manifest: the flag, else the environment (parsed); None: neither."""
    variable = from_environment(setting, environ)
    return resolve(flag, parse(variable) if variable is not None else None)


class BadSetting(ValueError):
    """An environment variable holds a value the setting cannot take."""


def log_format(value: str) -> str:
    if value not in LOG_FORMATS:
        raise BadSetting(f"{LOG_FORMAT.variable}={value!r}: the log format is one of {', '.join(LOG_FORMATS)}")
    return value


def time_zone(value: str) -> str:
    """An IANA zone name (``Europe/Paris``, ``UTC``), checked."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only when a zone is given

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadSetting(f"{value!r} is not a time zone name (IANA, like Europe/Paris or UTC)") from None
    return value


def table() -> str:
    """The README's table of settings, in precedence order."""
    rows = ["| setting | flag | environment | manifest | default |", "| --- | --- | --- | --- | --- |"]
    for s in SETTINGS:
        rows.append(f"| {s.name} | `{s.flag}` | `{s.variable}` | {f'`{s.manifest}`' if s.manifest else '—'} | {s.default} |")
    return "\n".join(rows)
