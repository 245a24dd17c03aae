"""Planning: references, labels, settings per model, takes, billing, cost, fingerprints."""

from __future__ import annotations

import gc
from decimal import Decimal
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.plan import planner as planner_module
from r2v_pipeline.plan.planner import Plan, PlanOptions, make_plan
from r2v_pipeline.plan.settings import derived_seed

Write = Callable[[str, str | bytes], Path]
Media = Callable[[str, str], Path]


def plan(*paths: Path, **options: object) -> Plan:
    diagnostics = Diagnostics()
    result = make_plan(list(paths), PlanOptions(**options), diagnostics)  # type: ignore[arg-type]
    assert not diagnostics.errors, [str(d) for d in diagnostics.errors]
    return result


def problems(*paths: Path, **options: object) -> list[str]:
    diagnostics = Diagnostics()
    make_plan(list(paths), PlanOptions(**options), diagnostics)  # type: ignore[arg-type]
    folder = str(paths[0].parent) + "/"
    return [str(d).replace(folder, "") for d in diagnostics.sorted()]


@pytest.fixture
def series(write: Write, media: Media) -> Path:
    media("m/mia.png", "png")
    media("m/leo.mp4", "video_3s")
    media("m/cup.png", "jpeg")
    media("m/mia.wav", "wav_2s")
    return write(
        "series.yaml",
        """
        series: show
        defaults: {model: wan2.7-r2v, resolution: 720P, ratio: "16:9", prompt_extend: false}
        cast:
          mia: {image: m/mia.png, voice: m/mia.wav}
          leo: {video: m/leo.mp4}
          cup: {image: m/cup.png}
        prices:
          currency: EUR
          dashscope:
            wan2.7-r2v: {720P: 0.10}
            wan2.6-r2v-flash: {720P: {audio: 0.05, silent: 0.02}}
        """,
    )


def episode(write: Write, shots: str, name: str = "ep.yaml", extra: str = "") -> Path:
    return write(name, f"extends: series.yaml\n{extra}shots:\n" + shots)


def test_references_follow_cast_order_and_labels_count_kinds_apart(write: Write, series: Path) -> None:
    ep = episode(write, "  - {id: a, prompt: '{{ cup }} by {{ leo }}, then {{ mia }} again {{ cup }}'}\n")
    (shot,) = plan(ep).shots
    assert [(r.name, r.role, r.label) for r in shot.references] == [
        ("mia", "image", "Image 1"),
        ("mia", "voice", None),
        ("leo", "video", "Video 1"),
        ("cup", "image", "Image 2"),
    ]
    assert shot.body["input"]["prompt"] == "Image 2 by Video 1, then Image 1 again Image 2"
    assert [m["type"] for m in shot.body["input"]["media"]] == ["reference_image", "reference_video", "reference_image"]


def test_a_shot_sends_exactly_the_cast_it_prints_plus_those_it_lists(write: Write, series: Path) -> None:
    ep = episode(write, "  - {id: a, prompt: '{% if false %}{{ leo }}{% endif %}{{ mia }} alone', cast: [cup]}\n")
    (shot,) = plan(ep).shots
    assert [r.name for r in shot.references if r.role != "voice"] == ["mia", "cup"]


def test_same_series_other_model_takes_fitting_defaults_only(write: Write, series: Path) -> None:
    ep = episode(write, "  - {id: a, model: wan2.6-r2v-flash, audio: false, prompt: '{{ mia }} and {{ leo }}'}\n")
    (shot,) = plan(ep).shots
    assert shot.body["parameters"] == {"size": "1280*720", "audio": False, "watermark": False}  # prompt_extend left out; watermark said (its wan2.6 default is unsettled)
    assert shot.body["input"]["prompt"] == "character1 and character2"
    assert shot.rate == Decimal("0.02")  # the silent rate


