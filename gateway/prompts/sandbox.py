"""A Jinja2 sandbox on a budget: each render gets a deadline, a step count and a size cap.

Jinja's ``ImmutableSandboxedEnvironment`` keeps a template away from Python's
internals, not from the CPU or the memory: ``{{ 'x' * 999999999 }}`` was even
evaluated at compile time, at publish. This environment

- intercepts ``*``, ``**``, ``+`` and ``%``, and makes every filter take the
  context: both stop Jinja from folding them at compile time, so publishing
  never runs what a template computes;
- checks the size of what an operation would build *before* it builds it:
  repetition, ``+``, ``~``, ``join``, ``%`` and ``format`` widths,
  ``center``/``ljust``/``rjust``/``zfill``/``expandtabs``/``replace``,
  ``indent``, ``wordwrap``, ``batch`` and ``slice`` counts, big powers, and
  ``range`` (at most :data:`RANGE` numbers);
- measures what literals, calls and filters built by the length it would
  print at (a shared reference counts each time it would print), so no value
  outgrows the cap and comparing, hashing or printing one stays linear;
- counts loop iterations (also of loops whose bodies do nothing), calls and
  filters against ``max_steps``, and looks at the clock at each of them;
- counts the characters written into the result and into each buffer
  (macros, ``{% set %}`` and ``{% filter %}`` blocks).

A render's :class:`Budget` lives in a thread-local of the environment, so
renders in different threads never share one; see :meth:`BoundedSandbox.budget`.
"""

from __future__ import annotations

import json
import re
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jinja2 import nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, generate_lorem_ipsum

if TYPE_CHECKING:
    from core.settings import PromptSettings

RANGE = 10_000  # numbers one range() may give
MAX_INT_BITS = 100_000  # about 30,000 digits: past that, int arithmetic gets slow
MAX_JSON_INDENT = 32
MAX_LIPSUM = 100  # paragraphs
_PERCENT = re.compile(r"%(?:\([^)]{0,200}\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]")
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class RenderLimits:
    timeout_s: float = 1.0
    max_chars: int = 1_000_000
    max_steps: int = 1_000_000

    @classmethod
    def of(cls, settings: PromptSettings) -> RenderLimits:
        return cls(settings.render_timeout_s, settings.max_render_chars, settings.max_render_steps)


