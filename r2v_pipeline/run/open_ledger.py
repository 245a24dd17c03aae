"""Which ledger a command opens: the SQLite file in the state folder (the default), or a
PostgreSQL database shared by several hosts (``--ledger URL`` or ``$R2V_LEDGER_URL``).

The URL may carry a password: it is only ever handed to the database driver;
everything r2v says names the server with the password replaced by ``***``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, unquote_plus, urlencode, urlsplit, urlunsplit

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
    where = "--ledger" if given is not None else f"${LEDGER_VARIABLE}"
    try:
        parts = urlsplit(url)  # its port is left to the driver: libpq takes lists of hosts and ports
    except ValueError:
        raise BadLedgerUrl(f"{where}: the ledger URL cannot be read (a bracket out of place?); not shown, as it may hold a password") from None
    if parts.scheme not in _SCHEMES:
        raise BadLedgerUrl(f"{where}: {redact(url)!r} is not a postgresql:// URL (leave it unset for the ledger file in the state folder)")
    import psycopg  # its own reading of the URL, without connecting: what it would refuse at the start of a run
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except psycopg.Error as error:
        secret = _secret(url)
        hint = " (a '%' in a password is written %25)" if secret and "%" in secret else ""
        raise BadLedgerUrl(f"{where}: {redact(url)!r} cannot be read: {scrub(' '.join(str(error).split()), secret)}{hint}") from None
    return url


def scrub(text: str, secret: str | None) -> str:
    """``text`` without the password, as written in the URL or decoded."""
    if not secret:
        return text
    for form in sorted({secret, unquote(secret), unquote_plus(secret)}, key=len, reverse=True):
        if form:
            text = text.replace(form, "***")
    return text


def redact(url: str) -> str:
    """The URL with its password (in the authority or the query) replaced by ***."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            name = user.split(":", 1)[0]
            netloc = f"{name}:***@{host}"
        query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<the ledger URL>"


def _secret(url: str) -> str | None:
    """The password as the URL writes it (in the authority, else the query)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.password:
        return parts.password
    for field in parts.query.split("&"):
        name, _, value = field.partition("=")
        if unquote_plus(name) == "password" and value:
            return value
    return None


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
