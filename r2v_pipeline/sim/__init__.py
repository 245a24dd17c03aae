"""A local DashScope + Freepik simulator: a real HTTP/1.1 server on loopback.

Where things are:
    server.py      HTTP/1.1 core (h11 over anyio sockets)
    routes.py      the route table (the registered providers' families, plus OSS and /_sim);
                   keys, faults, rate limits and the ledger around every handler
    family.py      what a provider's simulator module declares: routes, key header, limits, hooks
    dashscope.py   DashScope's family: submit, task query, task list, cancel, upload policy
    freepik.py     Freepik's family: create, get, list, webhooks on each status change
    uploads.py     the upload policy and the OSS form POST
    results.py     result videos: encoding cache, signed URLs, downloads
    intake.py      a submit body judged with the catalog: reactions, output, billing
    media.py       what media URLs lead to (oss://, data:, the simulator's own URLs, declared remote ones)
    facts.py       what a remote URL holds, as declared to the simulator (it has no network)
    tasks.py       task life cycle and per-account slots
    clock.py       scaled, advanceable time and the providers' time formats
    quota.py       sliding-window rate limits
    faults.py      the fault spec grammar and deterministic decisions
    webhooks.py    signing, verifying and delivering webhooks
    ledger.py      what the simulator saw: requests, tasks, fingerprints, billing
    persist.py     the state on disk (SimConfig.state_dir): SQLite and upload files, written through
    introspect.py  /_sim routes: health, ledger, advance
    replies.py     each provider's error shapes
    state.py       the parts of one run, wired together
    config.py      SimConfig
    embedded.py    start_simulator (background thread) and run_simulator (coroutine)
    command.py     the ``r2v sim`` command
"""

from .config import Rate, SimConfig
from .embedded import Simulator, run_simulator, start_simulator
from .faults import FaultSpec, FaultSpecError
from .ledger import Ledger, account_id
from .persist import read_ledger
from .webhooks import sign_webhook, verify_webhook

__all__ = [
    "FaultSpec",
    "FaultSpecError",
    "Ledger",
    "Rate",
    "SimConfig",
    "Simulator",
    "account_id",
    "read_ledger",
    "run_simulator",
    "sign_webhook",
    "start_simulator",
    "verify_webhook",
]