def test_a_setting_the_model_lacks_is_an_error_on_the_shot(write: Write, series: Path) -> None:
    ep = episode(write, "  - {id: a, model: wan2.6-r2v, prompt_extend: true, prompt: '{{ mia }}'}\n")
    (message,) = [p for p in problems(ep) if "prompt_extend" in p]
    assert message == (
        "ep.yaml:3:47: wan2.6-r2v has no prompt_extend setting "
        "(it takes audio, duration, negative_prompt, seed, shot_type, size, watermark) (shots[a])"
    )


def test_size_and_resolution_ratio_are_one_choice(write: Write, series: Path) -> None:
    ep = episode(
        write,
        "  - {id: a, size: 1088*832, prompt: '{{ mia }}'}\n"
        "  - {id: b, model: wan2.6-r2v, ratio: '9:16', prompt: '{{ mia }}'}\n"
        "  - {id: c, size: 1920*1080, resolution: 720P, prompt: '{{ mia }}'}\n",
    )
    assert [p for p in problems(ep) if "warning" not in p] == [
        "ep.yaml:5:19: size 1920*1080 is 1080P 16:9, which its resolution/ratio contradict (shots[c])"
    ]
    ep = episode(write, "  - {id: a, size: 1088*832, prompt: '{{ mia }}'}\n  - {id: b, model: wan2.6-r2v, ratio: '9:16', prompt: '{{ mia }}'}\n")
    a, b = plan(ep).shots
    assert {k: a.body["parameters"][k] for k in ("resolution", "ratio")} == {"resolution": "720P", "ratio": "4:3"}
    assert b.body["parameters"]["size"] == "720*1280"


def test_a_first_frame_leaves_the_ratio_out(write: Write, series: Path, media: Media) -> None:
    media("m/start.png", "png")
    ep = episode(write, "  - {id: a, first_frame: m/start.png, ratio: '1:1', prompt: '{{ mia }}'}\n")
    (shot,) = plan(ep).shots
    assert "ratio" not in shot.body["parameters"]
    assert shot.body["input"]["media"][0] == {"type": "first_frame", "url": "local:" + shot.files[shot.body["input"]["media"][0]["url"]].shown}
    assert any("ratio is not sent" in p for p in problems(ep))


def test_takes_have_their_own_seeds_and_files(write: Write, series: Path) -> None:
    ep = episode(
        write,
        "  - {id: a, takes: 2, prompt: '{{ mia }}'}\n"
        "  - {id: b, takes: 3, seed: 10, prompt: '{{ mia }}'}\n"
        "  - {id: c, takes: [7, 9], prompt: '{{ mia }}'}\n"
        "  - {id: d, prompt: '{{ mia }}'}\n",
    )
    shots = plan(ep).shots
    seeds = {(s.shot, s.take): s.body["parameters"].get("seed") for s in shots}
    assert seeds == {
        ("a", 1): derived_seed("show", "ep", "a", 0),
        ("a", 2): derived_seed("show", "ep", "a", 1),
        ("b", 1): 10,
        ("b", 2): 11,
        ("b", 3): 12,
        ("c", 1): 7,
        ("c", 2): 9,
        ("d", None): None,
    }
    assert [s.output.name for s in shots[:2]] == ["a-take1.mp4", "a-take2.mp4"]
    assert shots[-1].output.name == "d.mp4"
    assert len({s.fingerprint for s in shots}) == len(shots)


def test_pick_names_an_existing_take(write: Write, series: Path) -> None:
    ep = episode(write, "  - {id: a, takes: 2, pick: 2, prompt: '{{ mia }}'}\n  - {id: b, pick: 2, prompt: '{{ mia }}'}\n")
    assert problems(ep) == ["ep.yaml:4:19: pick 2: the shot has 1 take (shots[b])"]


def test_billing_uses_the_real_length_of_local_videos(write: Write, series: Path) -> None:
    ep = episode(
        write,
        "  - {id: a, duration: 8, prompt: '{{ leo }} and {{ mia }}'}\n"
        "  - {id: b, model: wan2.6-r2v-flash, duration: 4, prompt: '{{ leo }}, {{ mia }}, {{ cup }}'}\n",
    )
    a, b = plan(ep).shots
    assert (a.billed.input, a.billed.total, a.billed.exact) == (Decimal("3.000"), Decimal("11.000"), True)
    assert a.cost == Decimal("1.1")
    assert b.billed.input == Decimal("1.65")  # 3 references share the 5 s cap
    assert b.cost == Decimal("0.2825")  # 5.65 s at the sound rate