class BudgetExceeded(Exception):
    """A render went over a limit; ``code`` is ``template_too_large`` or ``template_timeout``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Budget:
    """What one render may still spend."""

    __slots__ = ("_deadline", "_max_steps", "_steps", "_written", "limits")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self._deadline = time.monotonic() + limits.timeout_s
        self._max_steps = limits.max_steps
        self._steps = 0
        self._written = 0

    def tick(self) -> None:
        if time.monotonic() > self._deadline:
            raise BudgetExceeded(
                "template_timeout",
                f"it ran longer than {self.limits.timeout_s:g} s (prompts.render_timeout_s)",
            )

    def step(self) -> None:
        """One loop iteration: counted, and the clock read every 64th (a bare iteration takes well under 1 µs)."""
        self._steps += 1
        if self._steps > self._max_steps:
            raise BudgetExceeded(
                "template_too_large",
                f"it takes more than {self._max_steps} steps (loop iterations, calls and filters; "
                "prompts.max_render_steps)",
            )
        if not self._steps & 63:
            self.tick()

    def costly_step(self) -> None:
        """A call or a filter, which may take long on big values: counted, and the clock read."""
        self.step()
        self.tick()

    def size(self, n: int, what: str) -> None:
        if n > self.limits.max_chars:
            raise BudgetExceeded(
                "template_too_large",
                f"{what} would be {n} long; the limit is {self.limits.max_chars} (prompts.max_render_chars)",
            )

    def write(self, n: int) -> None:
        self._written += n
        self.size(self._written, "the rendered text")


def printed_size(value: Any, limit: int) -> int:
    """About how long ``str(value)`` is, counting no further than just past ``limit``."""
    if isinstance(value, str):
        return len(value)
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, Namespace):
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        else:
            total += 8
    return total


def _checked(budget: Budget, value: Any, what: str) -> Any:
    if isinstance(value, str):
        budget.size(len(value), what)
    elif isinstance(value, list | tuple | dict | set | frozenset | Namespace):
        budget.size(printed_size(value, budget.limits.max_chars), what)
    return value


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _width(budget: Budget, width: Any, what: str) -> None:
    if isinstance(width, int):
        budget.size(width, what)


def _replaced(budget: Budget, text: str, old: Any, new: Any, count: Any) -> None:
    if not (isinstance(old, str) and isinstance(new, str)) or len(new) <= len(old):
        return
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    budget.size(len(text) + hits * (len(new) - len(old)), "the replaced text")


def _percent(budget: Budget, fmt: str, values: Any) -> None:
    """``fmt % values``: the widths and precisions of its conversions, and the values, add up."""
    total = len(fmt) + printed_size(values, budget.limits.max_chars)
    starred = False
    for match in _PERCENT.finditer(fmt):
        for part in match.groups():
            if part == "*":
                starred = True
            elif part:
                total += int(part)
        budget.size(total, "the %-formatted text")
    if starred:
        numbers = values if isinstance(values, tuple) else (values,)
        total += sum(abs(n) for n in numbers if isinstance(n, int))
    budget.size(total, "the %-formatted text")


def _formatted(budget: Budget, fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """``fmt.format(...)``: the widths in its fields, and the values, add up."""
    total = len(fmt) + printed_size(args, budget.limits.max_chars) + printed_size(kwargs, budget.limits.max_chars)
    nested = False
    try:
        for _, _, spec, _ in string.Formatter().parse(fmt):
            if spec:
                nested = nested or "{" in spec
                total += sum(int(digits) for digits in _DIGITS.findall(spec))
                budget.size(total, "the formatted text")
    except ValueError:
        return  # malformed: str.format says why
    if nested:
        total += sum(abs(n) for n in (*args, *kwargs.values()) if isinstance(n, int))
    budget.size(total, "the formatted text")


def _repeated(budget: Budget, left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise BudgetExceeded("template_too_large", f"a product of more than {MAX_INT_BITS} bits")
        return
    sequence, count = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(count, int) and isinstance(sequence, str | bytes | list | tuple):
        budget.size(printed_size(sequence, budget.limits.max_chars) * max(count, 0), "the repeated value")


def _power(left: Any, right: Any) -> None:
    big = isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
    if big and right * left.bit_length() > MAX_INT_BITS:
        raise BudgetExceeded("template_too_large", f"a power of more than {MAX_INT_BITS} bits")


def _joined(budget: Budget, separator: Any, items: list[Any]) -> None:
    total = printed_size(separator, budget.limits.max_chars) * max(len(items) - 1, 0)
    budget.size(total, "the joined text")
    for item in items:
        total += printed_size(item, budget.limits.max_chars)
        budget.size(total, "the joined text")


def _str_method(budget: Budget, method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Check a ``str`` method that sizes its result from an argument; may return materialised arguments."""
    text, name = method.__self__, method.__name__
    if name in ("center", "ljust", "rjust", "zfill"):
        _width(budget, _arg(args, kwargs, 0, "width", 0), f"str.{name}() of that width")
    elif name == "expandtabs":
        size = _arg(args, kwargs, 0, "tabsize", 8)
        if isinstance(size, int):
            budget.size(len(text) + text.count("\t") * max(size, 0), "the expanded text")
    elif name == "replace":
        old, new = _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", "")
        _replaced(budget, text, old, new, _arg(args, kwargs, 2, "count", -1))
    elif name == "join" and args:
        items = list(args[0])
        _joined(budget, text, items)
        return (items, *args[1:])
    return args


