"""Hostile prompt templates end quickly, in small memory, with a PromptError naming the bound they cross."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from r2v_pipeline.cli import main
from r2v_pipeline.media import synth
from r2v_pipeline.plan.prompt import PromptError, compile_prompt, render

# Bounds as their errors name them.
LOOPS = "more than 20,000 loop iterations"
SIZE = "more than 50,000 characters or items"
BITS = "integer of more than 1,024 bits"
BUILT = "more than 2,000,000 characters and items in all"
NESTING = "more than 50 deep"
TIME = "runs longer than 1 s"
PRINTED = "renders to over 50000 characters"
SANDBOX = "not allowed in a prompt template"

HOSTILE = {
    # what the review found
    "nested ranges": (
        "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
        "{% endfor %}{% endfor %}{% endfor %}",
        LOOPS,
    ),
    "nested loops over a list": (
        "{% set l = range(1000)|list %}{% for a in l %}{% for b in l %}{% for c in l %}{% endfor %}{% endfor %}{% endfor %}",
        LOOPS,
    ),
    "center": ("{{ 'a'|center(2000000000) }}", SIZE),
    "namespace doubling": (
        "{% set ns = namespace(s='ab') %}{% for i in range(999) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        SIZE,
    ),
    "power tower": ("{{ 9 ** 64 ** 64 ** 64 }}", BITS),
    "huge base": ("{{ (9 ** 300) ** 2 }}", BITS),
    "wordwrap amplifying": ("{{ ('a ' * 20000)|wordwrap(1, wrapstring='-' * 40000) }}", SIZE),
    "indent": (r"{{ 'a\nb'|indent(2000000000) }}", SIZE),
    "indent by a string": (r"{{ ('\n' * 40000)|indent('x' * 40000, true) }}", SIZE),
    "format width": ("{{ '%9999999999d'|format(1) }}", SIZE),
    "format star width": ("{{ '%*d'|format(999999999, 1) }}", SIZE),
    "% repeating a value": ("{{ ('%(a)s' * 9000) % {'a': 'x' * 9000} }}", SIZE),
    "str.format width": ("{{ '{:>999999999}'.format(1) }}", SIZE),
    "str.format nested width": ("{{ '{:>{}}'.format(1, 999999999) }}", SIZE),
    "str.format repeating": ("{{ ('{0}' * 10000).format('x' * 10000) }}", SIZE),
    "join": ("{{ range(40000)|join(',' * 40000) }}", SIZE),
    "str.join": ("{{ ('x' * 40000).join(range(40000)|map('string')) }}", SIZE),
    "replace": ("{{ ('a' * 40000)|replace('a', 'b' * 40000) }}", SIZE),
    "str.replace of nothing": ("{{ ('x' * 1000).replace('', 'y' * 1000) }}", SIZE),
    "repetition": ("{{ 'x' * 100000000 }}", SIZE),
    "list repetition": ("{{ [0] * 100000000 }}", SIZE),
    # loops over other things
    "dict.items": (
        "{% set d = {}.fromkeys(range(5000), 1) %}"
        "{% for a in d.items() %}{% for b in d.items() %}{% endfor %}{% endfor %}",
        LOOPS,
    ),
    "a long string": ("{% for c in 'x' * 50000 %}{% for d in 'y' * 50000 %}{% endfor %}{% endfor %}", LOOPS),
    "loop.cycle": (
        "{% for i in range(1000) %}{% for j in range(1000) %}{% if loop.cycle('a', 'b') == 'c' %}{% endif %}"
        "{% endfor %}{% endfor %}",
        LOOPS,
    ),
    "loop filter": ("{% for i in range(50000) %}{% for j in range(50000) if j < 0 %}{% endfor %}{% endfor %}", LOOPS),
    # recursion
    "macro calling itself": ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NESTING),
    "macro calling itself twice": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
        LOOPS,
    ),
    "macro doubling its argument": ("{% macro d(s, n) %}{{ d(s ~ s, n - 1) if n else s }}{% endmacro %}{{ d('ab', 40) }}", SIZE),
    "recursive loop": ("{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}", NESTING),
    "caller": (
        "{% macro f() %}{{ caller() }}{% endmacro %}"
        "{% macro g(n) %}{% call f() %}{{ g(n + 1) }}{% endcall %}{% endmacro %}{{ g(0) }}",
        NESTING,
    ),
    # filters and methods with huge counts or widths
    "batch": ("{{ [1, 2]|batch(1000000000, 0)|list }}", SIZE),
    "slice": ("{{ [1, 2]|slice(1000000000)|list }}", SIZE),
    "sum of lists": ("{{ range(40000)|batch(1)|sum(start=[]) }}", SIZE),
    "tojson indent": ("{{ [[['x']]]|tojson(indent=1000000000) }}", SIZE),
    "urlize target": ("{{ ('a.com ' * 5000)|urlize(target='x' * 40000) }}", SIZE),
    "round": ("{{ 5|round(-1000000000) }}", BITS),
    "joiner": ("{% set j = joiner('x' * 40000) %}{% set s %}{% for i in range(9000) %}{{ j() }}{% endfor %}{% endset %}", BUILT),
    "a block repeating a value": (
        "{% set x = 'x' * 40000 %}{% set s %}{% for i in range(9000) %}{{ x }}{% endfor %}{% endset %}",
        SIZE,
    ),
    "a macro repeating a value": (
        "{% macro m(x) %}{% for i in range(9000) %}{{ x }}{% endfor %}{% endmacro %}{{ m('x' * 40000)|length }}",
        SIZE,
    ),
    "printed joiner": ("{% set j = joiner('x' * 40000) %}{% for i in range(9000) %}{{ j() }}{% endfor %}", PRINTED),
    "str.center": ("{{ 'x'.center(10 ** 9) }}", SIZE),
    "bytes.zfill": ("{{ 'x'.encode().zfill(10 ** 9) }}", SIZE),
    "int.to_bytes": ("{{ (7).to_bytes(10 ** 9, 'big') }}", SIZE),
    "str.translate": ("{{ ('a' * 100).translate({97: 'b' * 10000}) }}", SIZE),
    "str.expandtabs": (r"{{ ('\t' * 1000).expandtabs(10000) }}", SIZE),
    # values that grow in place or by sharing
    "list.extend doubling": ("{% set l = [1] %}{% for i in range(40) %}{% if l.extend(l) %}{% endif %}{% endfor %}", SIZE),
    "list holding itself": ("{% set l = [] %}{% if l.append(l) %}{% endif %}{{ l }}", SIZE),
    "shared halves": (
        "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(60) %}"
        "{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}",
        SIZE,
    ),
    "cycler items": (
        "{% set ns = namespace(t=cycler(1).items) %}{% for i in range(60) %}"
        "{% set ns.t = cycler(ns.t, ns.t).items %}{% endfor %}{{ {ns.t: 1} }}",
        SIZE,
    ),
    "integer squaring": ("{% set ns = namespace(n=3) %}{% for i in range(100) %}{% set ns.n = ns.n * ns.n %}{% endfor %}", BITS),
    "range of a huge integer": ("{% for i in range(10 ** 300) %}{% endfor %}", SIZE),
    "range of a too long integer": ("{% for i in range(2 ** 1023 * 4) %}{% endfor %}", BITS),
    "many big strings": ("{% for i in range(1000) %}{% set x = 'y' * 40000 %}{% endfor %}", BUILT),
    # kept alive side by side: whichever comes first, the total or the clock, memory stays small
    "many lists kept": (
        "{% set ns = namespace() %}" + "".join(f"{{% set ns.a{i} = range(9000)|list %}}" for i in range(400)),
        (BUILT, TIME),
    ),
    "slow steps": ("{% set l = range(8000)|list %}{% for i in range(19999) %}{% if l|max < 0 %}{% endif %}{% endfor %}", TIME),
    # escapes the sandbox refuses
    "__class__": ("{{ ''.__class__.__mro__ }}", SANDBOX),
    "mro": ("{{ ''.__class__.mro() }}", SANDBOX),
    "__globals__": ("{{ cycler.__init__.__globals__ }}", SANDBOX),
    "__subclasses__": ("{{ ().__class__.__base__.__subclasses__() }}", SANDBOX),
    "attr filter": ("{{ (lipsum|attr('__globals__')) }}", SANDBOX),
}

# Renders one template the way the planner does, in a process of its own, and
# reports the error and how much memory the render took beyond the import.
RUNNER = """
import json, resource, sys, time
from r2v_pipeline.plan.prompt import PromptError, compile_prompt, render_tracking
source = sys.stdin.read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.monotonic()
try:
    render_tracking(compile_prompt(source), {}, {"mia": "a baker"})
    error, line = None, None
