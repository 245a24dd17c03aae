"""Tasks the provider made that the ledger does not know: adopted before paying again.

A lost ledger (a rebuilt cron host, a fresh CI runner, a deleted state folder)
must not mean paying twice: the provider keeps its tasks 24 hours. Before a
shot with no history is submitted, the account's task list for the last 24
hours is read once (paged), and each task the ledger does not know is a
stranger. A succeeded stranger is matched by what its task detail shows
[doc]: the model, the prompt as received (``orig_prompt``), and from its usage
the output duration and resolution tier. What the task list and detail do not
show (seed, references, the other settings) cannot be compared: takes that
differ only by seed look the same. They are paired in order — the n-th such
take with the n-th such stranger by creation time — since a run submits takes
in order; a stranger is adopted at most once. [guess] A run killed after
sending a later take but before an earlier one could still pair them wrongly:
the earlier take would then be made again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ..plan.planner import PlannedShot
from ..providers.base import ListedTask, TaskStatus

DAY = 24 * 3600.0  # the provider keeps a task this long [doc]


@dataclass
class Strangers:
    """One account's tasks unknown to the ledger: succeeded ones with their detail (in
    creation order), and those still in progress (matched once they end)."""

    open: set[str] = field(default_factory=set)  # fingerprints of planned shots without a task when the list was read
    succeeded: dict[str, TaskStatus] = field(default_factory=dict)
    in_progress: list[ListedTask] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)

    def match(self, shot: PlannedShot, twins: Sequence[PlannedShot]) -> str | None:
        """The succeeded stranger that is this shot's request as far as the provider
        shows; claimed. ``twins``: the planned shots the provider cannot tell from this
        one (its takes), in take order: the n-th of them gets the n-th such stranger."""
        alike = sorted(
            (status.submitted or 0.0, task_id) for task_id, status in self.succeeded.items() if describes(status, shot)
        )
        rank = next((i for i, twin in enumerate(twins) if twin.fingerprint == shot.fingerprint), None)
        if rank is None or rank >= len(alike):
            return None
        task_id = alike[rank][1]
        if task_id in self.taken:
            return None
        self.taken.add(task_id)
        return task_id

    def waiting(self, model: str) -> list[str]:
        return [t.task_id for t in self.in_progress if t.model == model and t.task_id not in self.taken]


def signature(shot: PlannedShot) -> tuple[str, Any, float, str]:
    """What the provider shows of a request: shots alike in this are told apart by nothing."""
    return (shot.spec.model, shot.prompt, float(shot.billed.output), shot.resolution.upper())


def describes(status: TaskStatus, shot: PlannedShot) -> bool:
    """Whether a succeeded task is ``shot``'s request, by what its detail shows."""
    if status.state != "succeeded" or status.prompt is None:
        return False
    if status.prompt != shot.prompt:
        return False
    usage: dict[str, Any] = status.usage or {}
    seconds = usage.get("output_video_duration")
    if isinstance(seconds, (int, float)) and float(seconds) != float(shot.billed.output):
        return False
    tier = usage.get("SR")
    if isinstance(tier, (int, float)) and shot.resolution.upper() != f"{int(tier)}P":
        return False
    return True
