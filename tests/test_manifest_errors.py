"""Invalid manifests: every problem at once, each at file:line:col, naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from r2v_pipeline.catalog import PROVIDERS
from r2v_pipeline.catalog.formats import RATIOS, RESOLUTIONS, SIZES
from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.manifest.schema import manifest_schema
from r2v_pipeline.plan.planner import PlanOptions, make_plan

Write = Callable[[str, str | bytes], Path]


def problems(*paths: Path) -> list[str]:
    """Every diagnostic, with file names relative to the manifests' folder."""
    diagnostics = Diagnostics()
    make_plan(list(paths), PlanOptions(), diagnostics)
    folder = str(paths[0].parent) + "/"
    return [str(d).replace(folder, "") for d in diagnostics.sorted()]


def test_schema_errors_are_all_reported_at_their_places(write: Write, media: Callable[[str, str], Path]) -> None:
    media("a.png", "png")
    path = write(
        "ep.yaml",
        """
        serie: oops
        cast:
          mia: {image: a.png, voise: v.wav}
          Bad Name: {image: a.png}
          leo: {image: a.png, video: b.mp4}
        defaults:
          resolution: 720p
          duratoin: 5
        shots:
          - id: one
            prompt: "{{ mia }}"
            duration: five
          - prompt: no id
          - id: has space
            prompt: x
            takes: 0
        """,
    )
    assert problems(path) == [
        'ep.yaml:1:1: unknown key "serie" (did you mean "series"?)',
        'ep.yaml:3:23: unknown key "voise" in cast.mia (did you mean "voice"?)',
        'ep.yaml:4:3: cast key "Bad Name" must be letters, digits and \'_\', not starting with a digit',
        "ep.yaml:5:8: cast.leo: a cast entry has exactly one of image, video or storyboard",
        'ep.yaml:7:15: defaults.resolution "720p" is not one of 720P, 1080P (did you mean "720P"?)',
        'ep.yaml:8:3: unknown key "duratoin" in defaults (did you mean "duration"?)',
        'ep.yaml:12:15: shots[one].duration must be a whole number, not "five"',
        "ep.yaml:13:5: shots[1] needs 'id'",
        "ep.yaml:14:9: shots[has space].id \"has space\" must be letters, digits, '_', '.' and '-', starting with a letter or digit",
        "ep.yaml:16:12: shots[has space].takes is 0; it must be at least 1",
    ]


def test_a_manifest_must_be_a_mapping(write: Write) -> None:
    assert problems(write("ep.yaml", "- just\n- a list\n")) == [
        "ep.yaml:1:1: a manifest is a mapping of keys (series, cast, shots, …), not a list"
    ]


def test_duplicate_shot_ids_and_unknown_cast_are_errors(write: Write, media: Callable[[str, str], Path]) -> None:
    media("a.png", "png")
    path = write(
        "ep.yaml",
        """
        cast:
          mia: {image: a.png}
        vars:
          mia: clash
        shots:
          - id: one
            prompt: "{{ mia }}"
          - id: one
            prompt: "{{ mia }}"
            cast: [maia]
        """,
    )
    assert problems(path) == [
        'ep.yaml:4:8: vars: "mia" is also a cast name; a template could not tell them apart',
        'ep.yaml:8:9: duplicate shot id "one" (first at line 6)',
    ]
    path = write(
        "ep2.yaml",
        """
        cast:
          mia: {image: a.png}
        shots:
          - id: one
            prompt: "{{ mia }}"
            cast: [maia]
        """,
    )
    assert problems(path) == ['ep2.yaml:6:12: shots[one].cast: no cast member "maia" (did you mean "mia"?)']


def test_extends_problems_name_the_extends_line(write: Write) -> None:
    a = write("a.yaml", "extends: b.yaml\nshots: []\n")
    write("b.yaml", "extends: a.yaml\n")
    (loop,) = problems(a)
    assert loop.startswith("b.yaml:1:10: extends forms a loop: ")
    c = write("c.yaml", "extends: missing.yaml\n")
    assert problems(c) == ["c.yaml:1:10: extends 'missing.yaml': no such file"]


def test_a_series_file_with_shots_cannot_be_extended(write: Write, media: Callable[[str, str], Path]) -> None:
    media("a.png", "png")
    write("series.yaml", "cast:\n  mia: {image: a.png}\nshots:\n  - {id: x, prompt: '{{ mia }}'}\n")
    ep = write("ep.yaml", "extends: series.yaml\nshots:\n  - {id: y, prompt: '{{ mia }}'}\n")
    (message,) = problems(ep)
    assert message.startswith("series.yaml:3:1: series.yaml is extended by ")
    assert message.endswith("shots are not inherited, so keep them in episode files")


def test_schema_lists_match_the_catalog() -> None:
    """The schema editors read and the tables the planner reads must not drift apart."""
    defs = manifest_schema()["$defs"]
    settings = defs["settings"]["properties"]
    models = {m for table in PROVIDERS.values() for m in table}
    (families, snapshots) = settings["model"]["anyOf"]  # a model, or a dated snapshot of one
    assert set(families["enum"]) == models and all(m.replace(".", "\\.") in snapshots["pattern"] for m in models)
    assert tuple(settings["resolution"]["enum"]) == RESOLUTIONS
    assert tuple(settings["ratio"]["enum"]) == RATIOS
    assert tuple(settings["size"]["enum"]) == SIZES
    assert set(defs["provider"]["properties"]["name"]["enum"]) == set(PROVIDERS)
    catalog_settings = {name for table in PROVIDERS.values() for spec in table.values() for name in spec.settings}
    assert catalog_settings - {"prompt", "webhook_url"} <= set(settings)


def test_schema_file_is_valid_json_schema(tmp_path: Path) -> None:
    import jsonschema

    schema = json.loads((Path(__file__).resolve().parent.parent / "schemas" / "manifest.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == manifest_schema()  # the repository's schemas/ is the packaged file
