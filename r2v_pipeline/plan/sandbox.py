"""The Jinja2 sandbox prompt templates compile and render in, under a work budget.

prompt.py imports this module only for a template that is not simple (a
statement, or an expression beyond ``{{ name | upper }}``): planning and
``r2v validate`` of plain prompts never load Jinja.
"""

from __future__ import annotations

import functools
import re
import string
import time
from collections import abc
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.lexer import TOKEN_DATA, Token, TokenStream
from jinja2.parser import Parser
from jinja2.runtime import BlockReference, LoopContext, Macro
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import Cycler, Namespace

from .prompt import MAX_BITS, MAX_BUILT, MAX_ITERATIONS, MAX_NESTING, MAX_RENDERED, MAX_SECONDS, MAX_SIZE, PromptError, Template


def _too_big(what: str) -> PromptError:
    return PromptError(f"the template builds a value of more than {MAX_SIZE:,} characters or items ({what})")


def _too_long(what: str) -> PromptError:
    return PromptError(f"the template computes an integer of more than {MAX_BITS:,} bits ({what})")

class _Meter:
    """What one render has spent so far."""

    __slots__ = ("deadline", "iterations", "built", "nesting")

    def __init__(self) -> None:
        self.deadline = time.monotonic() + MAX_SECONDS
        self.iterations = self.built = self.nesting = 0

    def clock(self) -> None:
        if time.monotonic() > self.deadline:
            raise PromptError(f"the template runs longer than {MAX_SECONDS:g} s")

    def tick(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_ITERATIONS:
            raise PromptError(f"the template runs more than {MAX_ITERATIONS:,} loop iterations (macro calls included)")
        self.clock()

    def spend(self, size: int) -> None:
        self.built += size
        if self.built > MAX_BUILT:
            raise PromptError(f"the template builds more than {MAX_BUILT:,} characters and items in all")

    def enter(self) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise PromptError(f"the template nests macro or block calls or recursive loops more than {MAX_NESTING} deep")


class _Unmetered(_Meter):
    """Outside a render (Jinja folding constants at compile time): sizes are
    still bounded, but there is nothing to count time or totals against."""

    def clock(self) -> None:
        pass

    def tick(self) -> None:
        pass

    def spend(self, size: int) -> None:
        pass


_METER: ContextVar[_Meter] = ContextVar("r2v_template_meter", default=_Unmetered())


# --- Sizes -------------------------------------------------------------------
def _parts(value: Any) -> Iterable[Any] | None:
    """What a container prints; None for anything that prints as itself."""
    if isinstance(value, (list, tuple)):
        return value
    if isinstance(value, (dict, abc.ItemsView)):
        return [*value.keys(), *value.values()] if isinstance(value, dict) else list(value)
    if isinstance(value, (set, frozenset, abc.KeysView, abc.ValuesView)):
        return list(value)
    if isinstance(value, Namespace):  # prints its attributes, which only this name reaches
        return _parts(object.__getattribute__(value, "_Namespace__attrs"))
    if isinstance(value, Cycler):
        return value.items
    return None


def _weight(value: Any, limit: int = MAX_SIZE, nested: bool = False) -> int:
    """About how many characters and items ``value`` prints as, counting shared
    parts each time they print (so ``[[x] * 9] * 9`` weighs 81 x). Stops soon
    after ``limit``, which also ends cycles. ``nested`` adds each item's depth:
    the indentation pprint and tojson give it."""
    total = 0
    stack = [(value, 0)]
    while stack and total <= limit:
        item, depth = stack.pop()
        if isinstance(item, (str, bytes, bytearray)):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3  # about its decimal digits
        else:
            parts = _parts(item)
            if parts is not None:
                total += 1 + len(parts) * (1 + depth * nested)  # type: ignore[arg-type]
                if total <= limit:
                    stack.extend((part, depth + 1) for part in parts)
    return total


def _chars(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, bytearray)) else _weight(value)


