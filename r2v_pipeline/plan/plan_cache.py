"""A plan kept between runs, used again only when nothing it was made from has changed.

Planning 1,000 shots (YAML, schema, prompts, fingerprints) is most of what a rerun
with nothing to do costs. An entry is found by what was asked (the manifest paths
as given, the working folder, the plan options) and holds, beside the plan and its
warnings, everything else the plan was made from:

- every file planning read, each with where it led and the hash of its bytes, and
  the files it looked for and did not find (a selects file written later), checked
  again byte for byte on every use (manifest/reads.py notes them where they are read);
- the code: r2v's version, the body format, every file of the package and the
  third-party libraries planning runs (by size, inode and times), Python's version;
- the registered providers' tables.

Anything different, or an entry that is damaged, unreadable or from another
version, is a miss: the plan is made afresh and the entry replaced. A plan with
errors is never kept. Entries live in the cache folder (R2V_CACHE_DIR; "off" turns
it off), one per distinct request, each written whole or not at all.

Entries are pickles: as the Jinja bytecode beside them, whoever can write the cache
folder can run code as its user; it is the user's own folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import r2v_pipeline

from ..catalog import registry
from ..diagnostics import Diagnostic, Diagnostics
from ..files import write_atomically
from ..manifest import reads
from ..media.probe_cache import cache_folder
from .body_format import FORMAT as BODY_FORMAT
from .collector import collector_paused
from .planner import Plan, PlanOptions, make_plan

MAGIC = b"r2v-plan 1\n"  # the entry's own layout; a change of it is a new magic
MAX_ENTRIES = 32  # plans kept; each is about 1.5 kB a shot
_PACKAGE = Path(r2v_pipeline.__file__).resolve().parent
_LIBRARIES = ("yaml", "_yaml", "jinja2", "markupsafe", "jsonschema", "av")  # third-party code planning runs


@dataclass(frozen=True)
class Setup:
    """What, besides files, the plan was made by."""

    request: str  # the working folder, the paths as given and the options
    version: str
    body_format: int
    python: str
    code: str  # the package's files and the libraries', by size and time
    providers: str  # the registered tables


def cached_plan(paths: Iterable[Path], options: PlanOptions, diagnostics: Diagnostics) -> Plan:
    """make_plan's result, from the cache when nothing it was made from has changed."""
    paths = list(paths)
    entry = entry_path(paths, options)
    if entry is None:
        return make_plan(paths, options, diagnostics)
    setup = current_setup(paths, options)
    hit = lookup(entry, setup)
    if hit is not None:
        plan, found = hit
        diagnostics.extend(found)
        return plan
    made = Diagnostics()
    with reads.recording() as read:
        plan = make_plan(paths, options, made)
    diagnostics.extend(made.items)
    if not made.errors:
        store(entry, setup, read, plan, made.items)
    return plan


def entry_path(paths: list[Path], options: PlanOptions) -> Path | None:
    """Where the plan of this request is kept; None when the cache is off."""
    folder = cache_folder("plans", ())
    if folder is None:
        return None
    return folder / f"{hashlib.sha256(_request(paths, options).encode()).hexdigest()[:32]}.plan"


def _request(paths: list[Path], options: PlanOptions) -> str:
    return repr((os.getcwd(), [str(p) for p in paths], options))


def current_setup(paths: list[Path], options: PlanOptions) -> Setup:
    return Setup(
        request=_request(paths, options),  # kept whole too: an entry under another request's name is no hit
        version=r2v_pipeline.__version__,
        body_format=BODY_FORMAT,
        python=sys.version,
        code=code_identity(_PACKAGE),
        providers=providers_identity(),
    )