def test_remote_video_length_is_stated_or_bounded(write: Write) -> None:
    ep = write(
        "ep.yaml",
        """
        cast:
          a: {video: 'https://x.test/a.mp4', duration: 2.5}
          b: {video: 'https://x.test/b.mp4'}
        shots:
          - {id: s, prompt: '{{ a }} {{ b }}'}
        """,
    )
    (shot,) = plan(ep).shots
    assert shot.billed.input == Decimal("2.5") + Decimal("2.5")
    assert not shot.billed.exact


def test_freepik_needs_public_urls_for_local_files(write: Write, media: Media) -> None:
    media("pub/a.png", "png")
    write("ep.yaml", "provider: {name: freepik}\ncast:\n  a: {image: pub/a.png}\nshots:\n  - {id: s, prompt: '{{ a }}'}\n")
    assert problems(Path(write("x", "x").parent / "ep.yaml")) == [
        "ep.yaml:3:14: pub/a.png: freepik fetches only public URLs; map this file's folder to one in provider.public_urls (shots[s])"
    ]
    ep = write(
        "ep2.yaml",
        "provider: {name: freepik, public_urls: {pub: 'https://cdn.test/p/'}}\n"
        "cast:\n  a: {image: pub/a.png}\nshots:\n  - {id: s, prompt: '{{ a }}'}\n",
    )
    (shot,) = plan(ep).shots
    assert shot.body["image_urls"] == [{"url": "https://cdn.test/p/a.png"}]
    assert shot.transports == {"https://cdn.test/p/a.png": "public"}


def test_missing_and_wrong_files_are_named_at_the_cast_entry(write: Write, media: Media) -> None:
    media("fake.png", "video_3s")  # an MP4 under a PNG's name
    ep = write(
        "ep.yaml",
        """
        cast:
          gone: {image: nowhere.png}
          fake: {image: fake.png}
        shots:
          - {id: s, prompt: '{{ gone }} {{ fake }}'}
        """,
    )
    missing, fake = problems(ep)
    assert missing.startswith("ep.yaml:2:17: nowhere.png: no such file (looked at ")
    assert fake == "ep.yaml:3:17: fake.png: it is a 3.0 s MP4 video, not an image"


def test_limits_are_named_where_the_value_was_set(write: Write, series: Path) -> None:
    ep = episode(
        write,
        "  - {id: a, duration: 12, prompt: '{{ leo }}'}\n"
        "  - {id: b, model: wan2.6-r2v, prompt: '{{ mia }} {{ mai }}'}\n"
        "  - {id: c, prompt: '{{ mia }} {{ leo }}', first_frame: m/leo.mp4}\n",
    )
    assert problems(ep) == [
        "ep.yaml:3:23: duration 12 is outside 2–10 for wan2.7-r2v with a reference video (shots[a])",
        'ep.yaml:4:40: prompt uses "mai", which is neither cast nor a var (did you mean "mia"?) (shots[b])',
        "ep.yaml:5:57: m/leo.mp4: it is a 3.0 s MP4 video, not an image",
    ]


def test_a_template_error_points_into_a_block_prompt(write: Write, series: Path) -> None:
    ep = episode(write, "  - id: a\n    prompt: |\n      line one {{ mia }}\n      line two {{ nobody }}\n")
    assert problems(ep) == [
        'ep.yaml:6:13: prompt uses "nobody", which is neither cast nor a var (shots[a])'
    ]


def test_region_us_serves_wan26_only(write: Write, series: Path) -> None:
    ep = episode(write, "  - {id: a, prompt: '{{ mia }}'}\n", extra="provider: {region: us}\n")
    assert problems(ep) == ["series.yaml:2:19: region us serves only wan2.6-r2v, not wan2.7-r2v (shots[a])"]
    assert plan(ep, region="intl").shots[0].target.base_url == "https://dashscope-intl.aliyuncs.com/api/v1"


