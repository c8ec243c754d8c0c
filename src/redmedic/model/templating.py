"""Jinja2 templating of step arguments and `when:` conditions.

Sandboxed, with StrictUndefined so a typo is an error naming the variable instead of an
empty string silently reaching a host, a `quote` filter for shell arguments, and Ansible's
`bool` filter (so `-e flag=false`, a string, tests false).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache, partial
from typing import Any

import jinja2
import jinja2.exceptions
import jinja2.meta
import jinja2.nodes
import jinja2.runtime
import jinja2.sandbox

from redmedic.errors import TemplateError

_EXPRESSION = re.compile(r"\{\{((?:(?!\{\{|\}\}).)*)\}\}", re.DOTALL)
_WHOLE_EXPRESSION = re.compile(r"^\{\{((?:(?!\{\{|\}\}).)*)\}\}$", re.DOTALL)
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")
_HINT = (
    "define it in the inventory or the playbook's vars, register it earlier, or pass -e NAME=VALUE"
)


# Ansible's `bool` filter words (ansible-core 2.19, case-insensitive); ints 1/0 and real bools
# count too. Anything else is an error here, where Ansible coerces it to False with a
# deprecation warning (an error from 2.23): a typo such as `-e allow_x=ture` must not decide.
_TRUE_WORDS = frozenset({"yes", "on", "true", "1"})
_FALSE_WORDS = frozenset({"no", "off", "false", "0"})


def to_bool(value: Any) -> bool:
    """`value | bool`: command-line values are strings, and the string "false" is truthy."""
    if isinstance(value, bool):
        return value
    word = str(value).lower() if isinstance(value, str | int) else None
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    # The value itself is not shown: it might be a secret passed to the wrong variable.
    raise jinja2.TemplateRuntimeError(
        f"bool: a {type(value).__name__} that is not a boolean "
        "(use true/false, yes/no, on/off or 1/0)"
    )


# The most items a template may build with `*` or `**` (a repeated string, list, or the
# digits of a power): generous for any real argument, small enough that `'x' * 10**9` is
# refused at once instead of taking the run's memory. `range()` has Jinja's own bound.
MAX_REPEAT = 100_000


class _Environment(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """The sandbox, immutable (`group_names.append()` is refused), with bounded `*` and `**`."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        if operator == "*" and _is_count(right) and isinstance(left, str | list | tuple):
            _bound(len(left) * right)
        elif operator == "*" and _is_count(left) and isinstance(right, str | list | tuple):
            _bound(len(right) * left)
        elif operator == "**" and _is_count(left) and _is_count(right) and abs(left) > 1:
            _bound(abs(left).bit_length() * right // 3)  # about its decimal digits
        return super().call_binop(context, operator, left, right)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bound(size: int) -> None:
    if size > MAX_REPEAT:
        raise jinja2.exceptions.SecurityError(
            f"the result would have more than {MAX_REPEAT} items (a huge `*` or `**`)"
        )


# Methods that change a list, dict or set: the immutable sandbox refuses them when called.
_MUTATING = frozenset(
    {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear", "update"}
    | {"setdefault", "popitem", "add", "discard", "difference_update", "intersection_update"}
    | {"symmetric_difference_update"}
)
_TEMPLATE_LOADING = (
    jinja2.nodes.Include,
    jinja2.nodes.Import,
    jinja2.nodes.FromImport,
    jinja2.nodes.Extends,
)


def static_problem(
    env: jinja2.sandbox.SandboxedEnvironment, tree: jinja2.nodes.Template
) -> str | None:
    """What is sure to fail in a parsed template whatever the variables, or None.

    Found before any host is contacted: loading other templates (there are none to load),
    an attribute the sandbox refuses (`_...`, a method that changes a variable), and
    arithmetic on constants that fails (`1/0`, `'x' * 10**9`).
    """
    for loading in tree.find_all(_TEMPLATE_LOADING):
        tag = type(loading).__name__.lower().replace("fromimport", "from ... import")
        return f"`{{% {tag} %}}` is not supported: a step's template cannot load other files"
    for attr in tree.find_all(jinja2.nodes.Getattr):
        if attr.attr.startswith("_"):
            return f"attribute '{attr.attr}' is not allowed (the sandbox refuses names with _)"
    for call in tree.find_all(jinja2.nodes.Call):
        if isinstance(call.node, jinja2.nodes.Getattr) and call.node.attr in _MUTATING:
            return f"`.{call.node.attr}()` is not allowed: templates cannot change variables"
    context = jinja2.nodes.EvalContext(env)
    for binop in tree.find_all(jinja2.nodes.BinExpr):
        try:
            _fold(env, context, binop)
        except jinja2.nodes.Impossible:
            continue
        except Exception as exc:  # what the template would raise on every host
            return f"{type(exc).__name__}: {exc}"
    return None


def _fold(
    env: jinja2.sandbox.SandboxedEnvironment,
    context: jinja2.nodes.EvalContext,
    node: jinja2.nodes.Expr,
) -> Any:
    """The value of a constant expression, computed as the sandbox would (bounds included);
    Impossible when it reads anything that is not a constant."""
    if isinstance(node, jinja2.nodes.BinExpr):
        left, right = _fold(env, context, node.left), _fold(env, context, node.right)
        return env.call_binop(None, node.operator, left, right)  # type: ignore[arg-type]
    return node.as_const(context)


def _new_environment() -> jinja2.sandbox.SandboxedEnvironment:
    env = _Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    env.filters["quote"] = lambda value: shlex.quote(str(value))
    env.filters["bool"] = to_bool
    return env


@lru_cache(maxsize=1)
def _analysis_environment() -> jinja2.sandbox.SandboxedEnvironment:
    """The environment the analyses below parse with: every Templar's has the same syntax,
    filters and tests, so what a source reads depends on its text alone."""
    return _new_environment()


# What a source reads is asked per step and per host (which names a step needs, whether
# an expression reads a secret), and again by the checks before the run, each with a
# Templar of its own: parsing is most of a template's cost, so it is done once per
# process and text. 4096 texts are far more than any playbook has.
@lru_cache(maxsize=4096)
def _analyse(source: str) -> tuple[frozenset[str], frozenset[str]]:
    """(names read, names guarded by `is defined` or `default`) of one source."""
    env = _analysis_environment()
    try:
        tree = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from None
    problem = static_problem(env, tree)
    if problem is not None:
        raise TemplateError(f"template error: {problem}")
    guarded = {
        test.node.name
        for test in tree.find_all(jinja2.nodes.Test)
        if test.name in ("defined", "undefined") and isinstance(test.node, jinja2.nodes.Name)
    } | {
        filt.node.name
        for filt in tree.find_all(jinja2.nodes.Filter)
        if filt.name in ("default", "d") and isinstance(filt.node, jinja2.nodes.Name)
    }
    return frozenset(jinja2.meta.find_undeclared_variables(tree)), frozenset(guarded)


@lru_cache(maxsize=4096)
def _keys(source: str) -> frozenset[str]:
    """The variable names, attributes and constant keys a template reads (`db.password`
    and `db['password']` read `db` and `password`)."""
    tree = Templar._guard(lambda: _analysis_environment().parse(source), "", "")
    keys = {node.name for node in tree.find_all(jinja2.nodes.Name)}
    keys |= {node.attr for node in tree.find_all(jinja2.nodes.Getattr)}
    for item in tree.find_all(jinja2.nodes.Getitem):
        if isinstance(item.arg, jinja2.nodes.Const) and isinstance(item.arg.value, str):
            keys.add(item.arg.value)
    return frozenset(keys)


def _strict(value: Any) -> Any:
    """An expression's value may be Undefined (e.g. `x.missing`): make that raise too."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    return value


class Templar:
    """Renders templates for one playbook; `where`/`step` only serve error messages.

    Compiled templates are kept by source text: a fleet run renders the same few
    templates for every host, and compiling is most of a render's cost (what a source
    reads is kept for the whole process: `_analyse`, `_keys`). One
    Templar is shared by all hosts of a run (a compiled Jinja template renders
    concurrently; a lost race only compiles twice).
    """

    def __init__(self) -> None:
        self._env = _new_environment()
        self._templates: dict[str, jinja2.Template] = {}
        self._expressions: dict[str, Any] = {}

    def render(self, value: Any, variables: Mapping[str, Any], *, where: str, step: str) -> Any:
        """Render every string inside `value` (recursively through lists and mappings)."""
        if isinstance(value, str):
            if "{" not in value:
                return value
            whole = _WHOLE_EXPRESSION.match(value)
            if whole:
                # Like Ansible: "{{ facts }}" alone passes the value itself (a dict, a list,
                # an int), so registered results can be handed to another step intact.
                expression = self._compile(whole[1], where, step)
                return self._guard(lambda: _strict(expression(**variables)), where, step)
            template = self._templates.get(value)
            if template is None:
                template = self._guard(lambda: self._env.from_string(value), where, step)
                self._templates[value] = template
            return self._guard(lambda: template.render(variables), where, step)
        if isinstance(value, Mapping):
            return {k: self.render(v, variables, where=where, step=step) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.render(v, variables, where=where, step=step) for v in value]
        return value

    def evaluate(
        self, expression: str, variables: Mapping[str, Any], *, where: str, step: str
    ) -> bool:
        """Evaluate a bare Jinja2 expression such as a `when:` condition to a bool.

        Text is refused: every non-empty string is true, so `"'no'"` or a `-e flag=false`
        would silently hold. Other values count as Python does (None, 0, empty: false),
        so `facts.unit` or `a and b` keep working.
        """
        compiled = self._compile(expression, where, step)
        value = self._guard(lambda: _strict(compiled(**variables)), where, step)
        if isinstance(value, str | bytes):  # "'no'", or `-e flag=false`: true as any text is
            raise TemplateError(
                f"`when:` of step '{step}' is text, not true or false",  # not shown: a secret?
                where=where,
                hint="compare it (`x == 'yes'`) or convert it (`x | bool`)",
            )
        return bool(value)

    def constant_text(self, expression: str) -> bool:
        """Whether a bare expression is text whatever the variables (`"'some string'"`)."""
        tree = self._env.parse("{{ (" + expression + ") }}")
        output = tree.body[0]
        if not isinstance(output, jinja2.nodes.Output) or len(output.nodes) != 1:
            return False
        try:
            value = _fold(self._env, jinja2.nodes.EvalContext(self._env), output.nodes[0])
        except Exception:  # not a constant (Impossible), or a failure reported elsewhere
            return False
        return isinstance(value, str)

    def undeclared(self, value: Any, *, expression: bool = False) -> set[str]:
        """Top-level variable names a template (or `when:` expression) reads.

        Used before any host is contacted to report undefined variables early. Syntax
        errors surface here too, as TemplateError without a location (callers add it).
        """
        names: set[str] = set()
        for source in self._sources(value, expression):
            names |= _analyse(source)[0]
        return names

    def guarded(self, value: Any, *, expression: bool = False) -> set[str]:
        """Names a template treats as optional: tested with `is defined` or given a `default`."""
        names: set[str] = set()
        for source in self._sources(value, expression):
            names |= _analyse(source)[1]
        return names

    def secret_outputs(
        self,
        value: Any,
        variables: Mapping[str, Any],
        is_secret: Callable[[str], bool],
        *,
        where: str,
        step: str,
    ) -> Iterator[str]:
        """What each `{{ ... }}` in `value` that reads a secret variable renders to.

        A transformed secret (`| upper`, a slice, `db.password`) is no longer the value the
        masker knows: the masker learns these results too (the masking hook).
        """
        for source in self._sources(value, False):
            for found in _EXPRESSION.finditer(source):
                if any(map(is_secret, _keys(found[0]))):
                    compiled = self._compile(found[1], where, step)
                    result = self._guard(partial(compiled, **variables), where, step)
                    if isinstance(result, str | int) and not isinstance(result, bool):
                        yield str(result)

    def _sources(self, value: Any, expression: bool) -> Iterator[str]:
        """Every template source in a value (mappings and lists walked), as Jinja parses it."""
        if isinstance(value, Mapping):
            for item in value.values():
                yield from self._sources(item, False)
        elif isinstance(value, list | tuple):
            for item in value:
                yield from self._sources(item, expression)
        elif isinstance(value, str) and (expression or "{" in value):
            yield "{{ (" + value + ") }}" if expression else value

    def _compile(self, expression: str, where: str, step: str) -> Any:
        compiled = self._expressions.get(expression)
        if compiled is None:
            env = self._env
            compiled = self._guard(
                lambda: env.compile_expression(expression, undefined_to_none=False), where, step
            )
            self._expressions[expression] = compiled
        return compiled

    @staticmethod
    def _guard(call: Any, where: str, step: str) -> Any:
        try:
            return call()
        except jinja2.UndefinedError as exc:
            match = _UNDEFINED_NAME.search(str(exc))
            what = f"undefined variable '{match.group(1)}'" if match else str(exc)
            raise TemplateError(f"{what} in step '{step}'", where=where, hint=_HINT) from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error in step '{step}': {exc.message}", where=where
            ) from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template error in step '{step}': {exc}", where=where) from None
        except Exception as exc:  # `{{ 1/0 }}`, `range(10**9)`: the template's fault, not ours
            raise TemplateError(
                f"template error in step '{step}': {type(exc).__name__}: {exc}", where=where
            ) from None
