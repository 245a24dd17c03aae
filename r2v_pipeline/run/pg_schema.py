"""The PostgreSQL ledger's schema, as numbered migrations applied once each.

``schema_version`` lists the migrations a database has had. Every start takes
one advisory lock (per schema) around reading and applying them, so hosts
starting at once on a new database make it once: the second waits, then finds
nothing left to do. A migration is only ever added, never edited.
"""

from __future__ import annotations

from typing import Any

# (version, statements); each migration commits with its schema_version row.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE shots (
                fingerprint TEXT PRIMARY KEY,
                key TEXT NOT NULL,
                provider TEXT NOT NULL,
                model TEXT NOT NULL,
                account TEXT NOT NULL,
                endpoint TEXT,
                state TEXT NOT NULL,
                task_id TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                owner TEXT,
                output TEXT,
                submit_started DOUBLE PRECISION,
                submitted_at DOUBLE PRECISION,
                started_at DOUBLE PRECISION,
                finished_at DOUBLE PRECISION,
                downloaded_at DOUBLE PRECISION,
                result_url TEXT,
                usage TEXT,
                sha256 TEXT,
                bytes BIGINT,
                code TEXT,
                message TEXT,
                updated_at DOUBLE PRECISION NOT NULL,
                submitted_by TEXT,
                request TEXT,
                planned_seconds DOUBLE PRECISION,
                billed_seconds DOUBLE PRECISION,
                lease BIGINT
            )""",
            "CREATE INDEX shots_by_account ON shots (account, state)",
            "CREATE INDEX shots_by_key ON shots (key)",
            # The fencing tokens: each claim of a shot takes the next one.
            "CREATE SEQUENCE leases",
            """CREATE TABLE tasks (
                task_id TEXT PRIMARY KEY,
                fingerprint TEXT NOT NULL,
                account TEXT NOT NULL,
                model TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX tasks_by_fingerprint ON tasks (fingerprint)",
            """CREATE TABLE timings (
                provider TEXT NOT NULL,
                model TEXT NOT NULL,
                resolution TEXT NOT NULL,
                duration INTEGER NOT NULL,
                seconds DOUBLE PRECISION NOT NULL,
                at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX timings_by_model ON timings (provider, model, at)",
            """CREATE TABLE uploads (
                sha256 TEXT NOT NULL,
                account TEXT NOT NULL,
                model TEXT NOT NULL,
                url TEXT NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (sha256, account, model)
            )""",
            # heartbeat_at is the database server's clock: hosts' clocks may disagree.
            """CREATE TABLE runs (
                run_id TEXT PRIMARY KEY,
                host TEXT NOT NULL,
                pid INTEGER NOT NULL,
                started_at DOUBLE PRECISION NOT NULL,
                heartbeat_at DOUBLE PRECISION NOT NULL,
                pid_start TEXT
            )""",
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
            """CREATE TABLE events (
                id BIGSERIAL PRIMARY KEY,
                at DOUBLE PRECISION NOT NULL,
                fingerprint TEXT NOT NULL,
                event TEXT NOT NULL,
                detail TEXT
            )""",
            "CREATE INDEX events_by_fingerprint ON events (fingerprint, id)",
            # A new ledger knows none of the tasks already made: the first runs adopt before paying.
            "INSERT INTO meta VALUES ('adoption', 'pending')",
        ),
    ),
    (
        2,
        (
            # Every task a run saw succeed (so billed), once per task: spend over time.
            # billed_seconds is the provider's figure, NULL where it gives none.
            """CREATE TABLE charges (
                task_id TEXT PRIMARY KEY,
                run_id TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                key TEXT NOT NULL,
                provider TEXT NOT NULL,
                model TEXT NOT NULL,
                account TEXT NOT NULL,
                planned_seconds DOUBLE PRECISION,
                billed_seconds DOUBLE PRECISION,
                cost DOUBLE PRECISION,
                at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX charges_by_time ON charges (at)",
            # Runs that ended (a killed run leaves none; its charges still name it).
            """CREATE TABLE run_history (
                run_id TEXT PRIMARY KEY,
                host TEXT NOT NULL,
                started_at DOUBLE PRECISION NOT NULL,
                finished_at DOUBLE PRECISION NOT NULL,
                exit_code INTEGER NOT NULL,
                episodes TEXT NOT NULL
            )""",
        ),
    ),
    (
        3,
        (
            # The key (its hash) a task's submit went out with, for tasks that were their
            # submit's own answer: what shows two keys to be one account's.
            """CREATE TABLE task_keys (
                task_id TEXT PRIMARY KEY,
                account TEXT NOT NULL,
                key TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX task_keys_by_key ON task_keys (account, key, created_at)",
        ),
    ),
)

LATEST = MIGRATIONS[-1][0]
_LOCK = 0x7232765F6C656467  # the advisory lock key of migrations ("r2v_ledg")


class TooNew(Exception):
    """The database was migrated by a newer r2v: this one must not write to it."""


def migrate(db: Any, schema: str) -> int:
    """Bring the schema up to date (once, whoever starts first); how many migrations ran.
    ``db`` is a psycopg connection in autocommit mode."""
    ran = 0
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK >> 32, schema))
        db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        db.execute(f'SET LOCAL search_path TO "{schema}"')
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        have = {row[0] for row in db.execute("SELECT version FROM schema_version")}
        if have and max(have) > LATEST:
            raise TooNew(f"the ledger's schema is version {max(have)}; this r2v knows up to {LATEST}: upgrade r2v")
        for version, statements in MIGRATIONS:
            if version in have:
                continue
            for statement in statements:
                db.execute(statement)
            db.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            ran += 1
    return ran


def version(db: Any) -> int | None:
    """The schema version of the connection's search path; None when no run has made it."""
    row = db.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    got = db.execute("SELECT max(version) FROM schema_version").fetchone()
    return got[0] if got else None
