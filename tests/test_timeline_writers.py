"""The cut's timelines are written by each adapter's own write function, found
without OTIO's plugin discovery: the text is the very text OTIO's adapter
registry gives for the same timeline."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio
import pytest
from hypothesis import given, settings, strategies as st

from r2v_pipeline.media import timeline as timelines
from r2v_pipeline.media.timeline import TIMELINE_FORMATS, Clip, Slot, TimelineError, build_timeline, timeline_texts

RATES = st.sampled_from([24.0, 25.0, 30.0, 29.97])


@st.composite
def slots(draw: st.DrawFn) -> list[Slot]:
    rate = draw(RATES)
    made = []
    for n in range(draw(st.integers(1, 5))):
        picked = Clip(f"shot-{n}", Path(f"/cuts/ep/shot-{n}.mp4"), draw(st.integers(1, 400)), rate, {"shot": f"shot-{n}", "take": 1, "note": draw(st.sampled_from([None, "too dark", "ok <&> \"quoted\""]))})
        alternates = tuple(
            Clip(f"shot-{n}", Path(f"/cuts/ep/shot-{n}-take{k + 2}.mp4"), draw(st.integers(1, 400)), draw(st.sampled_from([rate, 24.0])), {"take": k + 2})
            for k in range(draw(st.integers(0, 2)))
        )
        made.append(Slot(picked, alternates))
    return made


def through_registry(timeline: otio.schema.Timeline, adapter: str) -> str:
    source = timeline
    if adapter == "cmx_3600":  # as timeline_texts hands it: the main track alone
        source = timelines._main_only(timeline)
    return otio.adapters.write_to_string(source, adapter_name=adapter)


@settings(max_examples=15, deadline=None)
@given(slots())
def test_each_adapter_called_directly_writes_what_the_registry_writes(cut: list[Slot]) -> None:
    timeline = build_timeline("show ep1", cut, Path("/cuts"), {"series": "show", "episode": "ep1"})
    for adapter in TIMELINE_FORMATS:
        source = timelines._main_only(timeline) if adapter == "cmx_3600" else timeline
        assert timelines._writer(adapter)(source) == through_registry(timeline, adapter), adapter


def test_the_files_texts_are_the_registrys_text(tmp_path: Path) -> None:
    cut = [Slot(Clip("a", tmp_path / "a.mp4", 150, 30.0), (Clip("a", tmp_path / "a2.mp4", 90, 24.0),)), Slot(Clip("b", tmp_path / "b.mp4", 60, 30.0))]
    timeline = build_timeline("t", cut, tmp_path)
    made = timeline_texts(timeline, tmp_path / "ep1")
    assert [p.name for p, _ in made] == ["ep1.otio", "ep1.xml", "ep1.edl"]
    assert not any(p.exists() for p, _ in made)  # written by the caller, once the cut is
    texts = {p.suffix: text for p, text in made}
    assert texts[".otio"] == through_registry(timeline, "otio_json")
    assert texts[".edl"] == through_registry(timeline, "cmx_3600")
    assert texts[".xml"] == timelines._disable_upper_tracks(through_registry(timeline, "fcp_xml"))


def test_an_adapter_package_that_is_missing_is_named_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(timelines.ADAPTER_PACKAGES, "fcp_xml", "no_such_otio_adapter_package")
    timelines._writer.cache_clear()
    try:
        timeline = build_timeline("t", [Slot(Clip("a", tmp_path / "a.mp4", 30, 30.0))], tmp_path)
        with pytest.raises(TimelineError, match=r"^ep1\.xml: "):
            timeline_texts(timeline, tmp_path / "ep1")
    finally:
        monkeypatch.undo()
        timelines._writer.cache_clear()
