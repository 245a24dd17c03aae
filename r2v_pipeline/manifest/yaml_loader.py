"""YAML to plain data, remembering where every key and value stands.

Built on the parser's event stream (libyaml when present) rather than its
composer, so that nesting depth and alias expansion can be bounded before they
exhaust the stack or memory, and so duplicate keys are errors, not silent
overwrites. Scalars resolve as in YAML 1.1 except that ``16:9`` stays text
(no base-60 numbers) and dates stay text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode

from ..diagnostics import Diagnostic, Position
from . import reads

PathKey = tuple[Any, ...]

MAX_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES_PER_EVENT = 20  # alias expansion may grow a document this much, no more
MIN_NODE_BUDGET = 100_000

_PARSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TAG = "tag:yaml.org,2002:"
_IMPLICIT = [
    (_TAG + "bool", re.compile(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")),
    (_TAG + "int", re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$")),
    (
        _TAG + "float",
        re.compile(
            r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
    ),
    (_TAG + "null", re.compile(r"^(?:~|null|Null|NULL|)$")),
    (_TAG + "merge", re.compile(r"^<<$")),
]
_SCALAR_TAGS = {"int", "float", "bool", "null", "str"}
_CONSTRUCT = SafeConstructor()


@dataclass
class YamlFile:
    """A loaded YAML file: its data and the position of everything in it."""

    path: Path
    name: str  # how messages name the file
    data: Any = None
    values: dict[PathKey, Position] = field(default_factory=dict)
    keys: dict[PathKey, Position] = field(default_factory=dict)
    literal_lines: dict[PathKey, int] = field(default_factory=dict)  # first text line of a `|` block

    def at(self, path: PathKey) -> Position:
        """Where the value at ``path`` stands, or its nearest ancestor's place."""
        return self._nearest(self.values, path)

    def key_at(self, path: PathKey) -> Position:
        """Where the key naming ``path`` stands (the value's place if it has no key)."""
        if path in self.keys:
            return self.keys[path]
        return self._nearest(self.values, path)

    def _nearest(self, table: dict[PathKey, Position], path: PathKey) -> Position:
        for n in range(len(path), -1, -1):
            if path[:n] in table:
                return table[path[:n]]
        return Position(self.name)


class YamlError(Exception):
    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("; ".join(str(d) for d in diagnostics))


def load_yaml(path: Path, name: str) -> YamlFile:
    """Load one YAML document. Raises YamlError with every problem found."""
    try:
        if path.is_dir():
            raise YamlError([Diagnostic(Position(name), "is a directory, not a manifest file")])
        raw = path.read_bytes()[: MAX_BYTES + 1]
    except OSError as err:
        raise YamlError([Diagnostic(Position(name), f"cannot read: {err.strerror or err}")]) from None
    if len(raw) > MAX_BYTES:
        raise YamlError([Diagnostic(Position(name), f"is over {MAX_BYTES // 2**20} MiB; not a manifest")])
    reads.note_bytes(path, raw)
    return parse_yaml(raw, path, name)


