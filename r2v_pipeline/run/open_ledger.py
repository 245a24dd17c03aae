"""Which ledger a command opens: the SQLite file in the state folder (the default), or a
PostgreSQL database shared by several hosts (``--ledger URL`` or ``$R2V_LEDGER_URL``).

The URL may carry a password: it is only ever handed to the database driver;
everything r2v says names the server with the password replaced by ``***``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .. import config
from .ledger import Ledger
from .ledger_store import LedgerStore, LedgerView

LEDGER_VARIABLE = config.LEDGER_URL.variable
_SCHEMES = ("postgresql", "postgres")
# Simulated runs keep their ledger apart from real ones, as they keep their own state
# folder: one PostgreSQL schema each.
_SCHEMA = {False: "r2v", True: "r2v_simulated"}


class BadLedgerUrl(ValueError):
    """A --ledger / $R2V_LEDGER_URL that names no ledger r2v can use."""


def ledger_url(given: str | None) -> str | None:
    """The shared ledger's URL: the option, else the environment; None: the SQLite file."""
    url = config.given(config.LEDGER_URL, given, str)  # flag > environment (blank: unset)
    if not url:
        return None
    scheme = urlsplit(url).scheme
    if scheme not in _SCHEMES:
        where = "--ledger" if given is not None else f"${LEDGER_VARIABLE}"
        raise BadLedgerUrl(f"{where}: {redact(url)!r} is not a postgresql:// URL (leave it unset for the ledger file in the state folder)")
    return url


def redact(url: str) -> str:
    """The URL with its password (in the authority or the query) replaced by ***."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            name = user.split(":", 1)[0]
            netloc = f"{name}:***@{host}"
        query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)])
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<the ledger URL>"


def _secret(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.password:
        return parts.password
    return dict(parse_qsl(parts.query)).get("password") or None


def open_store(url: str | None, folder: Path, exclusive: bool = False, simulated: bool = False, run_id: str | None = None) -> LedgerStore:
    """The ledger a run writes. Raises ledger.Locked, ledger.Unusable (the SQLite file),
    ledger_store.LedgerUnreachable (the database server)."""
    if url is None:
        return Ledger.open(folder, exclusive=exclusive, run_id=run_id)
    from .pg_ledger import PgLedger  # psycopg: only for a shared ledger

    return PgLedger.open(url, redact(url), _secret(url), _SCHEMA[simulated], exclusive=exclusive, run_id=run_id)


def peek_store(url: str | None, folder: Path | None, simulated: bool = False) -> LedgerView | None:
    """The ledger for reading only; None when no run has made it. Raises LedgerUnreachable."""
    if url is None:
        return Ledger.peek(folder) if folder is not None else None
    from .pg_ledger import PgLedger

    return PgLedger.peek(url, redact(url), _secret(url), _SCHEMA[simulated])
