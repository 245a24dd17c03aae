"""r2v-pipeline: reference-to-video generations from checked-in YAML manifests.

The public Python API is ``r2v_pipeline.api``'s ``__all__``, importable from
here (``import r2v_pipeline as r2v; r2v.make_plan(...)``); every other module
is private. The API loads on first use, so ``r2v --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the one version: the package metadata, r2v --version, reports and sidecars read it

if TYPE_CHECKING:
    from .api import *  # noqa: F403
    from .api import __all__ as __all__


def __getattr__(name: str) -> Any:
    from importlib import import_module
    from importlib.util import find_spec

    # A submodule is the import system's to load (``from . import config`` asks
    # here first): only the API's own names load the API.
    if name != "__all__" and (name.startswith("_") or find_spec(f"{__name__}.{name}") is not None):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    api = import_module(f"{__name__}.api")
    if name == "__all__" or name in api.__all__:
        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
