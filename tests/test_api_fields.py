"""The field a diagnostic names, read from its message (the API's Diagnostic.field)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from r2v_pipeline.api import _field_of


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ('unknown key "serie" (did you mean "series"?)', "serie"),
        ('unknown key "voise" in cast.mia (did you mean "voice"?)', "cast.mia.voise"),
        ('unknown key "duraton" in shots[a] (did you mean "duration"?)', "shots[a].duraton"),
        ('cast key "Bad Name" must be letters, digits and \'_\', not starting with a digit', "cast.Bad Name"),
        ("cast.leo: a cast entry has exactly one of image, video or storyboard", "cast.leo"),
        ('defaults.resolution "720p" is not one of 720P, 1080P (did you mean "720P"?)', "defaults.resolution"),
        ('shots[one].duration must be a whole number, not "five"', "shots[one].duration"),
        ("shots[1] needs 'id'", "shots[1]"),
        ('shots[has space].id "has space" must be letters', "shots[has space].id"),
        ("shots[has space].takes is 0; it must be at least 1", "shots[has space].takes"),
        ("episode must be text, not 1", "episode"),
        ("cast.ada.voice is not sent: wan2.6-r2v takes no reference voice (shots[gull-visit])", "cast.ada.voice"),
        ("a manifest holds one YAML document; found a second '---'", None),
        ("extends forms a loop: a.yaml -> b.yaml -> a.yaml", None),
        ("", None),
    ],
)
def test_the_field_a_message_names(message: str, field: str | None) -> None:
    assert _field_of(message) == field


@given(st.text(max_size=200))
def test_any_message_gives_a_field_it_names_or_none(message: str) -> None:
    field = _field_of(message)
    if field is not None:
        assert field and all(part in message for part in field.replace("[", ".").split(".") if part)