def _refuse_over(size: int, what: str) -> None:
    if size > MAX_SIZE:
        raise _too_big(what)


def _checked(value: Any, what: Any = "a value") -> Any:
    """A value the template just built, refused past the bounds and counted.
    ``what`` built it: a name, or the function called."""
    if isinstance(value, (str, bytes, bytearray)):
        if len(value) > MAX_SIZE:
            raise _too_big(_name(what))
        _METER.get().spend(len(value))
    elif isinstance(value, int):
        if value.bit_length() > MAX_BITS:
            raise _too_long(_name(what))
    elif _parts(value) is not None:
        if _weight(value) > MAX_SIZE:
            raise _too_big(_name(what))
        _METER.get().spend(len(value) if isinstance(value, abc.Sized) else 1)
    return value


def _name(what: Any) -> str:
    return what if isinstance(what, str) else getattr(what, "__name__", "a call")


def _int(value: Any) -> int:
    """An argument used as a width or count; anything else counts as 0 and
    is left for the real call to reject."""
    return value if isinstance(value, int) else 0


def _number(digits: str) -> int:
    return int(digits) if len(digits) < 10 else MAX_SIZE + 1  # no slow int() of a huge digit run


def _materialized(value: Any) -> Any:
    """A one-pass iterable as a list, read no further than the size bound."""
    if isinstance(value, (abc.Sized, jinja2.Undefined)):
        return value
    items = []
    for item in value:
        items.append(item)
        _refuse_over(len(items), "a sequence")
    return items


# Format strings: a width or precision is a size; each field prints at most
# the widest of those or the heaviest value (a mapping key may repeat a value).
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.S)
_DIGITS = re.compile(r"\d+")


def _format_size(template: str, fields: int, widest: int, values: Iterable[Any]) -> int:
    heaviest = max((_chars(v) for v in values), default=0)
    return len(template) + fields * max(widest, heaviest)


def _printf_size(template: Any, values: Any) -> int:
    if isinstance(template, (bytes, bytearray)):
        template = template.decode("latin-1")
    if not isinstance(template, str):
        return 0
    if isinstance(values, tuple):
        values = list(values)
    elif isinstance(values, abc.Mapping):
        values = list(values.values())
    else:
        values = [values]
    fields = widest = 0
    for match in _PRINTF.finditer(template):
        if match.group(3) == "%":
            continue
        fields += 1
        for size in match.group(1, 2):
            widest = max(widest, max(map(_int, values), default=0) if size == "*" else _number(size or "0"))
    return _format_size(template, fields, widest, values)


