"""Prompt templates: Jinja2 in its sandbox, undefined names as errors, cast as labels.

A template names cast by manifest name (``{{ mia }}``). Rendering runs twice:
the first pass learns which cast the prompt really prints (in branches taken,
through filters), the planner orders those references and numbers them, and
the second pass prints each one's label ("Image 2", "character1").

Most prompts are simple templates (text and ``{{ name }}``), rendered here
without Jinja. Any other is parsed, compiled and rendered by sandbox.py, which
is imported only then: ``r2v validate`` of simple prompts never loads Jinja.
Every render runs under a work budget (below; enforced inside the sandbox): a
hostile template fails with a ``PromptError`` at its line instead of hanging
or exhausting memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    import jinja2

# --- The work budget ---------------------------------------------------------
# The models read at most 5,000 characters of prompt, so a template has no
# business building much more text than that, looping more than a few hundred
# times, or computing numbers longer than a sentence. The bounds leave an order
# of magnitude of headroom over what any real prompt needs; each one is named,
# with its value, in the error a template gets for crossing it.
MAX_RENDERED = 50_000  # printed characters: 10x the longest prompt a model reads
# Any one value built while rendering (a string, a list, a dict, a range, the
# text of a macro or a {% set %} block), in characters or items; items nested
# in containers count every time they would print. No value needs to outgrow
# the most the template may print.
MAX_SIZE = MAX_RENDERED
# Everything built in one render, summed (text in characters, containers in
# items): 40x MAX_SIZE, so building a prompt a piece at a time (``ns.s ~
# piece``) has room, while what a render can hold stays within tens of MB.
MAX_BUILT = 2_000_000
# Loop iterations, all loops together, nested included (macro calls count too):
# printing the longest prompt one character per iteration takes 5,000; four
# times that leaves room for loops that skip most of their items. Jinja spends
# up to ~15 us on an iteration that calls something, so this is ~0.3 s at most.
MAX_ITERATIONS = 20_000
# Macro calls and recursive loops inside one another. Python's own recursion
# limit would stop near 140 levels with a traceback; 50 is far more than a
# prompt's nested cast or beats need.
MAX_NESTING = 50
# Integers, operands and results: 1,024 bits is over 300 digits, more than a
# prompt ever prints, and keeps every multiplication a microsecond's work.
MAX_BITS = 1_024
# Wall time per render, checked at loop iterations, calls and filters. Real
# prompts render in well under a millisecond, and MAX_ITERATIONS cheap steps in
# a third of this; a template reaches it only by repeating costly but bounded
# steps (each call or filter on values near MAX_SIZE).
MAX_SECONDS = 1.0


class PromptError(Exception):
    """A template that cannot render; ``line`` counts from the template's first line."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line


class CastRef:
    """What a template sees for a cast member: prints as its label."""

    __slots__ = ("_name", "_label", "_description", "_seen")

    def __init__(self, name: str, label: str, description: str, seen: Callable[[str], None]):
        self._name, self._label, self._description, self._seen = name, label, description, seen

    def __str__(self) -> str:
        self._seen(self._name)
        return self._label

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._description

    @property
    def label(self) -> str:
        return str(self)


# The simple templates most prompts are: text and {{ name }} with a few filters.
# They render without Jinja's compiler (about 1 ms a template) and exactly as
# Jinja would render them (tests/test_prompt.py holds the two to the same output).
_SIMPLE_FILTERS: dict[str, Callable[[str], str]] = {
    "upper": str.upper,
    "lower": str.lower,
    "capitalize": str.capitalize,
    "trim": str.strip,
}
_SIMPLE_EXPR = re.compile(r"\{\{[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*((?:\|[ \t]*(?:upper|lower|capitalize|trim)[ \t]*)*)\}\}")
_FILTER_NAME = re.compile(r"[a-z]+")
_JINJA_MARKS = ("{{", "{%", "{#", "\r")

