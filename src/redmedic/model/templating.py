"""Jinja2 templating of step arguments and `when:` conditions.

Sandboxed, with StrictUndefined so a typo is an error naming the variable instead of an
empty string silently reaching a host, a `quote` filter for shell arguments, and Ansible's
`bool` filter (so `-e flag=false`, a string, tests false).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
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


def _new_environment() -> jinja2.sandbox.SandboxedEnvironment:
    env = jinja2.sandbox.SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    env.filters["quote"] = lambda value: shlex.quote(str(value))
    env.filters["bool"] = to_bool
    return env


def _strict(value: Any) -> Any:
    """An expression's value may be Undefined (e.g. `x.missing`): make that raise too."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    return value


class Templar:
    """Renders templates for one playbook; `where`/`step` only serve error messages.

    Compiled templates and parsed trees are kept by source text: a fleet run renders the
    same few templates for every host, and compiling is most of a render's cost. One
    Templar is shared by all hosts of a run (a compiled Jinja template renders
    concurrently; a lost race only compiles twice).
    """

    def __init__(self) -> None:
        self._env = _new_environment()
        self._templates: dict[str, jinja2.Template] = {}
        self._expressions: dict[str, Any] = {}
        # source -> (names it reads, names it guards): asked per step for every host
        self._names: dict[str, tuple[frozenset[str], frozenset[str]]] = {}

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
        """Evaluate a bare Jinja2 expression such as a `when:` condition to a bool."""
        compiled = self._compile(expression, where, step)
        return bool(self._guard(lambda: compiled(**variables), where, step))

    def undeclared(self, value: Any, *, expression: bool = False) -> set[str]:
        """Top-level variable names a template (or `when:` expression) reads.

        Used before any host is contacted to report undefined variables early. Syntax
        errors surface here too, as TemplateError without a location (callers add it).
        """
        names: set[str] = set()
        for source in self._sources(value, expression):
            names |= self._analyse(source)[0]
        return names

    def guarded(self, value: Any, *, expression: bool = False) -> set[str]:
        """Names a template treats as optional: tested with `is defined` or given a `default`."""
        names: set[str] = set()
        for source in self._sources(value, expression):
            names |= self._analyse(source)[1]
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
                if any(map(is_secret, self._keys(found[0]))):
                    compiled = self._compile(found[1], where, step)
                    result = self._guard(partial(compiled, **variables), where, step)
                    if isinstance(result, str | int) and not isinstance(result, bool):
                        yield str(result)

    def _keys(self, source: str) -> set[str]:
        """The variable names, attributes and constant keys a template reads (`db.password`
        and `db['password']` read `db` and `password`)."""
        tree = self._guard(lambda: self._env.parse(source), "", "")
        keys = {node.name for node in tree.find_all(jinja2.nodes.Name)}
        keys |= {node.attr for node in tree.find_all(jinja2.nodes.Getattr)}
        for item in tree.find_all(jinja2.nodes.Getitem):
            if isinstance(item.arg, jinja2.nodes.Const) and isinstance(item.arg.value, str):
                keys.add(item.arg.value)
        return keys

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

    def _analyse(self, source: str) -> tuple[frozenset[str], frozenset[str]]:
        """(names read, names guarded by `is defined` or `default`) of one source, cached."""
        known = self._names.get(source)
        if known is not None:
            return known
        try:
            tree = self._env.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template syntax error: {exc.message}") from None
        guarded = {
            test.node.name
            for test in tree.find_all(jinja2.nodes.Test)
            if test.name in ("defined", "undefined") and isinstance(test.node, jinja2.nodes.Name)
        } | {
            filt.node.name
            for filt in tree.find_all(jinja2.nodes.Filter)
            if filt.name in ("default", "d") and isinstance(filt.node, jinja2.nodes.Name)
        }
        found = (frozenset(jinja2.meta.find_undeclared_variables(tree)), frozenset(guarded))
        self._names[source] = found
        return found

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
