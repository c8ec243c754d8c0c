"""Playbooks: the YAML file users write, loaded into a validated, typed model.

Everything that can be checked without a host is checked here, before any connection opens,
and reported as `FILE:LINE:COL: what — what to do`: YAML syntax, unknown keys and step types
(with did-you-mean), arguments, `when:` syntax, `notify:` targets, and variables that nothing
(inventory, vars, -e, an earlier `register:`) can provide.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic

from redmedic.errors import PlaybookError, TemplateError
from redmedic.steps import StepRegistry, StepType
from redmedic.templating import Templar
from redmedic.yamlsource import YamlDoc, load_yaml

PHASES = ("diagnose", "fix", "handlers", "verify")
TOP_KEYS = ("name", "description", "hosts", "vars", "become", *PHASES)
STEP_KEYS = (
    "name",
    "when",
    "register",
    "confirm",
    "notify",
    "tags",
    "sensitive",
    "become",
    "expect_stdout",
    "expect_rc",
)
# Variables every host has without anyone defining them.
BUILTIN_VARS = frozenset(
    {"inventory_hostname", "inventory_hostname_short", "group_names", "check_mode", "playbook_dir"}
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEMPLATE_MARK = re.compile(r"{[{%#]")


@dataclass(frozen=True)
class Step:
    """One validated playbook step; `args` are still templates, rendered per host."""

    name: str
    type: str
    args: Mapping[str, Any]
    phase: str
    where: str
    when: tuple[str, ...] = ()
    register: str | None = None
    confirm: bool | str = False
    notify: tuple[str, ...] = ()
    tags: frozenset[str] = frozenset()
    sensitive: bool = False
    become: bool | None = None
    expect_stdout: str | None = None
    expect_rc: int | None = None


@dataclass(frozen=True)
class Playbook:
    path: str
    name: str
    hosts: str
    vars: Mapping[str, Any] = field(default_factory=dict)
    become: bool | None = None
    description: str = ""
    hosts_where: str = ""  # FILE:LINE:COL of `hosts:`, for host-pattern errors
    diagnose: tuple[Step, ...] = ()
    fix: tuple[Step, ...] = ()
    handlers: tuple[Step, ...] = ()
    verify: tuple[Step, ...] = ()

    def steps(self) -> Iterator[Step]:
        """Every step in the order a host meets them."""
        for phase in PHASES:
            yield from getattr(self, phase)

    def handler(self, name: str) -> Step:
        return next(h for h in self.handlers if h.name == name)

    @property
    def sensitive_vars(self) -> frozenset[str]:
        """Registered names of steps marked `sensitive`: their values are secrets."""
        return frozenset(s.register for s in self.steps() if s.sensitive and s.register)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else ""


def _hint(*parts: str) -> str | None:
    text = "; ".join(p for p in parts if p)
    return text or None


class _Loader:
    """Turns one YAML document into a `Playbook`, raising the first error found."""

    def __init__(self, doc: YamlDoc, registry: StepRegistry) -> None:
        self.doc = doc
        self.registry = registry
        self.templar = Templar()

    def error(
        self, message: str, *path: str | int, hint: str | None = None, key: bool = False
    ) -> PlaybookError:
        where = self.doc.where_key(*path) if key else self.doc.where(*path)
        return PlaybookError(message, where=where, hint=hint)

    def load(self) -> Playbook:
        data = self.doc.data
        if not isinstance(data, dict):
            raise self.error(
                "a playbook is a mapping with name, hosts, diagnose, fix, verify",
                hint="see playbooks/ for examples",
            )
        for key in data:
            if key not in TOP_KEYS:
                raise self.error(
                    f"unknown playbook key '{key}'",
                    key,
                    key=True,
                    hint=_hint(
                        _did_you_mean(str(key), TOP_KEYS), f"allowed: {', '.join(TOP_KEYS)}"
                    ),
                )
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise self.error("the playbook needs a `name:` (a string)", "name")
        hosts = data.get("hosts", "all")
        if not isinstance(hosts, str):
            raise self.error(
                "`hosts:` is a group or host pattern string",
                "hosts",
                hint="e.g. hosts: redis or hosts: 'redis:!redis-canary'",
            )
        variables = data.get("vars") or {}
        if not isinstance(variables, dict):
            raise self.error("`vars:` must be a mapping of names to values", "vars")
        for var in variables:
            if not isinstance(var, str) or not _IDENTIFIER.match(var):
                raise self.error(
                    f"variable name {var!r} is not an identifier", "vars", var, key=True
                )
        phases = {phase: self.load_phase(phase, data.get(phase)) for phase in PHASES}
        playbook = Playbook(
            path=self.doc.source,
            name=name,
            hosts=hosts,
            vars=variables,
            become=self.optional_bool(data, "become"),
            description=str(data.get("description") or ""),
            hosts_where=self.doc.where("hosts"),
            **phases,
        )
        self.check_notify(playbook)
        return playbook

    def optional_bool(self, data: Mapping[str, Any], key: str, *path: str | int) -> bool | None:
        value = data.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.error(f"`{key}:` must be true or false", *path, key)
        return value

    def load_phase(self, phase: str, raw: Any) -> tuple[Step, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise self.error(
                f"`{phase}:` must be a list of steps",
                phase,
                hint="start each step with '- name: ...'",
            )
        steps = tuple(self.load_step(phase, i, item) for i, item in enumerate(raw))
        if phase == "handlers":
            seen: set[str] = set()
            for i, step in enumerate(steps):
                if step.name in seen:
                    raise self.error(f"two handlers are named '{step.name}'", phase, i)
                seen.add(step.name)
        return steps

    def load_step(self, phase: str, index: int, raw: Any) -> Step:
        path: tuple[str | int, ...] = (phase, index)
        if not isinstance(raw, dict):
            raise self.error(
                "a step is a mapping: name, one step type with its arguments, options", *path
            )
        type_keys = [k for k in raw if k not in STEP_KEYS]
        if not type_keys:
            raise self.error(
                "this step has no step type",
                *path,
                hint=f"add one of: {', '.join(sorted(self.registry))}",
            )
        if len(type_keys) > 1:
            known = [k for k in type_keys if k in self.registry]
            raise self.error(
                f"a step has exactly one step type; found {', '.join(map(str, type_keys))}",
                *path,
                type_keys[1],
                key=True,
                hint=_hint(
                    "split it into two steps" if len(known) > 1 else "",
                    *(
                        _did_you_mean(str(k), (*self.registry, *STEP_KEYS))
                        for k in type_keys
                        if k not in self.registry
                    ),
                ),
            )
        type_name = str(type_keys[0])
        step_type = self.registry.get(type_name)
        if step_type is None:
            raise self.error(
                f"unknown step type '{type_name}'",
                *path,
                type_name,
                key=True,
                hint=_hint(
                    _did_you_mean(type_name, (*self.registry, *STEP_KEYS)),
                    "`redmedic steps` lists them",
                ),
            )
        if phase in ("diagnose", "verify") and not step_type.read_only:
            raise self.error(
                f"`{type_name}` changes the host and cannot be used in {phase}",
                *path,
                type_name,
                key=True,
                hint="move the step to fix:",
            )
        name = raw.get("name")
        if name is None:
            name = type_name
        if not isinstance(name, str):
            raise self.error("`name:` must be a string", *path, "name")
        if phase == "handlers" and "name" not in raw:
            raise self.error("a handler needs a `name:` that fix steps can `notify:`", *path)
        args = self.load_args(step_type, raw[type_name], (*path, type_name))
        return Step(
            name=name,
            type=type_name,
            args=args,
            phase=phase,
            where=self.doc.where(*path),
            when=self.load_when(raw.get("when"), path),
            register=self.load_register(raw.get("register"), path),
            confirm=self.load_confirm(raw.get("confirm", False), path),
            notify=self.string_list(raw.get("notify"), (*path, "notify")),
            tags=frozenset(self.string_list(raw.get("tags"), (*path, "tags"))),
            sensitive=bool(self.optional_bool(raw, "sensitive", *path)),
            become=self.optional_bool(raw, "become", *path),
            expect_stdout=self.optional_str(raw, "expect_stdout", path),
            expect_rc=self.optional_int(raw, "expect_rc", path),
        )

    def load_args(
        self, step_type: StepType[Any], raw: Any, path: tuple[str | int, ...]
    ) -> dict[str, Any]:
        if raw is None:
            raw = {}
        if isinstance(raw, str | int | float) and step_type.free_form:
            raw = {step_type.free_form: str(raw)}
        if not isinstance(raw, dict):
            raise self.error(
                f"arguments of `{step_type.name}` must be a mapping",
                *path,
                hint=f"`redmedic steps {step_type.name}` shows them",
            )
        fields = step_type.Args.model_fields
        for arg in raw:
            if arg not in fields:
                raise self.error(
                    f"unknown argument '{arg}' for step type `{step_type.name}`",
                    *path,
                    arg,
                    key=True,
                    hint=_hint(_did_you_mean(str(arg), fields), f"allowed: {', '.join(fields)}"),
                )
        for arg, info in fields.items():
            if info.is_required() and arg not in raw:
                raise self.error(
                    f"`{step_type.name}` needs the argument '{arg}'",
                    *path,
                    hint=info.description or None,
                )
        templated = any(_TEMPLATE_MARK.search(str(v)) for v in _leaves(raw))
        if not templated:
            check_args(step_type, raw, lambda loc: self.doc.where(*path, *loc))
        try:
            self.templar.undeclared(raw)
        except TemplateError as exc:
            raise self.error(exc.message, *path) from None
        return raw

    def load_when(self, raw: Any, path: tuple[str | int, ...]) -> tuple[str, ...]:
        if raw is None:
            return ()
        if isinstance(raw, bool):
            return ("true",) if raw else ("false",)
        conditions = self.string_list(raw, (*path, "when"))
        for condition in conditions:
            if "{{" in condition:
                raise self.error("`when:` is already an expression; drop the {{ }}", *path, "when")
            try:
                self.templar.undeclared(condition, expression=True)
            except TemplateError as exc:
                raise self.error(exc.message, *path, "when") from None
        return conditions

    def load_register(self, raw: Any, path: tuple[str | int, ...]) -> str | None:
        if raw is None:
            return None
        if not isinstance(raw, str) or not _IDENTIFIER.match(raw):
            raise self.error(
                "`register:` needs a variable name (letters, digits, _)", *path, "register"
            )
        return raw

    def load_confirm(self, raw: Any, path: tuple[str | int, ...]) -> bool | str:
        if not isinstance(raw, bool | str):
            raise self.error("`confirm:` is true/false or the question to ask", *path, "confirm")
        return raw

    def optional_str(
        self, raw: Mapping[str, Any], key: str, path: tuple[str | int, ...]
    ) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str | int | float):
            raise self.error(f"`{key}:` must be a string", *path, key)
        return str(value)

    def optional_int(
        self, raw: Mapping[str, Any], key: str, path: tuple[str | int, ...]
    ) -> int | None:
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.error(f"`{key}:` must be a whole number", *path, key)
        return value

    def string_list(self, raw: Any, path: tuple[str | int, ...]) -> tuple[str, ...]:
        if raw is None:
            return ()
        if isinstance(raw, str):
            return (raw,)
        if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
            return tuple(raw)
        raise self.error(f"`{path[-1]}:` must be a string or a list of strings", *path)

    def check_notify(self, playbook: Playbook) -> None:
        names = [h.name for h in playbook.handlers]
        for phase in ("diagnose", "fix", "verify"):
            for index, step in enumerate(getattr(playbook, phase)):
                for target in step.notify:
                    if target not in names:
                        raise self.error(
                            f"step '{step.name}' notifies '{target}', which is not a handler",
                            phase,
                            index,
                            "notify",
                            hint=_hint(
                                _did_you_mean(target, names)
                                or "add it under handlers: with that name"
                            ),
                        )


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def check_args(
    step_type: StepType[Any], args: Mapping[str, Any], locate: Any
) -> pydantic.BaseModel:
    """Validate rendered arguments into the step type's model, or raise PlaybookError.

    `locate(loc)` maps pydantic's error location to `FILE:LINE:COL` (or any label).
    """
    try:
        return step_type.Args.model_validate(dict(args))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        arg = ".".join(str(p) for p in loc) or step_type.name
        raise PlaybookError(
            f"argument '{arg}' of `{step_type.name}`: {first['msg']}",
            where=locate(loc),
            hint=f"`redmedic steps {step_type.name}` shows the arguments",
        ) from None


def load_playbook(path: str | os.PathLike[str], registry: StepRegistry) -> Playbook:
    """Load and validate a playbook file against the available step types."""
    doc = load_yaml(path, error=PlaybookError)
    return _Loader(doc, registry).load()


def check_variables(playbook: Playbook, known: Iterable[str]) -> None:
    """Raise TemplateError for the first variable no source can provide.

    `known` are the names the host's inventory, the playbook's vars and `-e` define; step
    registrations become known after their step, in the order a host runs the steps.
    """
    available = set(known) | BUILTIN_VARS | set(playbook.vars)
    templar = Templar()
    for step in playbook.steps():
        templates: list[tuple[Any, bool]] = [
            (dict(step.args), False),
            (list(step.when), True),
            (step.expect_stdout, False),
        ]
        needed = set().union(*(templar.undeclared(t, expression=e) for t, e in templates))
        optional = set().union(*(templar.guarded(t, expression=e) for t, e in templates))
        missing = sorted(needed - optional - available)
        if missing:
            raise TemplateError(
                f"undefined variable '{missing[0]}' in step '{step.name}'",
                where=step.where,
                hint="define it in the inventory or the playbook's vars, register it in an "
                "earlier step, or pass -e NAME=VALUE",
            )
        if step.register:
            available.add(step.register)


def outside_names(playbook: Playbook) -> set[str]:
    """Names a playbook reads that no step registers: without an inventory at hand,
    `validate` assumes these come from it, and still catches a registered name used
    before the step that registers it."""
    templar = Templar()
    names: set[str] = set()
    for step in playbook.steps():
        names |= templar.undeclared(dict(step.args))
        names |= templar.undeclared(list(step.when), expression=True)
    return names - {s.register for s in playbook.steps() if s.register}
