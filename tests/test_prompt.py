"""Prompt templates: sandboxed Jinja2, undefined names as errors, cast printed as labels."""

from __future__ import annotations

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r2v_pipeline.plan import prompt, sandbox
from r2v_pipeline.plan.prompt import PromptError, compile_prompt, render, render_labelled, render_tracking


def test_tracking_sees_only_cast_the_rendered_text_prints() -> None:
    t = compile_prompt("{{ mia | upper }} waves.{% if night %} {{ leo }} sleeps.{% endif %} {{ cup.description }}")
    text, used = render_tracking(t, {"night": False}, {"mia": "", "leo": "", "cup": "a chipped cup"})
    assert used == ["mia"]  # leo's branch was not taken; cup's description is not the cup itself
    assert text.endswith("a chipped cup")


def test_labels_go_through_filters() -> None:
    t = compile_prompt("{{ boy | capitalize }} meets {{ girl }}.")
    assert render_labelled(t, {}, {"boy": "", "girl": ""}, {"boy": "reference image", "girl": "Video 1"}) == (
        "Reference image meets Video 1."
    )


def test_surrounding_whitespace_is_trimmed() -> None:
    assert render(compile_prompt("\n  hello {{ x }}  \n"), {"x": 1}) == "hello 1"


def test_undefined_names_are_listed_with_their_lines() -> None:
    t = compile_prompt("line one\n{{ mai }}\n{% for x in beats %}{{ x }}{% endfor %}{{ loop_var | default('') }}")
    assert prompt.undefined_names(t, {"mia": ""}) == [("mai", 2), ("beats", 3), ("loop_var", 3)]


def test_undefined_attribute_fails_at_render() -> None:
    t = compile_prompt("{{ mia.nickname }}")
    with pytest.raises(PromptError) as caught:
        render_tracking(t, {}, {"mia": ""})
    assert "nickname" in caught.value.message


def test_syntax_errors_carry_the_template_line() -> None:
    with pytest.raises(PromptError) as caught:
        compile_prompt("ok\n{% if x %}\nno end")
    assert caught.value.line is not None and "template syntax" in caught.value.message


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ mia._name }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_the_sandbox_refuses_escapes(source: str) -> None:
    with pytest.raises(PromptError):
        render_tracking(compile_prompt(source), {}, {"mia": ""})


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 100000000 }}",
        "{{ 2 ** 100000 }}",
        "{% for i in range(100000) %}{% endfor %}",
        "{% for i in range(1000) %}{% for j in range(1000) %}xx{% endfor %}{% endfor %}",
    ],
)
def test_runaway_templates_stop_early(source: str) -> None:
    with pytest.raises(PromptError):
        render(compile_prompt(source), {})


@pytest.mark.parametrize("source", ["{{ lipsum(1) }}", "{{ lipsum(n=1, html=False) }}", "{{ ['rain', 'sun'] | random }}", "{{ 'abc' | random }}"])
def test_a_prompt_that_would_read_differently_on_every_plan_is_refused(source: str) -> None:
    """Jinja's random text and random pick would give the shot another request, another
    fingerprint and another payment on every run: refused, saying why."""
    with pytest.raises(PromptError) as caught:
        render(compile_prompt(f"{{{{ mia }}}} waves. {source}"), {"mia": "Mia"})
    assert "every plan" in caught.value.message and "paid for again" in caught.value.message


def test_templates_sharing_a_shape_keep_their_own_text() -> None:
    a = compile_prompt("Morning. {% if x %}Rain.{% endif %}")
    b = compile_prompt("Evening. {% if x %}Snow.{% endif %}")
    assert a.compiled is b.compiled  # one compilation for both
    assert (render(a, {"x": True}), render(b, {"x": True})) == ("Morning. Rain.", "Evening. Snow.")


# --- the simple path renders exactly as Jinja does ----------------------------------------

names = st.sampled_from(["mia", "leo", "cup", "town"])
filters = st.lists(st.sampled_from(["upper", "lower", "capitalize", "trim"]), max_size=2)
spaces = st.sampled_from(["", " ", "  ", "\t"])
text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="{}%#\r"), max_size=12
) | st.sampled_from(["}", "} }", "%}", " # ", "{ {", "-"])


