"""Billed seconds by each provider's rule, including the seeds' worked examples."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from r2v_pipeline.catalog import dashscope, freepik
from r2v_pipeline.catalog.billing import Billed, bill_differs, billed_seconds, seconds

WAN27 = dashscope.WAN27.billing
WAN26 = dashscope.WAN26.billing


def test_wan27_worked_example_two_videos_and_an_image() -> None:
    # 2 reference videos + 1 image: the image is not counted, each video is capped at 2.5 s
    billed = billed_seconds(WAN27, 5, [("video", D("4")), ("video", D("2")), ("image", None)])
    assert billed.input == D("2.5") + D("2")
    assert billed.total == D("9.5")
    assert billed.exact


def test_wan26_worked_example_two_videos_and_an_image() -> None:
    # the 5 s cap is shared by all 3 references: 1.65 s per video, images free
    billed = billed_seconds(WAN26, 10, [("video", D("10")), ("video", D("1.2")), ("image", None)])
    assert billed.input == D("1.65") + D("1.2")
    assert billed.total == D("12.85")


@pytest.mark.parametrize(("count", "cap"), [(1, "5"), (2, "2.5"), (3, "1.65"), (4, "1.25"), (5, "1")])
def test_cap_per_video_follows_the_table_not_a_division(count: int, cap: str) -> None:
    long_videos = [("video", D("30"))] * count
    assert billed_seconds(WAN27, 5, long_videos).input == D(cap) * count
    assert billed_seconds(WAN26, 5, long_videos).input == D(cap) * count


def test_wan26_counts_images_in_the_split_and_wan27_does_not() -> None:
    refs = [("video", D("10")), ("image", None), ("image", None), ("image", None)]
    assert billed_seconds(WAN26, 5, refs).input == D("1.25")  # 4 references share the cap
    assert billed_seconds(WAN27, 5, refs).input == D("5")  # 1 video has it all


def test_images_only_bill_output_seconds() -> None:
    assert billed_seconds(WAN27, 15, [("image", None)] * 5).total == D("15")


def test_a_video_of_unknown_length_counts_at_its_cap() -> None:
    billed = billed_seconds(WAN27, 10, [("video", None), ("video", D("1"))])
    assert billed.input == D("3.5")
    assert not billed.exact


def test_freepik_bills_output_seconds_only() -> None:
    assert freepik.WAN27.billing is None
    assert billed_seconds(None, 6, [("video", D("9"))]).total == D("6")


def test_lengths_are_taken_to_the_millisecond() -> None:
    assert seconds(3.0334999) == D("3.033")
    assert seconds(2.0005) == D("2.001")


references = st.lists(
    st.tuples(
        st.sampled_from(["image", "video"]),
        st.none() | st.decimals(min_value=D("0.5"), max_value=D("30"), places=3),
    ).map(lambda t: (t[0], t[1] if t[0] == "video" else None)),
    min_size=1,
    max_size=5,
)


@given(st.integers(2, 15), references)
def test_input_seconds_never_exceed_five_nor_the_videos_lengths(output: int, refs: list) -> None:
    for rule in (WAN27, WAN26):
        billed = billed_seconds(rule, output, refs)
        assert billed.output == output
        assert D(0) <= billed.input <= D(5)
        known = [d for k, d in refs if k == "video" and d is not None]
        if len(known) == sum(1 for k, _ in refs if k == "video"):
            assert billed.input <= sum(known, D(0))
            assert billed.exact


@given(st.integers(2, 10), references)
def test_wan26_never_bills_more_input_than_wan27(output: int, refs: list) -> None:
    # sharing the cap with images can only shrink each video's share
    assert billed_seconds(WAN26, output, refs).input <= billed_seconds(WAN27, output, refs).input


@given(st.integers(2, 10), references, st.decimals(min_value=D("0.001"), max_value=D("5"), places=3))
def test_a_longer_video_never_bills_less(output: int, refs: list, extra: D) -> None:
    longer = [(k, d + extra if d is not None else None) for k, d in refs]
    for rule in (WAN27, WAN26):
        assert billed_seconds(rule, output, longer).total >= billed_seconds(rule, output, refs).total


_SECONDS = st.decimals(min_value=0, max_value=100, places=3)


@given(_SECONDS, _SECONDS, st.booleans(), st.booleans())
def test_a_bill_differs_from_the_plan_by_the_kind_of_figure_the_plan_is(planned: D, billed: D, exact: bool, at_least: bool) -> None:
    plan = Billed(planned, D(0), exact=exact)
    differs = bill_differs(plan, at_least, billed)
    if at_least:  # a floor: fields sent unchecked may bill more
        assert differs == (billed < planned)
    elif not exact:  # an upper bound: a remote video may be shorter than its cap
        assert differs == (billed > planned)
    else:
        assert differs == (billed != planned)
