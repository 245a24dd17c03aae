"""What each provider's models accept and bill: one declarative table per provider."""

from __future__ import annotations

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


def lookup(provider: str, model: str) -> ModelSpec | None:
    return PROVIDERS.get(provider, {}).get(model)