def parse_yaml(raw: bytes, path: Path, name: str) -> YamlFile:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise YamlError([Diagnostic(Position(name, line, col), f"not UTF-8 text (byte 0x{raw[err.start]:02x})")]) from None
    builder = _Builder(YamlFile(path, name), budget=max(MIN_NODE_BUDGET, MAX_NODES_PER_EVENT * len(text) // 4))
    try:
        builder.run(yaml.parse(text, Loader=_PARSER))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = Position(name, mark.line + 1, mark.column + 1) if mark else Position(name)
        problem = err.problem or err.context or "syntax error"
        if "nest" in problem:  # libyaml's own depth limit may strike before this loader's
            builder.errors.append(Diagnostic(where, f"nested deeper than {MAX_DEPTH} levels; not a manifest"))
        else:
            builder.errors.append(Diagnostic(where, f"YAML syntax error: {problem}"))
    except yaml.reader.ReaderError as err:
        line, col = _line_col(text, err.position)
        builder.errors.append(Diagnostic(Position(name, line, col), f"not YAML text: {err.reason} #x{err.character:04x}" if isinstance(err.character, int) else f"not YAML text: {err.reason}"))
    except yaml.YAMLError as err:
        builder.errors.append(Diagnostic(Position(name), f"YAML error: {err}"))
    except _Stop:
        pass
    if builder.errors:
        raise YamlError(builder.errors)
    return builder.file


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


_SKIP = object()  # the pending key of an entry that is dropped (a duplicate, an unusable key)


class _Stop(Exception):
    """A problem after which the rest of the document cannot be read."""


@dataclass
class _Frame:
    """A mapping or sequence being built while its events are read."""

    container: Any  # dict or list; None for a frame that only swallows an unusable node
    path: PathKey
    key: Any = None  # a mapping's pending key
    has_key: bool = False
    key_pos: Position | None = None
    anchor: str | None = None
    first_entry: int = 0
    merges: list[tuple[dict[str, Any], PathKey, int, int]] = field(default_factory=list)
    merge_pending: bool = False
    start_mark: Any = None


class _Builder:
    def __init__(self, file: YamlFile, budget: int):
        self.file = file
        self.errors: list[Diagnostic] = []
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, PathKey, int, int]] = {}  # name -> value, path, entry span
        self.entries: list[tuple[PathKey, Position, bool]] = []  # every recorded place, in order
        self.budget = budget
        self.documents = 0
        self.alias_mark: Any = None

    def pos(self, mark: Any) -> Position:
        return Position(self.file.name, mark.line + 1, mark.column + 1)

    def error(self, mark: Any, message: str) -> None:
        self.errors.append(Diagnostic(self.pos(mark), message))

    def run(self, events: Iterator[yaml.Event]) -> None:
        for event in events:
            if isinstance(event, yaml.DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    self.error(event.start_mark, "a manifest holds one YAML document; found a second '---'")
                    raise _Stop
            elif isinstance(event, yaml.ScalarEvent):
                self.scalar(event)
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                self.open(event)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                self.close()
            elif isinstance(event, yaml.AliasEvent):
                self.alias(event)
        if self.documents == 0 or (self.file.data is None and not self.errors):
            self.errors.append(Diagnostic(Position(self.file.name), "is empty; a manifest is a YAML mapping"))

    # --- where the next node goes --------------------------------------

    def slot(self, event: yaml.Event) -> tuple[PathKey, bool] | None:
        """The path the next node takes, and whether it is a mapping key.
        None when the node is to be skipped (it sits in a skipped node)."""
        if not self.stack:
            return (), False
        frame = self.stack[-1]
        if frame.container is None:
            return None
        if isinstance(frame.container, list):
            return frame.path + (len(frame.container),), False
        if not frame.has_key:
            return frame.path, True
        if frame.key is _SKIP:
            return frame.path + ("<dropped>",), False
        return frame.path + (frame.key,), False

    def record(self, path: PathKey, position: Position, is_key: bool) -> None:
        self.entries.append((path, position, is_key))
        (self.file.keys if is_key else self.file.values)[path] = position
        self.budget -= 1
        if self.budget < 0:
            where = self.pos(self.alias_mark) if self.alias_mark else position
            self.errors.append(Diagnostic(where, "YAML aliases expand this document too far (an alias bomb?); refused"))
            raise _Stop

    def attach(self, value: Any, path: PathKey, start_mark: Any) -> None:
        if not self.stack:
            self.file.data = value
            return
        frame = self.stack[-1]
        if isinstance(frame.container, list):
            frame.container.append(value)
            return
        key = frame.key
        frame.has_key = False
        if frame.merge_pending:
            frame.merge_pending = False
            self.merge_source(frame, value, path, start_mark)
        elif key is not _SKIP:
            frame.container[key] = value

    # --- events ---------------------------------------------------------

    def scalar(self, event: yaml.ScalarEvent) -> None:
        slot = self.slot(event)
        if slot is None:
            return
        path, is_key = slot
        value = self.resolve(event)
        if is_key:
            frame = self.stack[-1]
            frame.key_pos = self.pos(event.start_mark)
            if value == "<<" and event.tag is None and event.implicit[0]:
                frame.merge_pending, frame.has_key, frame.key = True, True, "<<"
                return
            frame.has_key = True
            if not isinstance(value, str):
                self.error(
                    event.start_mark,
                    f"key {event.value!r} reads as {type(value).__name__}, not text; put it in quotes",
                )
                frame.key = _SKIP
            elif value in frame.container:
                first = self.file.keys[path + (value,)]
                self.error(event.start_mark, f'duplicate key "{value}" (first at line {first.line})')
                frame.key = _SKIP
            else:
                frame.key = value
                self.record(path + (value,), frame.key_pos, True)
            return
        self.record(path, self.pos(event.start_mark), False)
        if event.style == "|":
            self.file.literal_lines[path] = event.start_mark.line + 2
        if event.anchor:
            self.anchors[event.anchor] = (value, path, len(self.entries) - 1, len(self.entries))
        self.attach(value, path, event.start_mark)

    def resolve(self, event: yaml.ScalarEvent) -> Any:
        tag = event.tag
        if tag in (None, "!"):
            if tag is None and event.implicit[0]:
                for resolved, pattern in _IMPLICIT:
                    if pattern.match(event.value):
                        tag = resolved
                        break
            tag = tag if tag not in (None, "!") else _TAG + "str"
        short = tag[len(_TAG) :] if tag.startswith(_TAG) else None
        if short == "merge":
            return "<<"
        if short not in _SCALAR_TAGS:
            self.error(event.start_mark, f"YAML tag {tag} is not allowed in a manifest")
            return event.value
        if short == "str":
            return event.value
        try:
            return getattr(_CONSTRUCT, f"construct_yaml_{short}")(ScalarNode(tag, event.value))
        except (ValueError, TypeError):
            self.error(event.start_mark, f"{event.value!r} is not a valid {short}")
            return event.value

    def open(self, event: yaml.MappingStartEvent | yaml.SequenceStartEvent) -> None:
        if len(self.stack) >= MAX_DEPTH:
            self.error(event.start_mark, f"nested deeper than {MAX_DEPTH} levels; not a manifest")
            raise _Stop
        slot = self.slot(event)
        is_map = isinstance(event, yaml.MappingStartEvent)
        if event.tag not in (None, "!", _TAG + ("map" if is_map else "seq")):
            self.error(event.start_mark, f"YAML tag {event.tag} is not allowed in a manifest")
        if slot is None:
            self.stack.append(_Frame(None, ()))
            return
        path, is_key = slot
        if is_key:
            self.error(event.start_mark, "a key must be plain text, not a list or mapping")
            self.stack[-1].key, self.stack[-1].has_key = _SKIP, True
            self.stack.append(_Frame(None, ()))
            return
        self.record(path, self.pos(event.start_mark), False)
        container: Any = {} if is_map else []
        self.stack.append(
            _Frame(container, path, anchor=event.anchor, first_entry=len(self.entries) - 1, start_mark=event.start_mark)
        )

    def close(self) -> None:
        frame = self.stack.pop()
        if frame.container is None:
            return
        if frame.merges:
            self.apply_merges(frame)
        if frame.anchor:
            self.anchors[frame.anchor] = (frame.container, frame.path, frame.first_entry, len(self.entries))
        self.attach(frame.container, frame.path, frame.start_mark)

    def alias(self, event: yaml.AliasEvent) -> None:
        slot = self.slot(event)
        if slot is None:
            return
        path, is_key = slot
        if event.anchor not in self.anchors:
            self.error(event.start_mark, f"alias *{event.anchor} names no anchor defined before it")
            raise _Stop
        value, source, start, end = self.anchors[event.anchor]
        if is_key:
            self.error(event.start_mark, "an alias cannot be a key")
            raise _Stop
        self.alias_mark = event.start_mark
        self.copy_places(source, path, start, end)
        self.attach(value, path, event.start_mark)

    def copy_places(self, source: PathKey, target: PathKey, start: int, end: int) -> None:
        cut = len(source)
        for entry_path, position, is_key in self.entries[start:end]:
            self.record(target + entry_path[cut:], position, is_key)

    # --- merge keys (<<) -------------------------------------------------

    def merge_source(self, frame: _Frame, value: Any, path: PathKey, mark: Any) -> None:
        sources = value if isinstance(value, list) else [value]
        for item in sources:
            if not isinstance(item, dict):
                self.error(mark, "<< merges mappings only")
                return
            anchor = next((a for a in self.anchors.values() if a[0] is item), None)
            _, source, start, end = anchor if anchor else (item, path, 0, 0)
            frame.merges.append((item, source, start, end))

    def apply_merges(self, frame: _Frame) -> None:
        own = set(frame.container)
        for item, source, start, end in frame.merges:  # earlier sources win, own keys win over all
            cut = len(source)
            taken = {k for k in item if k not in own}
            for entry_path, position, is_key in self.entries[start:end]:
                rest = entry_path[cut:]
                if rest and rest[0] in taken:
                    self.record(frame.path + rest, position, is_key)
            for k in taken:
                frame.container[k] = item[k]
            own |= taken
