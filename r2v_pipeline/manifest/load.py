"""Manifest files to episodes: load, check against the schema, fold `extends` chains."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..diagnostics import Diagnostics, Position, did_you_mean
from . import reads
from .model import SETTINGS, Account, CastKind, CastMember, Episode, Provider, PublicUrl, Shot, Source, Value
from .schema import check_schema, field_name
from .selects import is_selects_file, load_selects
from .yaml_loader import PathKey, YamlError, YamlFile, load_yaml

DEFAULT_OUTPUT = "out"
DEFAULT_STATE = ".r2v"


def display_name(path: Path) -> str:
    """A path as messages show it: relative to the working folder when inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)
    return str(path) if relative.startswith("..") else relative


class ManifestSet:
    """Loads each file once, however many episodes extend it."""

    def __init__(self, diagnostics: Diagnostics):
        self.diagnostics = diagnostics
        self._files: dict[Path, YamlFile | None] = {}

    def load(self, path: Path) -> YamlFile | None:
        # Kept by the path as named, links not followed: a file's relative paths (its
        # media, its own extends) start from the folder it was named in, so a base named
        # through a link and directly is read once for each, and a plan never depends on
        # which episode named it first.
        key = Path(os.path.abspath(path))
        if key not in self._files:
            self._files[key] = self._read(path)
        else:  # named again the same way (its bytes are noted): where it leads counts too
            reads.note(path, None)
        return self._files[key]

    def _read(self, path: Path) -> YamlFile | None:
        try:
            file = load_yaml(path, display_name(path))
        except YamlError as err:
            self.diagnostics.extend(err.diagnostics)
            return None
        problems = check_schema(file)
        self.diagnostics.extend(problems)
        return None if problems else file

    def chain(self, path: Path) -> list[YamlFile] | None:
        """The file and every file it extends, root first."""
        chain: list[YamlFile] = []
        seen: list[Path] = []
        current: Path | None = path
        while current is not None:
            if current.resolve() in seen:  # the last file's extends closes a loop
                loop = " → ".join(display_name(p) for p in [*seen, current.resolve()])
                self.diagnostics.error(chain[0].at(("extends",)), f"extends forms a loop: {loop}")
                return None
            file = self.load(current)
            if file is None:
                return None
            seen.append(current.resolve())
            chain.insert(0, file)
            parent = file.data.get("extends")
            if parent is None:
                current = None
                continue
            current = file.path.parent / parent
            if not current.is_file():
                self.diagnostics.error(file.at(("extends",)), f"extends {parent!r}: no such file")
                return None
        return chain


def load_episodes(paths: list[Path], diagnostics: Diagnostics) -> list[Episode]:
    files = ManifestSet(diagnostics)
    episodes = []
    seen: dict[tuple[str, str], Episode] = {}
    for path in paths:
        if is_selects_file(path):  # `r2v run ep*.yaml` meets the selects beside the episodes
            diagnostics.warning(Position(display_name(path)), "a selects file, not a manifest: read with its episode, skipped here")
            continue
        chain = files.chain(path)
        if chain is None:
            continue
        episode = _build(chain, diagnostics)
        if episode is None:
            continue
        key = (episode.series, episode.episode)
        if key in seen:
            diagnostics.error(
                episode.pos,
                f"episode {episode.series}/{episode.episode} is also given by {seen[key].name}; give each episode once",
            )
            continue
        seen[key] = episode
        episodes.append(episode)
    return episodes


def _value(file: YamlFile, path: PathKey) -> Value[Any]:
    node: Any = file.data
    for key in path:
        node = node[key]
    return Value(node, file.at(path))


def _get(file: YamlFile, *path: Any) -> Any:
    node: Any = file.data
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _source(file: YamlFile, path: PathKey) -> Source | None:
    text = _get(file, *path)
    if not isinstance(text, str):
        return None
    return Source(text, file.at(path), file.path.parent, field_name(path, file.data))