@dataclass(frozen=True)
class Template:
    """A compiled prompt: Jinja's template, or the parts of a simple one rendered without Jinja."""

    source: str
    compiled: jinja2.Template | None  # None: a simple template, rendered from ``parts``
    parts: tuple[Any, ...]  # simple: text, or (name, filters) for each {{ name | filter }}
    names: frozenset[str]  # names the template reads from its context
    name_lines: Mapping[str, int]  # first line each name is read on
    texts: tuple[str, ...] = ()  # Jinja: the literal text, lifted out of the compiled code


_CACHE: dict[str, Template | PromptError] = {}


def compile_prompt(source: str, *, simple: bool = True) -> Template:
    """Parse and compile once per distinct text (shots often share templates).
    ``simple=False`` forces Jinja even for simple templates (for tests)."""
    cached = _CACHE.get(source) if simple else None
    if cached is None:
        cached = _simple(source) if simple else None
        if cached is None:
            from .sandbox import compile_jinja

            cached = compile_jinja(source)
        if simple:
            _CACHE[source] = cached
    if isinstance(cached, PromptError):
        raise cached
    return cached


def _simple(source: str) -> Template | None:
    if "{%" in source or "{#" in source or "\r" in source:
        return None  # a statement, comment or CR is outside every {{ name }}, so in some text below
    parts: list[Any] = []
    lines: dict[str, int] = {}
    end = 0
    for match in _SIMPLE_EXPR.finditer(source):
        text = source[end : match.start()]
        # a "{" just before the tag would make Jinja's tag start one character earlier
        if any(mark in text for mark in _JINJA_MARKS) or text.endswith("{"):
            return None
        parts.append(text)
        name = match.group(1)
        parts.append((name, tuple(_FILTER_NAME.findall(match.group(2)))))
        lines.setdefault(name, source.count("\n", 0, match.start()) + 1)
        end = match.end()
    tail = source[end:]
    if any(mark in tail for mark in _JINJA_MARKS):
        return None
    parts.append(tail)
    return Template(source, None, tuple(p for p in parts if p != ""), frozenset(lines), lines)

def undefined_names(template: Template, known: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Names the template reads that nothing defines, with the line of first use."""
    return sorted(
        ((name, template.name_lines.get(name, 1)) for name in template.names if name not in known),
        key=lambda item: (item[1], item[0]),
    )

def render(template: Template, context: Mapping[str, Any]) -> str:
    """Render under the work budget; surrounding whitespace is trimmed."""
    if template.compiled is None:
        return _render_simple(template, context)
    from .sandbox import render_compiled

    return render_compiled(template, context)


def _render_simple(template: Template, context: Mapping[str, Any]) -> str:
    out = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        name, filters = part
        if name not in context:
            raise PromptError(f'template uses "{name}", which is not defined', template.name_lines.get(name))
        text = str(context[name])
        for f in filters:
            text = _SIMPLE_FILTERS[f](text)
        out.append(text)
    text = "".join(out)
    if len(text) > MAX_RENDERED:  # as the Jinja path would refuse it
        raise PromptError(f"the template renders to over {MAX_RENDERED} characters")
    return text.strip()


def render_tracking(template: Template, context: Mapping[str, Any], cast: Mapping[str, str]) -> tuple[str, list[str]]:
    """Render with ``cast`` (name -> description) printing as names; returns the
    text and the cast names printed, in first-use order."""
    used: dict[str, None] = {}
    refs = {name: CastRef(name, name, description, lambda n: used.setdefault(n)) for name, description in cast.items()}
    text = render(template, {**context, **refs})
    return text, list(used)


def render_labelled(
    template: Template, context: Mapping[str, Any], cast: Mapping[str, str], labels: Mapping[str, str]
) -> str:
    """Render with every cast member printing as its label.
    Cast not sent with this request print as their names (the first pass saw they are not printed)."""
    refs = {
        name: CastRef(name, labels.get(name, name), description, lambda n: None) for name, description in cast.items()
    }
    return render(template, {**context, **refs})