def _brace_size(template: str, values: list[Any]) -> int:
    fields = widest = 0
    try:
        for _, field, spec, _ in string.Formatter().parse(template):
            if field is None:
                continue
            fields += 1
            widest = max([widest, *map(_number, _DIGITS.findall(spec or ""))])
            if spec and "{" in spec:  # a width given by a value
                widest = max([widest, *map(_int, values)])
    except ValueError:
        return 0  # malformed: str.format says why
    return _format_size(template, fields, widest, values)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _replace_size(s: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not (type(s) is type(old) is type(new)) and not all(isinstance(v, str) for v in (s, old, new)):
        return 0
    found = len(s) + 1 if not old else s.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(s) + found * max(0, len(new) - len(old))


# Filters whose output can outgrow their input, each with an upper estimate
# of its output (taking the filter's own parameters), checked before it runs.
def _wordwrap_size(s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, *_: Any, **__: Any) -> int:
    text = _text(s)
    breaks = len(text) - len("".join(text.split())) + text.count("-") + len(text) // max(1, _int(width)) + 1
    return len(text) + breaks * len(_text(wrapstring or "\n"))


def _indent_size(s: Any, width: Any = 4, *_: Any, **__: Any) -> int:
    text = _text(s)
    step = len(width) if isinstance(width, str) else _int(width)
    return len(text) + (text.count("\n") + 1) * step


def _join_size(value: Any, d: Any = "", attribute: Any = None) -> int:
    items = list(value) if isinstance(value, abc.Iterable) else []
    return sum(map(_chars, items)) + max(0, len(items) - 1) * len(_text(d))


def _sum_size(iterable: Any, attribute: Any = None, start: Any = 0) -> int:
    sized = [v for v in (*iterable, start) if not isinstance(v, (int, float))] if isinstance(iterable, abc.Iterable) else []
    return sum(map(_chars, sized))


def _urlize_size(value: Any, trim_url_limit: Any = None, nofollow: Any = False, target: Any = None, rel: Any = None, *_: Any) -> int:
    text = _text(value)
    links = sum(1 for word in text.split() if any(mark in word for mark in ".@:"))
    return 2 * len(text) + links * (40 + len(_text(target or "")) + len(_text(rel or "")))


def _tojson_size(value: Any, indent: Any = None) -> int:
    step = len(indent) if isinstance(indent, str) else _int(indent)
    return _weight(value, nested=True) * (1 + step)


def _round_size(value: Any, precision: Any = 0, method: Any = "common") -> int:
    # round() and the ceil/floor methods compute 10 ** precision
    if abs(_int(precision)) * 10 // 3 > MAX_BITS:
        raise _too_long("round")
    return 0


_FILTER_SIZES: dict[str, Callable[..., int]] = {
    "center": lambda value, width=80: max(len(_text(value)), _int(width)),
    "indent": _indent_size,
    "wordwrap": _wordwrap_size,
    "format": lambda value, *args, **kwargs: _printf_size(_text(value), kwargs or args),
    "join": _join_size,
    "replace": lambda s, old, new, count=None: _replace_size(_text(s), _text(old), _text(new), -1 if count is None else count),
    "batch": lambda value, linecount, fill_with=None: _int(linecount),
    "slice": lambda value, slices, fill_with=None: _int(slices),
    "sum": _sum_size,
    "pprint": lambda value: _weight(value, nested=True),
    "tojson": _tojson_size,
    "urlize": _urlize_size,
    "round": _round_size,
}
_MATERIALIZED = frozenset({"join", "sum"})  # estimated from their items, so read once


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` checking the clock, its output and (for the filters above) its
    estimated output first. The wrapper keeps Jinja's marker for what the filter
    is passed first (context, eval context, environment)."""
    first = 1 if hasattr(func, "jinja_pass_arg") else 0
    size = _FILTER_SIZES.get(name)
    what = f"the {name} filter"

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _METER.get().clock()
        if size is not None and len(args) > first:
            if name in _MATERIALIZED:
                args = (*args[:first], _materialized(args[first]), *args[first + 1 :])
            _refuse_over(size(*args[first:], **kwargs), what)
        return _checked(func(*args, **kwargs), what)

    return bounded


# str and bytes methods that can outgrow their string, by name.
_METHOD_SIZES: dict[str, Callable[..., int]] = {
    "center": lambda s, width=0, *_: max(len(s), _int(width)),
    "ljust": lambda s, width=0, *_: max(len(s), _int(width)),
    "rjust": lambda s, width=0, *_: max(len(s), _int(width)),
    "zfill": lambda s, width=0: max(len(s), _int(width)),
    "expandtabs": lambda s, tabsize=8: len(s) + s.count(b"\t" if isinstance(s, (bytes, bytearray)) else "\t") * _int(tabsize),
    "replace": _replace_size,
    "join": lambda s, items=(): sum(map(_chars, items)) + len(s) * max(0, len(items) - 1),
    "translate": lambda s, table=None, *_: len(s) * max([1, *(_chars(v) for v in _parts(table) or ())]),
}
_GROWING = frozenset({"append", "extend", "insert", "update", "setdefault", "add"})


def _method_args(obj: Any, owner: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Refuse a str/bytes/int method call whose result would outgrow the bounds."""
    name = getattr(obj, "__name__", "")
    if isinstance(owner, (str, bytes, bytearray)) and name in _METHOD_SIZES:
        if name == "join" and args:
            args = (_materialized(args[0]), *args[1:])
        _refuse_over(_METHOD_SIZES[name](owner, *args), f"str.{name}")
    elif isinstance(owner, int) and name == "to_bytes":
        _refuse_over(_int(args[0]) if args else 1, "int.to_bytes")
    return args


def _check_growth(obj: Any, owner: Any) -> None:
    """After list.append and friends: the list may not outgrow the bounds."""
    if isinstance(owner, (list, dict, set)) and getattr(obj, "__name__", "") in _GROWING:
        _refuse_over(_weight(owner), f"{type(owner).__name__}.{obj.__name__}")


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if (abs(base).bit_length() - 1) * exponent >= MAX_BITS:
            raise _too_long("**")


class _CountedLoop:
    """What a {% for %} iterates: its items count against the loop budget."""

    __slots__ = ("_items",)

    def __init__(self, items: Any) -> None:
        self._items = items

    def __iter__(self) -> Iterator[Any]:
        meter = _METER.get()
        for item in self._items:
            meter.tick()
            yield item

    def __len__(self) -> int:  # loop.length and friends, when the items know it
        return len(self._items)


def _count_loop(items: Any) -> _CountedLoop:
    return _CountedLoop(items)


class _MeteredCodeGenerator(CodeGenerator):
    """Compiles templates so that every loop iterates through the budget and
    every ``~`` and list, tuple or dict display is checked for size."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        items = node.iter
        counted = nodes.Call(nodes.EnvironmentAttribute("count_loop"), [items], [], None, None)
        node.iter = counted.set_lineno(items.lineno)
        try:
            super().visit_For(node, frame)
        finally:
            node.iter = items  # the tree stays as parsed

    def _checked(self, visit: Callable[[Any, Frame], None], node: nodes.Node, frame: Frame, what: str) -> None:
        self.write("environment.checked(")
        visit(node, frame)
        self.write(f", {what!r})")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self._checked(super().visit_Concat, node, frame, "~")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._checked(super().visit_List, node, frame, "a list")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._checked(super().visit_Dict, node, frame, "a dict")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "load":  # not a target such as {% for a, b in pairs %}
            self._checked(super().visit_Tuple, node, frame, "a tuple")
        else:
            super().visit_Tuple(node, frame)


def _bounded_concat(pieces: Iterable[str]) -> str:
    """Joins the text of a macro, a {% set %} block or a filter block, after
    checking its length: a loop may append the same long piece many times."""
    pieces = pieces if isinstance(pieces, list) else list(pieces)
    size = sum(map(len, pieces))
    _refuse_over(size, "a block's text")
    _METER.get().spend(size)
    return "".join(pieces)


class _PromptEnvironment(SandboxedEnvironment):
    """The sandbox, with the work budget enforced at every operator, call,
    filter, loop iteration and block of text that can build or repeat."""

    code_generator_class = _MeteredCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})  # the ones that build
    count_loop = staticmethod(_count_loop)
    checked = staticmethod(_checked)
    concat = staticmethod(_bounded_concat)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        for side in (left, right):
            if isinstance(side, int) and side.bit_length() > MAX_BITS:
                raise _too_long(operator_name)
        if operator_name == "**":
            _check_power(left, right)
        elif operator_name == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(count, int) and (isinstance(seq, (str, bytes, bytearray)) or _parts(seq) is not None):
                    _refuse_over(_chars(seq) * count, "*")
        elif operator_name == "%":
            _refuse_over(_printf_size(left, right), "%")
        return _checked(self.binop_table[operator_name](left, right), operator_name)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if obj is _count_loop:
            return _CountedLoop(*args)
        meter = _METER.get()
        meter.clock()
        if isinstance(obj, (Macro, LoopContext, BlockReference)):  # loop(...) recurses in a recursive loop
            return self._call_nested(meter, context, obj, args, kwargs)
        owner = getattr(obj, "__self__", None)  # a method's object
        if owner is not None:
            args = _method_args(obj, owner, args)
        result = super().call(context, obj, *args, **kwargs)
        if owner is not None:
            _check_growth(obj, owner)
        return _checked(result, obj)

    def _call_nested(self, meter: _Meter, context: Any, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        meter.tick()
        if isinstance(obj, LoopContext) and args:
            args = (_CountedLoop(args[0]), *args[1:])
        meter.enter()
        try:
            return _checked(super().call(context, obj, *args, **kwargs), "a macro or block")
        finally:
            meter.nesting -= 1

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        sandboxed = super().wrap_str_format(value)
        if sandboxed is None:
            return None
        template = value.__self__

        def bounded(*args: Any, **kwargs: Any) -> str:
            _refuse_over(_brace_size(template, [*args, *kwargs.values()]), "str.format")
            return _checked(sandboxed(*args, **kwargs), "str.format")

        return functools.update_wrapper(bounded, value)


def _bounded_range(*args: int) -> range:
    for arg in args:
        if isinstance(arg, int) and arg.bit_length() > MAX_BITS:
            raise _too_long("range")
    values = range(*args)
    try:
        _refuse_over(len(values), "range")
    except OverflowError:  # longer than a C integer
        raise _too_big("range") from None
    return values


def _different_every_time(what: str) -> Callable[..., Any]:
    """Jinja's random text and random pick: a prompt using them would read differently on
    every plan, so its shot would look edited, and be paid for again, on every run."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PromptError(f"{what} gives another text on every plan, so the shot would be made and paid for again on every run; write the text itself")

    return refuse


_ENV = _PromptEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.globals["range"] = _bounded_range
_ENV.globals["lipsum"] = _different_every_time("lipsum()")
_ENV.filters["random"] = _different_every_time("the random filter")
_GLOBALS = frozenset(_ENV.globals)


# Names Jinja itself provides inside templates.
_BUILTIN_NAMES = frozenset({"loop", "self", "super", "caller", "varargs", "kwargs"})
# Compiled code by template skeleton. Templates that differ only in their
# literal text (a series' prompts written from one pattern) share one parse and
# one compilation: the skeleton is Jinja's own token stream with the text
# tokens' values left out, so only lexing is paid per distinct template. The
# parser decides nothing from a text token's value (the lexer drops empty
# ones), so a skeleton parses alike whatever its texts; the text is lifted out
# of the code into the context, under a name no manifest can use (manifest
# names cannot start with "__"). tests/test_prompt.py holds the shared path to
# Jinja's own rendering of each source.
_TEXTS = "__r2v_texts"


@dataclass(frozen=True)
class _Shape:
    """A template skeleton compiled once, shared by the prompts that differ only in their text."""

    compiled: jinja2.Template
    names: frozenset[str]
    name_lines: Mapping[str, int]
    slots: tuple[int, ...]  # for each lifted text, which of the template's text tokens it is


_SHAPES: dict[tuple[tuple[int, str, str | None], ...], _Shape] = {}


def _jinja(source: str) -> Template:
    try:
        tokens = list(_ENV._tokenize(source, None))  # the stream Environment.parse would read
    except jinja2.TemplateSyntaxError:
        _ENV.parse(source)  # the parser may stop at an earlier error than the lexer's: say that one
        raise
    skeleton = tuple((t.lineno, t.type, None if t.type == TOKEN_DATA else t.value) for t in tokens)
    shape = _SHAPES.get(skeleton)
    if shape is None:
        shape = _SHAPES[skeleton] = _parse_skeleton(tokens)
    texts = [t.value for t in tokens if t.type == TOKEN_DATA]
    return Template(source, shape.compiled, (), shape.names, shape.name_lines, tuple(texts[i] for i in shape.slots))


def _parse_skeleton(tokens: list[Token]) -> _Shape:
    """Parse the token stream with each text token's value replaced by its index."""
    numbered: list[Token] = []
    count = 0
    for token in tokens:
        if token.type == TOKEN_DATA:
            token, count = Token(token.lineno, TOKEN_DATA, str(count)), count + 1
        numbered.append(token)
    parser = Parser(_ENV, "")
    parser.stream = TokenStream(iter(numbered), None, None)
    tree = parser.parse()
    lines: dict[str, int] = {}
    assigned: set[str] = set()
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load":
            lines.setdefault(node.name, node.lineno)
        else:
            assigned.add(node.name)
    names = frozenset(lines) - assigned - _GLOBALS - _BUILTIN_NAMES
    slots: list[int] = []
    for output in tree.find_all(nodes.Output):
        for i, child in enumerate(output.nodes):
            if isinstance(child, nodes.TemplateData):
                lookup = nodes.Getitem(nodes.Name(_TEXTS, "load"), nodes.Const(len(slots)), "load")
                lookup.set_lineno(child.lineno)
                output.nodes[i] = lookup
                slots.append(int(child.data))
    return _Shape(_ENV.from_string(tree), names, lines, tuple(slots))

def compile_jinja(source: str) -> Template | PromptError:
    """The template, or the syntax error Jinja finds in it."""
    try:
        return _jinja(source)
    except jinja2.TemplateSyntaxError as err:
        return PromptError(f"template syntax: {err.message}", err.lineno)
    except (RecursionError, SyntaxError):  # Jinja's parser, or Python compiling its code
        return PromptError("template syntax: brackets or blocks nested too deeply")


def render_compiled(template: Template, context: Mapping[str, Any]) -> str:
    """Render a Jinja template under the work budget; surrounding whitespace is trimmed."""
    out: list[str] = []
    size = 0
    metered = _METER.set(_Meter())
    try:
        chunks = template.compiled.generate({**context, _TEXTS: template.texts})
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_RENDERED:
                raise PromptError(
                    f"the template renders to over {MAX_RENDERED} characters", _printing_line(chunks, template.compiled)
                )
            out.append(chunk)
    except PromptError as err:
        if err.line is None:
            err.line = _template_line(err)
        raise
    except jinja2.UndefinedError as err:
        raise PromptError(_undefined_message(err), _template_line(err)) from None
    except jinja2.exceptions.SecurityError as err:
        raise PromptError(f"not allowed in a prompt template: {err}", _template_line(err)) from None
    except (jinja2.TemplateError, ArithmeticError, TypeError, ValueError, LookupError, AttributeError, RuntimeError) as err:
        # RuntimeError: cycler() with nothing to cycle, and RecursionError
        raise PromptError(f"template failed: {err}", _template_line(err)) from None
    finally:
        _METER.reset(metered)
    return "".join(out).strip()

_UNDEFINED = re.compile(r"'([^']+)' is undefined")


def _undefined_message(err: jinja2.UndefinedError) -> str:
    match = _UNDEFINED.search(str(err))
    if match:
        return f'template uses "{match.group(1)}", which is not defined'
    return f"template: {err}"


def _printing_line(chunks: Any, compiled: jinja2.Template) -> int | None:
    """The template line a paused render printed its last chunk from (the
    innermost template generator it yields from, a block's or the root's)."""
    line = None
    while chunks is not None:
        frame = chunks.gi_frame
        if frame is not None and frame.f_code.co_filename == "<template>":
            line = compiled.get_corresponding_lineno(frame.f_lineno)
        chunks = chunks.gi_yieldfrom
    return line


def _template_line(err: BaseException) -> int | None:
    """The template line an error came from, read off the rewritten traceback."""
    line = None
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