def _build(chain: list[YamlFile], diagnostics: Diagnostics) -> Episode | None:
    leaf = chain[-1]
    errors_before = len(diagnostics.errors)
    for file in chain[:-1]:
        if "shots" in file.data:
            diagnostics.error(
                file.key_at(("shots",)),
                f"{file.name} is extended by {leaf.name}; shots are not inherited, so keep them in episode files",
            )
    provider = _provider(chain, diagnostics)
    defaults: dict[str, Value[Any]] = {}
    cast: dict[str, CastMember] = {}
    variables: dict[str, Value[Any]] = {}
    budget: dict[str, Value[float]] = {}
    prices: Value[dict[str, Any]] | None = None
    output = {"dir": (DEFAULT_OUTPUT, chain[0].path.parent), "state": (DEFAULT_STATE, chain[0].path.parent)}
    for file in chain:
        for name in _get(file, "defaults") or {}:
            defaults[name] = _value(file, ("defaults", name))
        for name in _get(file, "cast") or {}:
            member = _cast_member(file, name, diagnostics)
            if member is not None:
                cast[name] = member
        for name in _get(file, "vars") or {}:
            variables[name] = _value(file, ("vars", name))
        for name in _get(file, "budget") or {}:
            budget[name] = _value(file, ("budget", name))
        if "prices" in file.data:
            prices = _value(file, ("prices",))
        for name, folder in (_get(file, "output") or {}).items():
            output[name] = (folder, file.path.parent)
    for name, var in variables.items():
        if name in cast:
            diagnostics.error(var.pos, f'vars: "{name}" is also a cast name; a template could not tell them apart')
    shots = _shots(leaf, cast, diagnostics)
    selects = load_selects(leaf.path, leaf.name, shots, diagnostics)
    _check_pins(provider, defaults, shots, diagnostics)
    if len(diagnostics.errors) > errors_before:
        return None
    return Episode(
        file=leaf.path,
        name=leaf.name,
        pos=Position(leaf.name),
        series=_last(chain, "series") or chain[0].path.stem,
        episode=_get(leaf, "episode") or leaf.path.stem,
        title=_last(chain, "title"),
        provider=provider,
        defaults=defaults,
        cast=cast,
        vars=variables,
        shots=tuple(shots),
        prices=prices,
        budget=budget,
        output_dir=_folder(*output["dir"]),
        state_dir=_folder(*output["state"]),
        selects=selects,
    )


def _folder(name: str, base: Path) -> Path:
    """A folder a manifest names, relative to the manifest, without '..' detours."""
    return Path(os.path.normpath(base / name))


def _last(chain: list[YamlFile], key: str) -> Any:
    """The value the file nearest the episode gives for ``key``."""
    for file in reversed(chain):
        if key in file.data:
            return file.data[key]
    return None


def _provider(chain: list[YamlFile], diagnostics: Diagnostics) -> Provider:
    fields: dict[str, Any] = {}
    public_urls: dict[Path, PublicUrl] = {}
    quota: dict[str, Value[float]] = {}
    accounts: tuple[Account, ...] = ()
    for file in chain:
        section = _get(file, "provider") or {}
        for key in ("name", "region", "base_url", "workspace", "webhook_url"):
            if key in section:
                fields[key] = _value(file, ("provider", key))
        for folder, base in (section.get("public_urls") or {}).items():
            local = (file.path.parent / folder).resolve()
            reads.note(file.path.parent / folder, None, local)  # a link moved elsewhere changes the URLs
            public_urls[local] = PublicUrl(local, base, file.at(("provider", "public_urls", folder)))
        for key in section.get("quota") or {}:
            quota[key] = _value(file, ("provider", "quota", key))
        if "accounts" in section:  # the file nearest the episode names the whole pool
            accounts = _accounts(file, diagnostics)
    return Provider(**fields, public_urls=tuple(public_urls.values()), quota=quota, accounts=accounts)


def _accounts(file: YamlFile, diagnostics: Diagnostics) -> tuple[Account, ...]:
    found: list[Account] = []
    names: dict[str, Account] = {}
    variables: dict[str, Account] = {}
    for i, entry in enumerate(file.data["provider"]["accounts"]):
        base = ("provider", "accounts", i)

        def optional(key: str) -> Value[Any] | None:
            return _value(file, base + (key,)) if key in entry else None

        account = Account(
            name=_value(file, base + ("name",)),
            key_env=_value(file, base + ("key_env",)),
            pos=file.at(base),
            region=optional("region"),
            base_url=optional("base_url"),
            workspace=optional("workspace"),
            quota={key: _value(file, base + ("quota", key)) for key in entry.get("quota") or {}},
        )
        first = names.get(account.name.value)
        if first is not None:
            diagnostics.error(account.name.pos, f'provider.accounts[{i}].name: duplicate account "{account.name.value}" (first at line {first.name.pos.line})')
            continue
        twin = variables.get(account.key_env.value)
        if twin is not None:
            diagnostics.error(
                account.key_env.pos,
                f'provider.accounts[{account.name.value}].key_env: {account.key_env.value} is also account "{twin.name.value}"\'s key '
                "(one key is one account: give each account its own variable)",
            )
            continue
        names[account.name.value] = variables[account.key_env.value] = account
        found.append(account)
    return tuple(found)