except PromptError as err:
    error, line = err.message, err.line
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"error": error, "line": line, "seconds": time.monotonic() - start, "grown_kb": grown}))
"""


@pytest.mark.parametrize(("source", "bound"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_template_stops_at_a_bound(source: str, bound: str | tuple[str, ...]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", RUNNER], input=source, capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(done.stdout)
    bounds = bound if isinstance(bound, tuple) else (bound,)
    assert result["error"] is not None and any(b in result["error"] for b in bounds), result
    assert result["line"] == 1
    assert result["seconds"] < 5
    assert result["grown_kb"] < 200 * 1024


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        (
            "{{ mia }} walks.\n{% for a in range(1000) %}\n{% for b in range(1000) %}{% endfor %}\n{% endfor %}",
            3,
            f"the template runs {LOOPS} (macro calls included)",
        ),
        ("{{ mia }} walks.\n{% for a in range(9000) %}\n{{ 'x' * 40 }}\n{% endfor %}", 3, f"the template {PRINTED}"),
    ],
)
def test_the_error_points_at_the_line_that_crosses_the_bound(source: str, line: int, message: str) -> None:
    with pytest.raises(PromptError) as caught:
        render(compile_prompt(source), {"mia": "Mia"})
    assert (caught.value.line, caught.value.message) == (line, message)


def test_all_loops_share_one_budget_per_render() -> None:
    loop = "{% for i in range(8000) %}{% endfor %}"
    render(compile_prompt(loop * 2), {})  # 16,000 iterations, and again: each render has its own budget
    render(compile_prompt(loop * 2), {})
    with pytest.raises(PromptError, match=LOOPS):
        render(compile_prompt(loop * 3), {})


@pytest.mark.parametrize("source", ["{{ " + "[" * 3000 + "]" * 3000 + " }}", "{% if 1 %}" * 500 + "{% endif %}" * 500])
def test_source_nested_too_deeply_is_a_syntax_error(source: str) -> None:
    with pytest.raises(PromptError, match="nested too deeply"):
        compile_prompt(source)


def test_a_cycler_of_nothing_is_a_template_error() -> None:
    with pytest.raises(PromptError, match="at least one item"):
        render(compile_prompt("{{ cycler() }}"), {})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{% for x in range(3)|map('string') %}{{ loop.revindex }}{{ x }}{% endfor %}", "302112"),
        ("{% for i in range(3) %}{{ i }}{% if not loop.last %}, {% endif %}{% endfor %}", "0, 1, 2"),
        ("{% for x in 'ab'|list recursive %}{{ x }}{{ loop.length }}{% endfor %}", "a2b2"),
        ("{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}", "a=1"),
        ("{{ ['a', 'b']|join(', ') }} {{ [1, 2]|sum }} {{ 'x'|center(5) }}|", "a, b 3   x  |"),
        ("{{ '%s and %05.1f'|format('x', 2.5) }} {{ '{:>4}'.format(7) }} {{ '%d%%' % 50 }}", "x and 002.5    7 50%"),
        ("{% set ns = namespace(s='') %}{% for w in ['a', 'b'] %}{% set ns.s = ns.s ~ w %}{% endfor %}{{ ns.s }}", "ab"),
        ("{% macro f(n) %}{{ n }}{% if n %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}", "3210"),
        ("{{ 2 ** 10 }} {{ 12 * 3 }} {{ [1] + [2] }} {{ 'a' * 3 }} {{ 7 % 4 }}", "1024 36 [1, 2] aaa 3"),
        ("{% set l = [] %}{% for i in range(3) %}{% if l.append(i) %}{% endif %}{% endfor %}{{ l }}", "[0, 1, 2]"),
        ("{% for a, b in [(1, 2)] %}{{ a + b }}{% endfor %}{% for x in range(5) if x is odd %}{{ x }}{% else %}none{% endfor %}", "313"),
    ],
)
def test_ordinary_templates_render_as_before(source: str, expected: str) -> None:
    assert render(compile_prompt(source), {}) == expected


def test_validate_reports_the_shot_whose_prompt_crosses_a_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mia.png").write_bytes(synth.image_bytes(256, 256, "png"))
    episode = tmp_path / "ep.yaml"
    episode.write_text(
        "cast: {mia: {image: mia.png}}\n"
        "shots:\n"
        "  - id: calm\n"
        "    prompt: '{{ mia }} at a quiet harbour.'\n"
        "  - id: storm\n"
        "    prompt: |\n"
        "      {{ mia }} watches the waves.\n"
        "      {% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}\n"
    )
    code = main(["validate", str(episode)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[0] == f"{episode}:8:13: prompt: the template runs {LOOPS} (macro calls included) (shots[storm])"
