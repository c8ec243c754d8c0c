"""`-e/--extra-vars` as Ansible reads it: `k=v k2=v2`, inline JSON/YAML, `@file`.

Each `-e` is one of (Ansible's rule, by its first character):

    -e @vars.yaml                 a YAML (or JSON) file holding a mapping
    -e '{"a": 1}'  -e '{a: [x]}'  inline JSON or YAML flow mapping: values keep their type
    -e 'a=1 b="two words"'        shell-like words, each NAME=VALUE: values are strings

Several `-e` are merged in order, later top-level keys replacing earlier ones. A value is
never echoed in an error: `-e` is where passwords are passed.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from redmedic.errors import UsageError
from redmedic.model.vault import Vault
from redmedic.model.yamlsource import load_yaml, parse_yaml

_HINT = "use -e 'NAME=VALUE NAME2=VALUE2', -e '{\"NAME\": VALUE}' or -e @vars.yaml"


def parse_extra_vars(items: Sequence[str], *, vault: Vault | None = None) -> dict[str, Any]:
    """The variables of every `-e` in order, later ones winning; UsageError on bad input."""
    result: dict[str, Any] = {}
    for number, item in enumerate(items, start=1):
        result.update(_one(item, f"-e #{number}", vault))
    return result


def _one(item: str, where: str, vault: Vault | None) -> dict[str, Any]:
    if not item:
        return {}
    if item.startswith("@"):
        return _mapping(load_yaml(item[1:], error=UsageError, vault=vault).data, item[1:])
    if item[0] in "/.":
        raise UsageError(
            "an -e value that starts with / or . looks like a file name",
            where=where,
            hint=f"prepend @ to load it: -e @{item.split()[0]}",
        )
    if item[0] in "[{":
        return _mapping(parse_yaml(item, where, error=UsageError).data, where)
    return _words(item, where)


def _mapping(data: Any, where: str) -> dict[str, Any]:
    if isinstance(data, dict):
        return {str(key): value for key, value in data.items()}
    raise UsageError(
        f"-e needs a mapping of variables, not a {_kind(data)}", where=where, hint=_HINT
    )


def _kind(data: Any) -> str:
    return "list" if isinstance(data, list) else "empty value" if data is None else "scalar"


def _words(item: str, where: str) -> dict[str, str]:
    """`a=1 b="x y"`: shell words (quotes group, backslash escapes), each NAME=VALUE."""
    try:
        words = shlex.split(item)
    except ValueError as exc:  # e.g. "No closing quotation": says nothing of the value
        raise UsageError(f"cannot split -e into words: {exc}", where=where, hint=_HINT) from None
    result: dict[str, str] = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep:
            # A word without '=' carries no value, so naming it cannot leak a secret.
            raise UsageError(f"-e word {word!r} is not NAME=VALUE", where=where, hint=_HINT)
        if not name.isidentifier():
            raise UsageError(
                "-e NAME=VALUE needs a variable name before '='", where=where, hint=_HINT
            )
        result[name] = value
    return result
