"""Label assignment: how each model's prompt names its references."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from r2v_pipeline.catalog import dashscope, freepik
from r2v_pipeline.catalog.labels import assign_labels

WAN27 = dashscope.WAN27.labels
WAN26 = dashscope.WAN26.labels
FREEPIK = freepik.WAN27.labels

kinds = st.lists(st.sampled_from(["image", "video"]), min_size=1, max_size=5)


def test_wan27_counts_images_and_videos_apart() -> None:
    assert assign_labels(WAN27, ["video", "image", "image"]) == ["Video 1", "Image 1", "Image 2"]
    assert assign_labels(WAN27, ["image", "video", "video", "image"]) == ["Image 1", "Video 1", "Video 2", "Image 2"]


def test_wan27_lone_reference_is_the_reference() -> None:
    assert assign_labels(WAN27, ["image"]) == ["reference image"]
    assert assign_labels(WAN27, ["video"]) == ["reference video"]
    assert assign_labels(WAN27, ["image", "video"]) == ["Image 1", "Video 1"]


def test_wan26_numbers_every_reference_in_order() -> None:
    assert assign_labels(WAN26, ["video", "video", "image", "image"]) == [
        "character1",
        "character2",
        "character3",
        "character4",
    ]
    assert assign_labels(WAN26, ["image"]) == ["character1"]


def test_freepik_has_no_lone_label() -> None:
    assert assign_labels(FREEPIK, ["image"]) == ["Image 1"]
    assert assign_labels(FREEPIK, ["video", "image"]) == ["Video 1", "Image 1"]


@given(kinds)
def test_labels_are_distinct_and_one_per_reference(ks: list[str]) -> None:
    for rule in (WAN27, WAN26, FREEPIK):
        labels = assign_labels(rule, ks)  # type: ignore[arg-type]
        assert len(labels) == len(ks)
        assert len(set(labels)) == len(labels)


@given(kinds)
def test_typed_labels_number_each_kind_from_one_in_order(ks: list[str]) -> None:
    labels = assign_labels(FREEPIK, ks)  # type: ignore[arg-type]
    for kind, word in (("image", "Image"), ("video", "Video")):
        mine = [label for k, label in zip(ks, labels) if k == kind]
        assert mine == [f"{word} {n}" for n in range(1, len(mine) + 1)]


@given(kinds)
def test_wan27_differs_from_freepik_only_for_a_lone_reference(ks: list[str]) -> None:
    wan27 = assign_labels(WAN27, ks)  # type: ignore[arg-type]
    same = assign_labels(FREEPIK, ks)  # type: ignore[arg-type]
    assert (wan27 == same) == (len(ks) > 1)
