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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pydantic

from redmedic.errors import InputError, InventoryError, PlaybookError, TemplateError
from redmedic.model.inventory import Inventory, select_hosts
from redmedic.model.templating import Templar
from redmedic.model.vault import Vault
from redmedic.model.yamlsource import YamlDoc, load_yaml
from redmedic.steps import StepRegistry, StepType

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
_T = TypeVar("_T")
_NO_STRINGS: tuple[str, ...] = ()
_NO_CONFIRM: bool | str = False
_E = TypeVar("_E", bound=InputError)


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
    """Turns one YAML document into a `Playbook`, collecting every error it finds.

    Why collect instead of raising: `validate` reports all mistakes of a file in one run,
    so a user fixes them in one pass. Each check records its error and goes on with a
    neutral fallback (an empty name, a step without its broken part), so the partial
    `Playbook` can still be checked further (notify targets, variables). Only a playbook
    whose `errors` is empty may be run.
    """

    def __init__(self, doc: YamlDoc, registry: StepRegistry) -> None:
        self.doc = doc
        self.registry = registry
        self.templar = Templar()
        self.errors: list[PlaybookError] = []
        self.step_paths: dict[int, tuple[str | int, ...]] = {}  # id(step) -> YAML path

    def error(
        self, message: str, *path: str | int, hint: str | None = None, key: bool = False
    ) -> PlaybookError:
        where = self.doc.where_key(*path) if key else self.doc.where(*path)
        return PlaybookError(message, where=where, hint=hint)

    def report(
        self, message: str, *path: str | int, hint: str | None = None, key: bool = False
    ) -> None:
        self.errors.append(self.error(message, *path, hint=hint, key=key))

    def attempt(self, load: Callable[[], _T], fallback: _T) -> _T:
        """`load()`, or `fallback` once its PlaybookError is recorded."""
        try:
            return load()
        except PlaybookError as exc:
            self.errors.append(exc)
            return fallback

    def load(self) -> Playbook:
        data = self.doc.data
        if not isinstance(data, dict):
            self.report(
                "a playbook is a mapping with name, hosts, diagnose, fix, verify",
                hint="see playbooks/ for examples",
            )
            return Playbook(path=self.doc.source, name="", hosts="all")
        for key in data:
            if key not in TOP_KEYS:
                self.report(
                    f"unknown playbook key '{key}'",
                    key,
                    key=True,
                    hint=_hint(
                        _did_you_mean(str(key), TOP_KEYS), f"allowed: {', '.join(TOP_KEYS)}"
                    ),
                )
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            self.report("the playbook needs a `name:` (a string)", "name")
            name = ""
        hosts = data.get("hosts", "all")
        if not isinstance(hosts, str):
            self.report(
                "`hosts:` is a group or host pattern string",
                "hosts",
                hint="e.g. hosts: redis or hosts: 'redis:!redis-canary'",
            )
            hosts = "all"
        variables = data.get("vars") or {}
        if not isinstance(variables, dict):
            self.report("`vars:` must be a mapping of names to values", "vars")
            variables = {}
        for var in variables:
            if not isinstance(var, str) or not _IDENTIFIER.match(var):
                self.report(f"variable name {var!r} is not an identifier", "vars", var, key=True)
        phases = {phase: self.load_phase(phase, data.get(phase)) for phase in PHASES}
        playbook = Playbook(
            path=self.doc.source,
            name=name,
            hosts=hosts,
            vars=variables,
            become=self.attempt(lambda: self.optional_bool(data, "become"), None),
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
            self.report(
                f"`{phase}:` must be a list of steps",
                phase,
                hint="start each step with '- name: ...'",
            )
            return ()
        steps: list[Step] = []
        seen: set[str] = set()
        for index, item in enumerate(raw):
            step = self.load_step(phase, index, item)
            if step is None:
                continue
            self.step_paths[id(step)] = (phase, index)
            if phase == "handlers":
                if step.name in seen:
                    self.report(f"two handlers are named '{step.name}'", phase, index)
                seen.add(step.name)
            steps.append(step)
        return tuple(steps)

    def step_type_of(
        self, raw: Mapping[str, Any], path: tuple[str | int, ...]
    ) -> tuple[str, StepType[Any, Any] | None]:
        """The step's type key and class; None (error recorded) when it has none or several.

        With several type keys of which exactly one is known, that one is still checked:
        the others are most likely misspelt options (`regster:`).
        """
        type_keys = [k for k in raw if k not in STEP_KEYS]
        if not type_keys:
            self.report(
                "this step has no step type",
                *path,
                hint=f"add one of: {', '.join(sorted(self.registry))}",
            )
            return "", None
        known = [k for k in type_keys if k in self.registry]
        if len(type_keys) > 1:
            self.report(
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
            if len(known) != 1:
                return str(type_keys[0]), None
            return known[0], self.registry[known[0]]
        type_name = str(type_keys[0])
        step_type = self.registry.get(type_name)
        if step_type is None:
            self.report(
                f"unknown step type '{type_name}'",
                *path,
                type_name,
                key=True,
                hint=_hint(
                    _did_you_mean(type_name, (*self.registry, *STEP_KEYS)),
                    "`redmedic steps` lists them",
                ),
            )
        return type_name, step_type

    def load_step(self, phase: str, index: int, raw: Any) -> Step | None:
        path: tuple[str | int, ...] = (phase, index)
        if not isinstance(raw, dict):
            self.report(
                "a step is a mapping: name, one step type with its arguments, options", *path
            )
            return None
        type_name, step_type = self.step_type_of(raw, path)
        if step_type is not None and phase in ("diagnose", "verify") and not step_type.read_only:
            self.report(
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
            self.report("`name:` must be a string", *path, "name")
            name = type_name
        if phase == "handlers" and "name" not in raw:
            self.report("a handler needs a `name:` that fix steps can `notify:`", *path)
        args: dict[str, Any] = {}
        if step_type is not None:
            args = self.load_args(step_type, raw[type_name], (*path, type_name))
        return Step(
            name=name,
            type=type_name,
            args=args,
            phase=phase,
            where=self.doc.where(*path),
            when=self.load_when(raw.get("when"), path),
            register=self.attempt(lambda: self.load_register(raw.get("register"), path), None),
            confirm=self.attempt(
                lambda: self.load_confirm(raw.get("confirm", False), path), _NO_CONFIRM
            ),
            notify=self.attempt(
                lambda: self.string_list(raw.get("notify"), (*path, "notify")), _NO_STRINGS
            ),
            tags=frozenset(
                self.attempt(
                    lambda: self.string_list(raw.get("tags"), (*path, "tags")), _NO_STRINGS
                )
            ),
            sensitive=bool(self.attempt(lambda: self.optional_bool(raw, "sensitive", *path), None)),
            become=self.attempt(lambda: self.optional_bool(raw, "become", *path), None),
            expect_stdout=self.attempt(lambda: self.optional_str(raw, "expect_stdout", path), None),
            expect_rc=self.attempt(lambda: self.optional_int(raw, "expect_rc", path), None),
        )

    def load_args(
        self, step_type: StepType[Any, Any], raw: Any, path: tuple[str | int, ...]
    ) -> dict[str, Any]:
        """The step's arguments as written (templates unrendered), every problem recorded.

        Values are checked against the step type's model now unless they are templates:
        those are checked per host once rendered. An argument whose template does not parse
        is left out of the result, so later checks do not trip over it again.
        """
        if raw is None:
            raw = {}
        if isinstance(raw, str | int | float) and step_type.free_form:
            raw = {step_type.free_form: str(raw)}
        if not isinstance(raw, dict):
            self.report(
                f"arguments of `{step_type.name}` must be a mapping",
                *path,
                hint=f"`redmedic steps {step_type.name}` shows them",
            )
            return {}
        fields = step_type.Args.model_fields
        for arg in raw:
            if arg not in fields:
                self.report(
                    f"unknown argument '{arg}' for step type `{step_type.name}`",
                    *path,
                    arg,
                    key=True,
                    hint=_hint(_did_you_mean(str(arg), fields), f"allowed: {', '.join(fields)}"),
                )
        for arg, info in fields.items():
            if info.is_required() and arg not in raw:
                self.report(
                    f"`{step_type.name}` needs the argument '{arg}'",
                    *path,
                    hint=info.description or None,
                )
        templated = {arg for arg, value in raw.items() if _is_template(value)}
        self.errors += arg_errors(
            step_type,
            raw,
            lambda loc: self.doc.where(*path, *loc),
            skip=lambda loc: bool(templated) if not loc else loc[0] in templated,
        )
        args: dict[str, Any] = {}
        for arg, value in raw.items():
            try:
                self.templar.undeclared(value)
            except TemplateError as exc:
                self.report(f"argument '{arg}': {exc.message}", *path, arg)
            else:
                args[arg] = value
        return args

    def load_when(self, raw: Any, path: tuple[str | int, ...]) -> tuple[str, ...]:
        if raw is None:
            return ()
        if isinstance(raw, bool):
            return ("true",) if raw else ("false",)
        conditions = self.attempt(lambda: self.string_list(raw, (*path, "when")), _NO_STRINGS)
        kept: list[str] = []
        for condition in conditions:
            if "{{" in condition:
                self.report("`when:` is already an expression; drop the {{ }}", *path, "when")
                continue
            try:
                self.templar.undeclared(condition, expression=True)
            except TemplateError as exc:
                self.report(f"`when:` {exc.message}", *path, "when")
                continue
            if self.templar.constant_text(condition):
                self.report(
                    "`when:` is a quoted string, so it would always hold",
                    *path,
                    "when",
                    hint="write the condition itself, without the inner quotes",
                )
                continue
            kept.append(condition)
        return tuple(kept)

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
            for step in getattr(playbook, phase):
                for target in step.notify:
                    if target not in names:
                        self.report(
                            f"step '{step.name}' notifies '{target}', which is not a handler",
                            *self.step_paths[id(step)],
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


def _is_template(value: Any) -> bool:
    """Whether any string inside `value` is Jinja: its real value is only known per host."""
    return any(_TEMPLATE_MARK.search(str(v)) for v in _leaves(value))


Locate = Callable[[tuple[str | int, ...]], str]


def arg_errors(
    step_type: StepType[Any, Any],
    args: Mapping[str, Any],
    locate: Locate,
    *,
    skip: Callable[[tuple[str | int, ...]], bool] = lambda loc: False,
) -> list[PlaybookError]:
    """Every way `args` do not fit the step type's model, one error per problem.

    `locate(loc)` maps pydantic's error location to `FILE:LINE:COL` (or any label); `skip(loc)`
    drops errors the caller reports better itself or cannot judge yet (templated values).
    Unknown and missing arguments are left to the loader, which names them with did-you-mean.
    """
    try:
        step_type.Args.model_validate(dict(args))
    except pydantic.ValidationError as exc:
        return [
            _arg_error(step_type, error, locate)
            for error in exc.errors()
            if error["type"] not in ("missing", "extra_forbidden") and not skip(tuple(error["loc"]))
        ]
    return []


def _arg_error(step_type: StepType[Any, Any], error: Any, locate: Locate) -> PlaybookError:
    loc = tuple(error["loc"])
    arg = ".".join(str(p) for p in loc) or step_type.name
    return PlaybookError(
        f"argument '{arg}' of `{step_type.name}`: {error['msg']}",
        where=locate(loc),
        hint=f"`redmedic steps {step_type.name}` shows the arguments",
    )


def check_args(step_type: StepType[Any, Any], args: Mapping[str, Any], locate: Locate) -> Any:
    """Validate rendered arguments into the step type's model, or raise PlaybookError.

    `locate(loc)` maps pydantic's error location to `FILE:LINE:COL` (or any label).
    """
    try:
        return step_type.Args.model_validate(dict(args))
    except pydantic.ValidationError as exc:
        raise _arg_error(step_type, exc.errors()[0], locate) from None


def load_playbook(
    path: str | os.PathLike[str], registry: StepRegistry, *, vault: Vault | None = None
) -> Playbook:
    """Load and validate a playbook file against the available step types.

    Raises the first error found (in file order); `validate_playbook` reports them all.
    `vault` opens `!vault` values (in `vars:`) and a vault-encrypted playbook.
    """
    doc = load_yaml(path, error=PlaybookError, vault=vault)
    loader = _Loader(doc, registry)
    playbook = loader.load()
    if loader.errors:
        raise _in_file_order(loader.errors)[0]
    return playbook


def validate_playbook(
    path: str | os.PathLike[str],
    registry: StepRegistry,
    *,
    inventory: Inventory | None = None,
    extra_vars: Iterable[str] = (),
    vault: Vault | None = None,
) -> list[InputError]:
    """Every error `run` could find in a playbook without contacting a host, in file order.

    Without an inventory, a variable that no step registers is assumed to come from one, so
    only registered names used before their step are reported; with `inventory`, each host
    the playbook selects must provide the variables its steps read.
    """
    try:
        doc = load_yaml(path, error=PlaybookError, vault=vault)
    except PlaybookError as exc:
        return [exc]
    loader = _Loader(doc, registry)
    playbook = loader.load()
    errors: list[InputError] = list(loader.errors)
    if inventory is None:
        missing = _missing_variables(playbook, outside_names(playbook) | set(extra_vars))
        errors += [_undefined(step, name) for step, name in missing]
    else:
        try:
            hosts = select_hosts(inventory, playbook.hosts, where=playbook.hosts_where)
        except InventoryError as exc:
            hosts = []
            errors.append(exc)
        lacking: dict[tuple[int, str], list[str]] = {}
        steps = {id(step): step for step in playbook.steps()}
        by_names: dict[frozenset[str], list[tuple[Step, str]]] = {}
        for host in hosts:
            known = frozenset({*host.vars, *extra_vars})
            if known not in by_names:  # most hosts define the same names: analyse once
                by_names[known] = _missing_variables(playbook, known)
            for step, name in by_names[known]:
                lacking.setdefault((id(step), name), []).append(host.name)
        for (step_id, name), names in lacking.items():
            shown = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
            errors.append(
                _undefined(steps[step_id], name, f" for host{'s' * (len(names) > 1)} {shown}")
            )
    return _in_file_order(errors)


_POSITION = re.compile(r":(\d+)(?::(\d+))?$")


def _in_file_order(errors: list[_E]) -> list[_E]:
    """Errors sorted by line and column (errors without a position first); stable otherwise."""

    def position(error: InputError) -> tuple[int, int]:
        match = _POSITION.search(error.where or "")
        return (int(match[1]), int(match[2] or 0)) if match else (0, 0)

    return sorted(errors, key=position)


def _templated_parts(step: Step) -> list[tuple[Any, bool]]:
    """A step's Jinja parts as (value, is a bare expression): arguments, `when`, expect_stdout."""
    return [(dict(step.args), False), (list(step.when), True), (step.expect_stdout, False)]


def names_read(templar: Templar, step: Step) -> set[str]:
    """The variables a step's arguments and conditions read."""
    return set().union(*(templar.undeclared(t, expression=e) for t, e in _templated_parts(step)))


def _missing_variables(playbook: Playbook, known: Iterable[str]) -> list[tuple[Step, str]]:
    """(step, name) for each variable a step reads that no source can provide at that point.

    `known` are the names the host's inventory and `-e` define; the playbook's vars and
    builtins are added here, and step registrations become known after their step, in the
    order a host runs the steps.
    """
    available = set(known) | BUILTIN_VARS | set(playbook.vars)
    templar = Templar()
    missing: list[tuple[Step, str]] = []
    for step in playbook.steps():
        needed = names_read(templar, step)
        optional = set().union(
            *(templar.guarded(t, expression=e) for t, e in _templated_parts(step))
        )
        missing += [(step, name) for name in sorted(needed - optional - available)]
        if step.register:
            available.add(step.register)
    return missing


def _undefined(step: Step, name: str, suffix: str = "") -> TemplateError:
    return TemplateError(
        f"undefined variable '{name}' in step '{step.name}'{suffix}",
        where=step.where,
        hint="define it in the inventory or the playbook's vars, register it in an "
        "earlier step, or pass -e NAME=VALUE",
    )


def check_variables(playbook: Playbook, known: Iterable[str]) -> None:
    """Raise TemplateError for the first variable no source can provide.

    `known` are the names the host's inventory, the playbook's vars and `-e` define; step
    registrations become known after their step, in the order a host runs the steps.
    """
    missing = _missing_variables(playbook, known)
    if missing:
        raise _undefined(*missing[0])


def outside_names(playbook: Playbook) -> set[str]:
    """Names a playbook reads that no step registers: without an inventory at hand,
    `validate` assumes these come from it, and still catches a registered name used
    before the step that registers it."""
    templar = Templar()
    names: set[str] = set()
    for step in playbook.steps():
        names |= names_read(templar, step)
    return names - {s.register for s in playbook.steps() if s.register}