def test_budgets_in_seconds_and_money(write: Write, series: Path) -> None:
    ep = episode(write, "  - {id: a, duration: 10, prompt: '{{ mia }}'}\n  - {id: b, duration: 10, prompt: '{{ mia }}'}\n")
    assert plan(ep, budget_seconds=Decimal(20)).over_budget() == []
    (over,) = plan(ep, budget_seconds=Decimal(19)).over_budget()
    assert over == "budget given on the command line: 20 billed seconds cross the budget of 19 s"
    (money,) = plan(ep, budget_money=Decimal("1.99")).over_budget()
    assert money == "budget given on the command line: 2.00 EUR crosses the budget of 1.99"
    ep2 = episode(write, "  - {id: a, model: wan2.6-r2v, prompt: '{{ mia }}'}\n", name="ep2.yaml")
    # refused when validating, with a place, not only when planning (it was plan's exit 1 with no place)
    assert problems(ep2, budget_money=Decimal(5))[0] == (
        "ep2.yaml:1:1: --budget-money needs a price for every shot, and prices has none for dashscope wan2.6-r2v 720P in this episode"
    )


def test_a_money_budget_without_prices_is_refused_at_its_place(write: Write, media: Media) -> None:
    media("a.png", "png")
    ep = write("ep.yaml", "cast: {a: {image: a.png}}\nbudget: {money: 5}\nshots:\n  - {id: s, prompt: '{{ a }}'}\n")
    assert problems(ep) == [
        "ep.yaml:2:17: budget.money needs a price for every shot, and prices has none for dashscope wan2.7-r2v 1080P"
    ]


def test_no_price_no_cost(write: Write, media: Media) -> None:
    media("a.png", "png")
    ep = write("ep.yaml", "cast: {a: {image: a.png}}\nshots:\n  - {id: s, prompt: '{{ a }}'}\n")
    (shot,) = plan(ep).shots
    assert shot.rate is None and shot.cost is None


# --- fingerprints -----------------------------------------------------------------------


def test_fingerprint_ignores_cosmetics_and_sees_content(write: Write, series: Path, media: Media, media_bytes: dict[str, bytes]) -> None:
    block = "  - id: a\n    duration: 6\n    prompt: '{{ mia }} meets {{ leo }}'\n"
    flow = "# a comment\n  - {prompt: \"{{ mia }} meets {{ leo }}\",   duration: 6, id: a}   # trailing\n"
    first = plan(episode(write, block)).shots[0].fingerprint
    assert plan(episode(write, flow)).shots[0].fingerprint == first
    # the same bytes under another name: same request, same video
    media("m/mia-renamed.png", "png")
    renamed = write("series.yaml", (series.read_text()).replace("m/mia.png", "m/mia-renamed.png"))
    assert renamed.exists() and plan(episode(write, block)).shots[0].fingerprint == first
    # changed bytes: a new request
    write("m/mia-renamed.png", media_bytes["jpeg"])
    assert plan(episode(write, block)).shots[0].fingerprint != first


def test_fingerprint_sees_every_sent_setting(write: Write, series: Path) -> None:
    base = "  - {id: a, prompt: '{{ mia }}'%s}\n"
    prints = {plan(episode(write, base % extra)).shots[0].fingerprint for extra in ["", ", seed: 1", ", seed: 2", ", duration: 6", ", watermark: true"]}
    assert len(prints) == 5


