"""Load the simulator: how fast ``r2v sim`` accepts connections, and 1,000 tasks in flight at once.

    python bench/sim_load.py [--tasks 1000] [--accounts 200] [--time-scale 0.02] [--poll 1.0]

Starts the simulator as a subprocess (``python -m r2v_pipeline.sim``), measures
the time until it accepts connections, then submits every task at once over
httpx async clients, spread over enough accounts to stay inside the real
quotas (5 submissions/s and 5 tasks in progress per account), polls each task
until it ends, downloads each video, and prints errors (target 0), wall time,
requests served and the peak number of tasks in flight. Loopback only; every
wait is bounded, and the simulator is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

SUBMIT = "/api/v1/services/aigc/video-generation/video-synthesis"
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:(\d+)) ")
DEADLINE_SECONDS = 300.0  # the whole run; the bench stops itself past it
IMAGE_URL = "https://example.com/a.png"
# The simulator has no network: it is told what the reference image holds.
IMAGE_FACTS = {IMAGE_URL: {"kind": "image", "format": "png", "bytes": 480_000, "width": 1024, "height": 1024}}


@dataclass
class Tally:
    errors: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    peak: int = 0
    requests: int = 0
    downloaded_bytes: int = 0


def start_simulator(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str, float, float]:
    """Start ``r2v sim``; answer (process, base URL, seconds until it printed its address, seconds until it accepted a connection)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    command = [
        sys.executable, "-m", "r2v_pipeline.sim", "--port", "0", "--seed", str(args.seed),
        "--time-scale", str(args.time_scale), "--generation-seconds", args.generation_seconds,
    ]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()
    printed = time.perf_counter() - started
    found = LISTENING.search(line)
    if not found:
        process.kill()
        raise SystemExit(f"the simulator did not start: {line!r}")
    with socket.create_connection(("127.0.0.1", int(found.group(2))), timeout=5):
        accepted = time.perf_counter() - started
    return process, found.group(1), printed, accepted


async def one_task(client: httpx.AsyncClient, key: str, n: int, args: argparse.Namespace, tally: Tally, all_submitted: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {key}", "X-DashScope-Async": "enable"}
    body = {
        "model": "wan2.7-r2v",
        "input": {"prompt": f"Image 1 waves, take {n}.", "media": [{"type": "reference_image", "url": IMAGE_URL}]},
        "parameters": {"resolution": "720P", "duration": 2},
    }
    try:
        response = await client.post(SUBMIT, json=body, headers=headers)
        tally.requests += 1
        if response.status_code != 200:
            tally.errors[f"submit {response.status_code}"] += 1
            return
        task_id = response.json()["output"]["task_id"]
        tally.in_flight += 1
        tally.peak = max(tally.peak, tally.in_flight)
        await all_submitted.wait()
        while True:
            await asyncio.sleep(args.poll)
            answer = await client.get(f"/api/v1/tasks/{task_id}", headers=headers)
            tally.requests += 1
            if answer.status_code != 200:
                tally.errors[f"query {answer.status_code}"] += 1
                continue
            output = answer.json()["output"]
            if output["task_status"] in ("SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"):
                break
        tally.in_flight -= 1
        tally.statuses[output["task_status"]] += 1
        if output["task_status"] == "SUCCEEDED":
            video = await client.get(output["video_url"])
            tally.requests += 1
            if video.status_code != 200 or int(video.headers["content-length"]) != len(video.content):
                tally.errors[f"download {video.status_code}"] += 1
            tally.downloaded_bytes += len(video.content)
    except httpx.HTTPError as err:
        tally.errors[type(err).__name__] += 1


async def drive(base_url: str, args: argparse.Namespace) -> tuple[Tally, float, float]:
    """Every task at once; one client per account, as each account would be its own runner
    (one pool of thousands of waiters makes httpx's connection pool the bottleneck)."""
    tally = Tally()
    all_submitted = asyncio.Event()
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
    clients = [httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60, trust_env=False) for _ in range(args.accounts)]
    try:
        started = time.perf_counter()
        jobs = [
            asyncio.create_task(one_task(clients[n % args.accounts], f"sk-bench-{n % args.accounts}", n, args, tally, all_submitted))
            for n in range(args.tasks)
        ]
        while tally.requests < args.tasks and not all(j.done() for j in jobs):
            await asyncio.sleep(0.01)
        submitted = time.perf_counter() - started
        all_submitted.set()
        await asyncio.wait_for(asyncio.gather(*jobs), DEADLINE_SECONDS)
        return tally, submitted, time.perf_counter() - started
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=200, help="5 tasks each keeps every account inside its quotas")
    parser.add_argument("--time-scale", type=float, default=0.02, help="0.02: a 60-300 s generation takes 1.2-6 s")
    parser.add_argument("--generation-seconds", default="60:300")
    parser.add_argument("--poll", type=float, default=1.0, help="wall seconds between polls of one task")
    parser.add_argument("--connections", type=int, default=5, help="per account")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    process, base_url, printed, accepted = start_simulator(args)
    try:
        httpx.post(base_url + "/_sim/facts", json=IMAGE_FACTS, trust_env=False).raise_for_status()
        tally, submitted, wall = asyncio.run(drive(base_url, args))
        health = httpx.get(base_url + "/_sim/health", trust_env=False).json()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()

    print(f"startup: printed its address after {printed * 1000:.0f} ms, accepted a connection after {accepted * 1000:.0f} ms")
    print(f"tasks: {args.tasks} over {args.accounts} accounts, time scale {args.time_scale}, generation {args.generation_seconds} s (provider)")
    print(f"submitted all in {submitted:.2f} s; everything done in {wall:.2f} s wall")
    print(f"outcomes: {dict(tally.statuses)}")
    print(f"errors: {sum(tally.errors.values())} {dict(tally.errors) if tally.errors else ''}".rstrip())
    print(f"requests: {tally.requests} sent, {health['requests']} served by the simulator ({health['requests'] / wall:.0f}/s)")
    print(f"peak in flight: {health['peak_in_flight']} (simulator), {tally.peak} (client)")
    print(f"downloaded: {tally.downloaded_bytes / 1e6:.1f} MB")
    return 1 if tally.errors else 0


if __name__ == "__main__":
    sys.exit(main())
