"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl in a temporary folder.

The server listens on a free loopback port, with its unix socket in the same
temporary folder, and is stopped (and its folder removed) at the end. initdb
refuses to run as root, so as root the cluster is made and run by an
unprivileged user (``postgres`` where Debian's package made one, else ``nobody``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Cluster:
    folder: Path
    port: int
    bindir: Path
    user: str | None  # the unprivileged user the server runs as, when the tests run as root

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://r2v{secret}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A new empty database on the cluster: its URL (each test gets its own ledger)."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -F -c fsync=off -c max_connections=60"
        _run(self, [str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-o", options, "-l", str(self.folder / "server.log"), "-w", "-t", "60", "start"])

    def halt(self) -> None:
        """Stop the server at once (as a crash would); ``start`` brings it back with its data."""
        _run(self, [str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop"], check=False)

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.folder, ignore_errors=True)


def find_bindir() -> Path | None:
    """Where initdb and pg_ctl are: pg_config's answer, PATH, or Debian's versioned folders."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            candidates.append(Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10).stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)]
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file() and (folder / "postgres").is_file():
            return folder
    return None


def start_cluster(bindir: Path) -> Cluster:
    user = _unprivileged_user() if os.getuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="r2v-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(folder, _free_port(), bindir, user)
    try:
        _run(cluster, [str(bindir / "initdb"), "-D", str(folder / "data"), "-U", "r2v", "--auth=trust", "-E", "UTF8", "--no-sync"])
        cluster.start()
    except BaseException:
        log = folder / "server.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        cluster.stop()
        raise RuntimeError(f"could not start a PostgreSQL cluster: {detail}")
    return cluster


def _run(cluster: Cluster, command: list[str], check: bool = True) -> None:
    if cluster.user is not None:
        command = ["runuser", "-u", cluster.user, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cluster.folder)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip() or done.stdout.strip()}")


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _version(path: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in Path(path).parent.name.split("."))
    except ValueError:
        return (0,)