def test_freepik_webhook_does_not_change_the_fingerprint(write: Write, media: Media) -> None:
    media("p/a.png", "png")
    shots = "cast: {a: {image: p/a.png}}\nshots:\n  - {id: s, prompt: '{{ a }}'}\n"
    one = write("one.yaml", "provider: {name: freepik, public_urls: {p: 'https://c.test/p'}, webhook_url: 'https://h.test/1'}\n" + shots)
    two = write("two.yaml", "episode: two\nprovider: {name: freepik, public_urls: {p: 'https://c.test/p'}, webhook_url: 'https://h.test/2'}\n" + shots)
    a, b = plan(one).shots[0], plan(two).shots[0]
    assert a.body["webhook_url"] != b.body["webhook_url"]
    assert a.fingerprint == b.fingerprint


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    order=st.permutations(["id: a", "duration: 6", "seed: 3", "prompt: '{{ mia }} waves'"]),
    flow=st.booleans(),
    comment=st.booleans(),
)
def test_fingerprint_is_stable_under_reformatting(write: Write, series: Path, order: list[str], flow: bool, comment: bool) -> None:
    if flow:
        lines = ["  - {" + ",  ".join(order) + "}" + ("  # why this shot exists" if comment else "")]
    else:
        lines = [f"  - {order[0]}"] + [f"    {line}" for line in order[1:]]
        if comment:
            lines.insert(1, "    # why this shot exists")
    reference = plan(episode(write, "  - {id: a, duration: 6, seed: 3, prompt: '{{ mia }} waves'}\n")).shots[0].fingerprint
    assert plan(episode(write, "\n".join(lines) + "\n")).shots[0].fingerprint == reference



def test_planning_pauses_the_cycle_collector_and_gives_it_back_as_it_found_it(
    write: Write, series: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """make_plan turns the cycle collector off while it builds the plan (it walks the whole,
    growing heap otherwise) and leaves it as it found it: on stays on, off (a caller's choice)
    stays off, also when planning raises."""
    ep = episode(write, "  - {id: s1, prompt: '{{ mia }} waves'}\n")
    real_load = planner_module.load_episodes
    seen: list[bool] = []

    def spy(paths: list[Path], diagnostics: Diagnostics) -> object:
        seen.append(gc.isenabled())
        return real_load(paths, diagnostics)

    def broken(paths: list[Path], diagnostics: Diagnostics) -> object:
        raise RuntimeError("the manifest could not be read")

    monkeypatch.setattr(planner_module, "load_episodes", spy)
    assert gc.isenabled()
    assert plan(ep).shots and seen == [False] and gc.isenabled()
    gc.disable()
    try:
        plan(ep)
        assert not gc.isenabled()
    finally:
        gc.enable()
    monkeypatch.setattr(planner_module, "load_episodes", broken)
    with pytest.raises(RuntimeError):
        plan(ep)
    assert gc.isenabled()


def test_a_base_named_directly_and_through_a_link_plans_the_same_whichever_episode_comes_first(tmp_path: Path) -> None:
    """Each name of a file is read on its own: a base's media are looked for beside the
    name an episode gives it (here the link's folder, which has none), whatever order
    the episodes are given in."""
    from r2v_pipeline.media import synth

    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "mia.png").write_bytes(synth.image_bytes(256, 256))
    (tmp_path / "series.yaml").write_text("series: s\ndefaults: {model: wan2.7-r2v, resolution: 720P, duration: 5}\ncast:\n  mia: {image: media/mia.png}\n")
    (tmp_path / "one.yaml").write_text("extends: series.yaml\nepisode: one\nshots:\n  - {id: a, prompt: '{{ mia }} waves'}\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "series.yaml").symlink_to(tmp_path / "series.yaml")
    (tmp_path / "b" / "two.yaml").write_text("extends: series.yaml\nepisode: two\nshots:\n  - {id: a, prompt: '{{ mia }} waves'}\n")
    outcomes = []
    for order in ([tmp_path / "one.yaml", tmp_path / "b" / "two.yaml"], [tmp_path / "b" / "two.yaml", tmp_path / "one.yaml"]):
        diagnostics = Diagnostics()
        made = make_plan(order, PlanOptions(), diagnostics)
        outcomes.append(({d.message for d in diagnostics.errors}, sorted((s.episode, s.fingerprint) for s in made.shots)))
    assert outcomes[0] == outcomes[1]
    errors = outcomes[0][0]
    assert len(errors) == 1 and f"looked at {tmp_path / 'b' / 'media' / 'mia.png'}" in next(iter(errors))  # episode two's, beside the link
