"""Every dataclass of the package says what it is. Besides being read, a docstring
spares Python building one from the class's signature each time the module is
imported (dataclasses calls inspect.signature for a class without one), which the
commands' start-up pays for every class they import."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import r2v_pipeline


def test_every_dataclass_has_a_docstring_of_its_own() -> None:
    undocumented = []
    for module_info in pkgutil.walk_packages(r2v_pipeline.__path__, "r2v_pipeline."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == module.__name__:
                if value.__doc__ is None or value.__doc__.startswith(f"{value.__name__}("):
                    undocumented.append(f"{module.__name__}.{value.__qualname__}")
    assert undocumented == []