def _check_filter(budget: Budget, name: str, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """Check a filter that sizes its result from an argument; returns the value (materialised for join)."""
    limit = budget.limits.max_chars
    if name in _STRINGIFYING:
        budget.size(printed_size(value, limit), f"the text '{name}' reads")
    if name == "center":
        _width(budget, _arg(args, kwargs, 0, "width", 80), "the centred text")
    elif name == "indent":
        width = _arg(args, kwargs, 0, "width", 4)
        pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        text = str(value)
        budget.size(len(text) + (text.count("\n") + 1) * max(pad, 0), "the indented text")
    elif name == "wordwrap":
        width = _arg(args, kwargs, 0, "width", 79)
        wrap = _arg(args, kwargs, 2, "wrapstring", None)
        if isinstance(wrap, str) and isinstance(width, int) and width > 0:
            text = str(value)
            budget.size(len(text) + (len(text) // width + text.count("\n") + 1) * len(wrap), "the wrapped text")
    elif name == "replace":
        _replaced(budget, str(value), _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", ""), None)
    elif name == "format" and isinstance(value, str):
        _percent(budget, value, kwargs or args)
    elif name in ("batch", "slice"):
        _width(budget, _arg(args, kwargs, 0, "linecount" if name == "batch" else "slices", 1), f"'{name}' count")
    elif name == "tojson":
        indent = _arg(args, kwargs, 0, "indent", None)
        if isinstance(indent, int) and indent > MAX_JSON_INDENT:
            raise BudgetExceeded("template_too_large", f"tojson indents at most {MAX_JSON_INDENT} spaces")
    elif name == "join":
        value = list(value) if not isinstance(value, list | tuple | str) else value
        _joined(budget, _arg(args, kwargs, 0, "d", ""), list(value))
    return value


_SCALARS = frozenset({int, float, bool, type(None)})

# Filters that read their value as text: a value that would print too long is refused before it is printed.
_STRINGIFYING = frozenset(
    {
        "capitalize",
        "center",
        "e",
        "escape",
        "forceescape",
        "format",
        "indent",
        "lower",
        "pprint",
        "replace",
        "safe",
        "string",
        "striptags",
        "title",
        "tojson",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "urlize",
        "wordcount",
        "wordwrap",
        "xmlattr",
    }
)


class _Buffer(list[str]):
    """The output buffer of a macro or a ``{% set %}``/``{% filter %}`` block, counted as it fills."""

    __slots__ = ("_budget", "_size")

    def __init__(self, budget: Budget) -> None:
        super().__init__()
        self._budget = budget
        self._size = 0

    def append(self, item: str) -> None:
        self._size += len(item)
        self._budget.size(self._size, "a block's text")
        super().append(item)

    def extend(self, items: Iterable[str]) -> None:
        for item in items:
            self.append(item)


class _Generator(CodeGenerator):
    """Compiles budget checks into templates: per loop item, per concatenation, per literal, per buffer."""

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.new_buffer()")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        original = node.iter
        guard = nodes.EnvironmentAttribute("loop_items", lineno=node.lineno)
        node.iter = nodes.Call(guard, [original], [], None, None, lineno=node.lineno)
        try:
            super().visit_For(node, frame)
        finally:
            node.iter = original

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_bounded((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.built(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.built(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # an assignment target
            super().visit_Tuple(node, frame)
            return
        self.write("environment.built(")
        super().visit_Tuple(node, frame)
        self.write(")")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The prompts' Jinja2 environment; render inside :meth:`budget`."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, limits: RenderLimits, filters: Mapping[str, Callable[..., Any]], **options: Any) -> None:
        super().__init__(**options)
        self.limits = limits
        self._local = threading.local()
        self.filters.update(filters)
        self.filters = {name: self._bounded_filter(name, f) for name, f in self.filters.items()}
        self.globals["range"] = self._range
        self.globals["lipsum"] = self._lipsum
        self.finalize = self._finalize

    @contextmanager
    def budget(self) -> Iterator[Budget]:
        """A fresh budget for what this thread renders inside the block."""
        previous = getattr(self._local, "budget", None)
        self._local.budget = budget = Budget(self.limits)
        try:
            yield budget
        finally:
            self._local.budget = previous

    def current(self) -> Budget:
        # Outside budget() (compiling, or a caller that forgot) sizes are still capped; time and steps are not.
        budget: Budget | None = getattr(self._local, "budget", None)
        return budget if budget is not None else Budget(self.limits)

    def tick(self) -> None:
        """For work the template does not drive (validating its variables): the deadline only."""
        budget: Budget | None = getattr(self._local, "budget", None)
        if budget is not None:
            budget.tick()

    # --- hooks the compiled templates call ----------------------------------
    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = self.current()
        if operator == "*":
            _repeated(budget, left, right)
        elif operator == "**":
            _power(left, right)
        elif operator == "%" and isinstance(left, str):
            _percent(budget, left, right)
        elif operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            budget.size(len(left) + len(right), "the sum")
        return _checked(budget, self.binop_table[operator](left, right), f"the result of '{operator}'")

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = self.current()
        budget.costly_step()
        if isinstance(getattr(obj, "__self__", None), str) and callable(obj):
            args = _str_method(budget, obj, args, kwargs)
        name = getattr(obj, "__name__", "the call")
        return _checked(budget, super().call(context, obj, *args, **kwargs), f"what {name}() returns")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__
        is_map = value.__name__ == "format_map"

        def bounded(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if is_map and args and isinstance(args[0], Mapping) else kwargs
            _formatted(self.current(), fmt, () if is_map else args, mapping)
            return wrapped(*args, **kwargs)

        return bounded

    def loop_items(self, iterable: Iterable[Any]) -> Iterator[Any]:
        budget = self.current()
        for item in iterable:
            budget.step()
            yield item

    def concat_bounded(self, parts: tuple[Any, ...]) -> str:
        budget, total, texts = self.current(), 0, []
        for part in parts:
            budget.size(total + printed_size(part, budget.limits.max_chars), "the '~' concatenation")
            text = str(part)
            total += len(text)
            texts.append(text)
        return "".join(texts)

    def built(self, value: Any) -> Any:
        return _checked(self.current(), value, "the literal")

    def new_buffer(self) -> _Buffer:
        return _Buffer(self.current())

    def _finalize(self, value: Any) -> Any:
        # Runs for every {{ }}: the common small values return without looking the budget up.
        kind = type(value)
        if (kind is str and len(value) <= self.limits.max_chars) or kind in _SCALARS:
            return value
        return _checked(self.current(), value, "the value written")

    def _range(self, *args: int) -> range:
        numbers = range(*args)
        try:
            count = len(numbers)
        except OverflowError:
            count = RANGE + 1
        if count > RANGE:
            raise BudgetExceeded("template_too_large", f"range() gives at most {RANGE} numbers, not {count}")
        return numbers

    def _lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        if n > MAX_LIPSUM or max > 1000:
            raise BudgetExceeded("template_too_large", f"lipsum() writes at most {MAX_LIPSUM} paragraphs of 1000 words")
        return generate_lorem_ipsum(n, html, min, max)

    def _bounded_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        passes = getattr(getattr(func, "jinja_pass_arg", None), "name", None)

        # Taking the context also keeps Jinja from running the filter at compile time on constants.
        @pass_context
        def bounded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
            budget = self.current()
            budget.costly_step()
            value = _check_filter(budget, name, value, args, kwargs)
            if passes == "context":
                result = func(context, value, *args, **kwargs)
            elif passes == "eval_context":
                result = func(context.eval_ctx, value, *args, **kwargs)
            elif passes == "environment":
                result = func(context.environment, value, *args, **kwargs)
            else:
                result = func(value, *args, **kwargs)
            return _checked(budget, result, f"the result of '{name}'")

        return bounded


def tojson(value: Any, indent: int | None = None) -> str:
    """``tojson`` that writes Chinese as is (Jinja's own escapes it for HTML)."""
    return json.dumps(value, ensure_ascii=False, indent=indent)