def code_identity(package: Path) -> str:
    """Every file of the package (not the byte-compiled ones) and each library's entry
    module, by path, size, inode, modification and change time. The change time is the
    kernel's own (no tool sets it): an edit that keeps a file's size and modification
    time (a copy keeping times, an archive unpacked) still changes it, as git's index
    relies on. Hashing the package's bytes instead cost twice as long on every command."""
    digest = hashlib.sha256()
    for folder, subfolders, files in os.walk(package):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        for name in sorted(files):
            _add_file(digest, os.path.join(folder, name))
    for library in _LIBRARIES:
        spec = importlib.util.find_spec(library)
        if spec is None or spec.origin is None:
            digest.update(f"{library}:-\n".encode())
        else:
            _add_file(digest, spec.origin)
    return digest.hexdigest()


def _add_file(digest: Any, path: str) -> None:
    try:
        info = os.stat(path)
        digest.update(f"{path}:{info.st_size}:{info.st_ino}:{info.st_mtime_ns}:{info.st_ctime_ns}\n".encode())
    except OSError:
        digest.update(f"{path}:-\n".encode())


def providers_identity() -> str:
    """The registered providers' tables; one registered or changed is a miss."""
    return hashlib.sha256(repr(_canonical(registry.entries())).encode()).hexdigest()


def _canonical(value: Any) -> Any:
    """``value`` as plain tuples whose repr is the same in every process: sets in sorted
    order (their own order follows string hashing, which differs each start), functions
    and classes by name (their code is the package's, counted in ``code``)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__qualname__, tuple((f.name, _canonical(getattr(value, f.name))) for f in dataclasses.fields(value)))
    if isinstance(value, dict):
        return ("dict", tuple((_canonical(k), _canonical(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted((_canonical(v) for v in value), key=repr)))
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    return repr(value)


def lookup(entry: Path, setup: Setup) -> tuple[Plan, list[Diagnostic]] | None:
    """The kept plan and its warnings, when the entry is whole, made by this setup, and
    every file it was made from reads as it did; else None."""
    try:
        data = entry.read_bytes()
    except OSError:
        return None
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 32:
        return None
    body = memoryview(data)[len(MAGIC) + 32 :]
    if hashlib.sha256(body).digest() != data[len(MAGIC) : len(MAGIC) + 32]:
        return None  # damaged: a torn or altered entry is never trusted
    try:
        stream = io.BytesIO(body)
        kept_setup, kept_reads = pickle.load(stream)
        if kept_setup != setup or not all(reads.unchanged(r) for r in kept_reads):
            return None
        plan, found = _unpickled(stream)
    except Exception:  # noqa: BLE001 (whatever an entry from elsewhere raises: plan afresh)
        return None
    if not isinstance(plan, Plan) or not isinstance(found, list):
        return None
    try:
        os.utime(entry)  # recently used: kept when the folder is pruned
    except OSError:
        pass
    return plan, found


def _unpickled(stream: io.BytesIO) -> Any:
    """The rest of the entry: tens of thousands of objects at once, the collector paused."""
    with collector_paused():
        return pickle.load(stream)


def store(entry: Path, setup: Setup, made_from: list[reads.Read], plan: Plan, found: list[Diagnostic]) -> None:
    """Keep the plan; a cache only: a plan that cannot be pickled or a folder that
    cannot be written is no error."""
    try:
        body = pickle.dumps((setup, made_from), pickle.HIGHEST_PROTOCOL) + pickle.dumps((plan, found), pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 (a test's provider table holding a lambda, say)
        return
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(entry, MAGIC + hashlib.sha256(body).digest() + body)
        _prune(entry.parent)
    except OSError:
        pass


def _prune(folder: Path) -> None:
    """At most MAX_ENTRIES plans, the least recently used dropped (a hit touches its
    entry): a pre-commit hook checking ever other files must not fill the disk."""
    entries = []
    for path in folder.glob("*.plan"):
        try:
            entries.append((path.stat().st_mtime_ns, path))
        except OSError:
            continue
    for _, path in sorted(entries, reverse=True)[MAX_ENTRIES:]:
        path.unlink(missing_ok=True)