def _check_pins(provider: Provider, defaults: dict[str, Value[Any]], shots: list[Shot], diagnostics: Diagnostics) -> None:
    """An ``account:`` (on a shot or the defaults) must be one provider.accounts names."""
    names = [a.name.value for a in provider.accounts]
    pins = [("defaults.account", defaults.get("account"))] + [(f"shots[{s.id}].account", s.settings.get("account")) for s in shots]
    for where, pin in pins:
        if pin is None or pin.value in names:
            continue
        if not names:
            diagnostics.error(pin.pos, f'{where}: "{pin.value}" is not an account: provider.accounts names none (add it there, with its key_env)')
        else:
            diagnostics.error(pin.pos, f'{where}: no account "{pin.value}" in provider.accounts ({", ".join(names)}){did_you_mean(pin.value, names)}')


def _cast_member(file: YamlFile, name: str, diagnostics: Diagnostics) -> CastMember | None:
    entry = file.data["cast"][name]
    kind: CastKind = next(k for k in ("image", "video", "storyboard") if k in entry)  # type: ignore[assignment]
    media = _source(file, ("cast", name, kind))
    assert media is not None
    voice = _source(file, ("cast", name, "voice"))
    duration = _value(file, ("cast", name, "duration")) if "duration" in entry else None
    extra = _value(file, ("cast", name, "extra")) if "extra" in entry else None
    if voice is not None and kind == "storyboard":
        diagnostics.error(voice.pos, f"cast.{name}.voice: a storyboard holds many characters; give voices to cast members instead")
    if duration is not None and (kind != "video" or not media.is_url):
        diagnostics.error(
            duration.pos,
            f"cast.{name}.duration is for a video at a URL (its length cannot be measured here); "
            + ("local videos are measured" if kind == "video" else "only videos have a length"),
        )
    return CastMember(
        name=name,
        kind=kind,
        media=media,
        voice=voice,
        description=entry.get("description", ""),
        duration=duration,
        pos=file.key_at(("cast", name)),
        extra=extra,
    )


def _shots(file: YamlFile, cast: dict[str, CastMember], diagnostics: Diagnostics) -> list[Shot]:
    shots: list[Shot] = []
    first_seen: dict[str, Position] = {}
    for i, item in enumerate(_get(file, "shots") or []):
        base = ("shots", i)
        shot_id = item["id"]
        pos = file.at(base + ("id",))
        if shot_id in first_seen:
            diagnostics.error(pos, f'duplicate shot id "{shot_id}" (first at line {first_seen[shot_id].line})')
            continue
        first_seen[shot_id] = pos
        extra = tuple(_value(file, base + ("cast", j)) for j in range(len(item.get("cast", []))))
        for name in extra:
            if name.value not in cast:
                diagnostics.error(name.pos, f'shots[{shot_id}].cast: no cast member "{name.value}"{did_you_mean(name.value, cast)}')
        shot_vars = {name: _value(file, base + ("vars", name)) for name in item.get("vars", {})}
        for name, var in shot_vars.items():
            if name in cast:
                diagnostics.error(var.pos, f'shots[{shot_id}].vars: "{name}" is also a cast name')
        shots.append(
            Shot(
                id=shot_id,
                pos=pos,
                prompt=_value(file, base + ("prompt",)),
                prompt_line=file.literal_lines.get(base + ("prompt",)),
                settings={name: _value(file, base + (name,)) for name in SETTINGS if name in item},
                first_frame=_source(file, base + ("first_frame",)),
                voice=_source(file, base + ("voice",)),
                cast=extra,
                vars=shot_vars,
                takes=_value(file, base + ("takes",)) if "takes" in item else None,
                pick=_value(file, base + ("pick",)) if "pick" in item else None,
            )
        )
    return shots
