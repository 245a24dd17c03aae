"""Whatever a manifest holds, planning ends in a plan or in placed messages, never a crash."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r2v_pipeline.diagnostics import Diagnostics
from r2v_pipeline.media import synth
from r2v_pipeline.plan.planner import PlanOptions, make_plan

FOLDER = Path(tempfile.mkdtemp(prefix="r2v-fuzz-"))
(FOLDER / "a.png").write_bytes(synth.image_bytes(256, 256))
(FOLDER / "v.mp4").write_bytes(synth.video_bytes(160, 160, 1.0))

KEYS = ["model", "duration", "resolution", "ratio", "size", "audio", "shot_type", "seed", "prompt_extend", "watermark", "negative_prompt", "first_frame", "voice", "cast", "vars", "takes", "id", "prompt"]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 20)
    | st.sampled_from(["wan2.7-r2v", "wan2.6-r2v", "wan2.6-r2v-flash", "720P", "16:9", "1280*720", "multi", "a.png", "v.mp4", "https://x.test/a.png", "{{ a }}", "{{ b }} {% if x %}{{ a }}{% endif %}", "{{ a.description }}", "{{"])
    | st.text(max_size=8)
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "x", "image", "video", "url"]), inner, max_size=3), max_leaves=6)
shots = st.lists(st.dictionaries(st.sampled_from(KEYS), values, max_size=8), max_size=4)
documents = st.fixed_dictionaries(
    {
        "cast": st.dictionaries(
            st.sampled_from(["a", "b", "c"]),
            st.dictionaries(st.sampled_from(["image", "video", "voice", "storyboard", "duration", "description"]), values, max_size=3),
            max_size=3,
        ),
        "shots": shots,
    },
    optional={
        "provider": st.dictionaries(st.sampled_from(["name", "region", "public_urls", "webhook_url"]), values, max_size=2),
        "defaults": st.dictionaries(st.sampled_from(KEYS[:11]), values, max_size=4),
        "vars": st.dictionaries(st.sampled_from(["x", "y"]), values, max_size=2),
        "budget": st.dictionaries(st.sampled_from(["seconds", "money"]), values, max_size=2),
        "prices": values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_manifests_never_crash_the_planner(document: dict) -> None:
    path = FOLDER / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document))
    diagnostics = Diagnostics()
    plan = make_plan([path], PlanOptions(), diagnostics)
    if diagnostics.errors:
        assert all(d.position.line >= 1 for d in diagnostics.errors)
    else:
        assert len(plan.shots) >= len(document["shots"])
