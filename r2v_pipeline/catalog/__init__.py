"""What each provider's models accept and bill: one declarative table per provider."""

from __future__ import annotations

import re
from dataclasses import replace

from . import dashscope, freepik
from .spec import ModelSpec

PROVIDERS: dict[str, dict[str, ModelSpec]] = {
    "dashscope": dashscope.MODELS,
    "freepik": freepik.MODELS,
}
DEFAULT_MODELS: dict[str, str] = {
    "dashscope": dashscope.DEFAULT_MODEL,
    "freepik": freepik.DEFAULT_MODEL,
}


# Each provider's account limits and the failure codes worth a new submission.
QUOTAS: dict[str, dict[str, float]] = {"dashscope": dashscope.QUOTA, "freepik": freepik.QUOTA}
RESUBMIT_CODES: dict[str, tuple[str, ...]] = {"dashscope": dashscope.RESUBMIT_CODES, "freepik": freepik.RESUBMIT_CODES}
REUPLOAD_CODES: dict[str, tuple[str, ...]] = {"dashscope": dashscope.REUPLOAD_CODES, "freepik": freepik.REUPLOAD_CODES}

# Where a provider takes new tasks, below its base URL.
SUBMIT_PATHS: dict[str, str] = {
    "dashscope": dashscope.SUBMIT_PATH,
    "freepik": freepik.ENDPOINT,
}


# A dated snapshot of a model (wan2.7-r2v-2026-06-12) [sdk]: sent as named, checked and
# billed by its model's table. [guess] A snapshot keeps its model's limits and rules.
SNAPSHOT = re.compile(r"^(?P<family>.+)-(?P<date>\d{4}-\d{2}-\d{2})$")


def lookup(provider: str, model: str) -> ModelSpec | None:
    table = PROVIDERS.get(provider, {})
    spec = table.get(model)
    if spec is not None:
        return spec
    snapshot = SNAPSHOT.match(model)
    if snapshot is None or snapshot["family"] not in table:
        return None
    return replace(table[snapshot["family"]], model=model, family=snapshot["family"])