@st.composite
def simple_templates(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        parts.append(draw(text))
        pipes = "".join(f"{draw(spaces)}|{draw(spaces)}{f}" for f in draw(filters))
        parts.append("{{" + draw(spaces) + draw(names) + pipes + draw(spaces) + "}}")
    parts.append(draw(text))
    return "".join(parts)


values = st.fixed_dictionaries(
    {
        "mia": st.text(max_size=8),
        "leo": st.sampled_from(["Image 1", "character2", "reference video"]),
        "cup": st.integers(-5, 50),
        "town": st.text(alphabet="aBc dE\nß", max_size=6),
    }
)


@settings(max_examples=400, deadline=None)
@given(simple_templates(), values)
def test_simple_path_equals_jinja(source: str, context: dict[str, object]) -> None:
    try:
        slow = compile_prompt(source, simple=False)
    except PromptError:  # what Jinja refuses, the simple path must not accept
        with pytest.raises(PromptError):
            compile_prompt(source)
        return
    fast = compile_prompt(source)
    assert slow.compiled is not None
    if fast.compiled is None:  # it took the simple path
        assert render(fast, context) == render(slow, context)
        assert fast.names == slow.names


# --- templates sharing a skeleton render exactly as Jinja renders each one ----------------

jinja_text = st.text(alphabet=st.sampled_from(list("abc \n\t-.")), max_size=6) | st.sampled_from(["{", "}", "%", "#", "a{b"]) | st.sampled_from(["", " ", "\n", "  \n  "])


@st.composite
def jinja_skeletons(draw: st.DrawFn, depth: int = 0) -> list[object]:
    """A template as fragments: fixed tags and ``None`` where literal text goes."""
    out: list[object] = []
    for _ in range(draw(st.integers(0, 3))):
        out.append(None)
        dash = draw(st.sampled_from(["", "-"]))
        kind = draw(st.sampled_from(["name", "if", "for", "comment", "raw", "set", "bad"] if depth < 2 else ["name", "comment"]))
        if kind == "name":
            out.append("{{ " + draw(names) + draw(st.sampled_from(["", " | upper", " ~ '}'"])) + " }}")
        elif kind == "if":
            out += ["{%" + dash + " if " + draw(names) + " %}", *draw(jinja_skeletons(depth + 1))]
            if draw(st.booleans()):
                out += ["{% else " + dash + "%}", *draw(jinja_skeletons(depth + 1))]
            out.append("{% endif %}")
        elif kind == "for":
            out += ["{% for x in [1, 2] %}", *draw(jinja_skeletons(depth + 1)), "{{ x }}{% endfor %}"]
        elif kind == "comment":
            out.append("{# a note #}")
        elif kind == "raw":
            out += ["{% raw %}", None, "{% endraw %}"]
        elif kind == "set":
            out.append("{% set town = 'Dover' %}")
        else:
            out.append(draw(st.sampled_from(["{% if %}", "{% endif %}", "{{ }}", "{% for %}", "{{ mia"])))
    out.append(None)
    return out


def _fill(fragments: list[object], texts: list[str]) -> str:
    filled = iter(texts)
    return "".join(next(filled) if f is None else str(f) for f in fragments)


def _jinja_alone(source: str) -> prompt.Template:
    """The source compiled by Jinja on its own: no skeleton shared, no text lifted."""
    return prompt.Template(source, sandbox._ENV.from_string(source), (), frozenset(), {})


@settings(max_examples=400, deadline=None)
@given(jinja_skeletons(), st.data(), values)
def test_templates_sharing_a_skeleton_render_as_jinja_renders_each(fragments: list[object], data: st.DataObject, context: dict[str, object]) -> None:
    holes = sum(1 for f in fragments if f is None)
    texts = data.draw(st.lists(jinja_text, min_size=holes, max_size=holes))
    # other texts on the same lines, so that the second mostly shares the first's skeleton
    others = [data.draw(st.text(alphabet=st.sampled_from(list("ab -.}")), max_size=5)) + "\n" * t.count("\n") for t in texts]
    first, second = _fill(fragments, texts), _fill(fragments, others)
    for source in (first, second):  # the second finds the first's skeleton, when its texts keep the lines
        try:
            alone = _jinja_alone(source)
        except jinja2.TemplateSyntaxError as err:
            with pytest.raises(PromptError) as caught:
                compile_prompt(source, simple=False)
            assert (caught.value.message, caught.value.line) == (f"template syntax: {err.message}", err.lineno)
            continue
        shared = compile_prompt(source, simple=False)
        tree = sandbox._ENV.parse(source)
        loaded = {n.name for n in tree.find_all(jinja2.nodes.Name) if n.ctx == "load"}
        stored = {n.name for n in tree.find_all(jinja2.nodes.Name) if n.ctx == "store"}
        assert shared.names == loaded - stored - sandbox._GLOBALS - sandbox._BUILTIN_NAMES
        outcomes = []
        for template in (shared, alone):
            try:
                outcomes.append(render(template, context))
            except PromptError as err:
                outcomes.append(("error", err.message, err.line))
        assert outcomes[0] == outcomes[1]


def test_a_skeleton_is_parsed_once() -> None:
    a = compile_prompt("Rain in Dover. {% if x %}It pours.{% endif %}", simple=False)
    b = compile_prompt("Sun in Leeds. {% if x %}It shines.{% endif %}", simple=False)
    assert a.compiled is b.compiled and a.texts != b.texts
    assert (render(a, {"x": True}), render(b, {"x": False})) == ("Rain in Dover. It pours.", "Sun in Leeds.")
