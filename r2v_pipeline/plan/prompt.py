"""Prompt templates: Jinja2 in its sandbox, undefined names as errors, cast as labels.

A template names cast by manifest name (``{{ mia }}``). Rendering runs twice:
the first pass learns which cast the prompt really prints (in branches taken,
through filters), the planner orders those references and numbers them, and
the second pass prints each one's label ("Image 2", "character1").
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import jinja2
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

MAX_RENDERED = 50_000  # far beyond any model's limit; stops runaway loops early
MAX_RANGE = 1_000
MAX_REPEAT = 10_000


class PromptError(Exception):
    """A template that cannot render; ``line`` counts from the template's first line."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line


class _PromptEnvironment(SandboxedEnvironment):
    # Bound the operators that can build huge values from tiny templates.
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**":
            if isinstance(right, (int, float)) and abs(right) > 64:
                raise PromptError(f"exponent {right} is too large for a prompt")
            return operator.pow(left, right)
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and count * max(1, len(seq)) > MAX_REPEAT:
                raise PromptError("a repetition in the template would make text too long for a prompt")
        return operator.mul(left, right)


def _bounded_range(*args: int) -> range:
    values = range(*args)
    if len(values) > MAX_RANGE:
        raise PromptError(f"range() of {len(values)} items; prompts allow at most {MAX_RANGE}")
    return values


_ENV = _PromptEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.globals["range"] = _bounded_range
_GLOBALS = frozenset(_ENV.globals)


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


# Names Jinja itself provides inside templates.
_BUILTIN_NAMES = frozenset({"loop", "self", "super", "caller", "varargs", "kwargs"})

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
        try:
            cached = (_simple(source) if simple else None) or _jinja(source)
        except jinja2.TemplateSyntaxError as err:
            cached = PromptError(f"template syntax: {err.message}", err.lineno)
        if simple:
            _CACHE[source] = cached
    if isinstance(cached, PromptError):
        raise cached
    return cached


def _simple(source: str) -> Template | None:
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


# Compiled code by template shape. Templates that differ only in their literal
# text (a series' prompts written from one pattern) share one compilation: the
# text is lifted out of the code into the context, under a name no manifest
# can use (manifest names cannot start with "__").
_TEXTS = "__r2v_texts"
_SHAPES: dict[tuple[str, tuple[int, ...]], jinja2.Template] = {}


def _jinja(source: str) -> Template:
    tree = _ENV.parse(source)
    lines: dict[str, int] = {}
    assigned: set[str] = set()
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load":
            lines.setdefault(node.name, node.lineno)
        else:
            assigned.add(node.name)
    names = frozenset(lines) - assigned - _GLOBALS - _BUILTIN_NAMES
    texts: list[str] = []
    for output in tree.find_all(nodes.Output):
        for i, child in enumerate(output.nodes):
            if isinstance(child, nodes.TemplateData):
                lookup = nodes.Getitem(nodes.Name(_TEXTS, "load"), nodes.Const(len(texts)), "load")
                lookup.set_lineno(child.lineno)
                output.nodes[i] = lookup
                texts.append(child.data)
    shape = (repr(tree), tuple(node.lineno for node in tree.find_all(nodes.Node)))
    compiled = _SHAPES.get(shape)
    if compiled is None:
        compiled = _SHAPES[shape] = _ENV.from_string(tree)
    return Template(source, compiled, (), names, lines, tuple(texts))


def undefined_names(template: Template, known: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Names the template reads that nothing defines, with the line of first use."""
    return sorted(
        ((name, template.name_lines.get(name, 1)) for name in template.names if name not in known),
        key=lambda item: (item[1], item[0]),
    )


def render(template: Template, context: Mapping[str, Any]) -> str:
    """Render with a bound on the output; surrounding whitespace is trimmed."""
    if template.compiled is None:
        return _render_simple(template, context)
    out: list[str] = []
    size = 0
    try:
        for chunk in template.compiled.generate({**context, _TEXTS: template.texts}):
            size += len(chunk)
            if size > MAX_RENDERED:
                raise PromptError(f"the template renders to over {MAX_RENDERED} characters")
            out.append(chunk)
    except PromptError as err:
        if err.line is None:
            err.line = _template_line(err)
        raise
    except jinja2.UndefinedError as err:
        raise PromptError(_undefined_message(err), _template_line(err)) from None
    except jinja2.exceptions.SecurityError as err:
        raise PromptError(f"not allowed in a prompt template: {err}", _template_line(err)) from None
    except (jinja2.TemplateError, ArithmeticError, TypeError, ValueError, LookupError, AttributeError, RecursionError) as err:
        raise PromptError(f"template failed: {err}", _template_line(err)) from None
    return "".join(out).strip()


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
    return "".join(out).strip()


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


_UNDEFINED = re.compile(r"'([^']+)' is undefined")


def _undefined_message(err: jinja2.UndefinedError) -> str:
    match = _UNDEFINED.search(str(err))
    if match:
        return f'template uses "{match.group(1)}", which is not defined'
    return f"template: {err}"


def _template_line(err: BaseException) -> int | None:
    """The template line an error came from, read off the rewritten traceback."""
    line = None
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
