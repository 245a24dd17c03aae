"""``r2v completion bash|zsh|fish``: the shell's completion script, made from the
parser itself (by shtab), so it never drifts from the commands and flags.

Manifest arguments complete as YAML files (and folders to descend into), folder
flags as folders, file flags as files. Nothing runs at tab time but the shell.
"""

from __future__ import annotations

import argparse
from typing import Iterator

SHELLS = ("bash", "zsh", "fish")

# One command each, for the README and ``r2v completion --help``.
INSTALL = {
    "bash": "mkdir -p ~/.local/share/bash-completion/completions && r2v completion bash > ~/.local/share/bash-completion/completions/r2v",
    "zsh": 'r2v completion zsh > "${fpath[1]}/_r2v"',
    "fish": "r2v completion fish > ~/.config/fish/completions/r2v.fish",
}

_FOLDERS = {"out", "state", "report", "state_dir"}  # flags naming a folder
_FILES = {"junit", "output"}  # flags naming a file to write


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    import shtab  # only when a script is asked for

    manifests = shtab.glob("*.yaml", "*.yml")
    for action in _actions(parser):
        if action.dest == "files":
            action.complete = manifests  # type: ignore[attr-defined]  # shtab reads this attribute
        elif action.dest in _FOLDERS:
            action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
        elif action.dest in _FILES:
            action.complete = shtab.FILE  # type: ignore[attr-defined]
    return str(shtab.complete(parser, shell))


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """Every argument of the parser and of its commands' parsers."""
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield from _actions(sub)
