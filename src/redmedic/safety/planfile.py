"""Plan files: the reviewed plan, saved by `run --check --plan-out` and applied by `apply`.

A plan file holds, per host, exactly the changes that were shown: each file change with the
sha256 of the content it was planned against and of the content it writes, each command
with the state it was planned against. Secrets are sealed (see `Masker.seal`): the file
shows none, and `apply` puts them back from the same inventory and -e values, checking the
result against the recorded hash. The file is written 0600: it still lets an attacker test
password guesses offline, like any hash of a secret.

The whole file is signed: `integrity` is an HMAC-SHA256 of everything else in it, keyed by
a per-user secret (`plan_key`, 0600 under $XDG_STATE_HOME/redmedic). Any edit by hand — a
command, a host name, a salt — is refused before a host is contacted, and so is a plan
made by another user (who cannot read the key). The salt alone could not key it: it is in
the file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from redmedic.errors import InputError

# 2: no `display` beside a command (what is shown is the command), `integrity` over the file.
PLAN_VERSION = 2
_KEY_BYTES = 32
_DO_AGAIN = "make the plan again with `redmedic run PLAYBOOK --check --plan-out FILE`"


class PlanFileError(InputError):
    """The plan file is missing, malformed, or does not match the playbook."""


@dataclass(frozen=True)
class SavedStep:
    """The changes one fix step planned; `index` is its position under `fix:`.

    Each change is its kind's own record, `Change.to_data(seal, mask)` (content sealed,
    diff masked), read back with `model.plan.change_from_data`.
    """

    index: int
    name: str
    changes: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class SavedHost:
    name: str
    status: str
    steps: tuple[SavedStep, ...] = ()
    message: str = ""


@dataclass(frozen=True)
class SavedPlan:
    playbook: str
    playbook_sha256: str
    inventory: str
    salt: str  # hex; keys the secret placeholders of this plan
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    hosts: Mapping[str, SavedHost] = field(default_factory=dict)
    version: int = PLAN_VERSION
    # The command line's -u/--private-key/--become-user (never passwords) and -b: `apply`
    # reaches the hosts as the reviewed plan did, as the same users.
    connection: Mapping[str, Any] = field(default_factory=dict)
    become: bool = False


def file_sha256(path: str) -> str:
    """Hash of a playbook file, recorded so `apply` refuses a playbook edited since."""
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def save_plan(plan: SavedPlan, path: str) -> None:
    """Write the plan atomically, readable by the owner only."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".plan-", dir=directory)
    try:
        data = asdict(plan)
        data["integrity"] = signature(data, plan_key(create=True))
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def plan_key_path() -> Path:
    """`$XDG_STATE_HOME/redmedic/plan-key`, beside the audit log."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(state) / "redmedic" / "plan-key"


def plan_key(*, create: bool = False) -> bytes:
    """This user's key for signing plan files, made (0600) on the first `--plan-out`."""
    path = plan_key_path()
    try:
        if path.stat().st_mode & 0o077:  # anyone else who can read it can sign plans
            raise PlanFileError(
                "the plan key may be read by other users: plans it signed are not trusted",
                where=str(path),
                hint=f"`chmod 600 {path}`, then make the plan again",
            )
        return path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = os.urandom(_KEY_BYTES)
    try:  # O_EXCL: two runs at once keep one key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def signature(data: Mapping[str, Any], key: bytes) -> str:
    """HMAC of the plan's data in one canonical form, whatever the file's whitespace."""
    body = {k: v for k, v in data.items() if k != "integrity"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hmac.new(key, text.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


def _check_integrity(data: Mapping[str, Any], path: str) -> None:
    try:
        key = plan_key()
    except OSError:
        raise PlanFileError(
            "cannot check this plan: no plan key of this user "
            f"({plan_key_path()}) — it was made by another user or machine",
            where=path,
            hint=_DO_AGAIN,
        ) from None
    seen = data.get("integrity")
    if not isinstance(seen, str) or not hmac.compare_digest(seen, signature(data, key)):
        raise PlanFileError(
            "the plan file was changed after it was made (its integrity check fails): "
            "nothing was applied",
            where=path,
            hint=f"review and {_DO_AGAIN}; never edit a plan by hand",
        )


def load_plan(path: str) -> SavedPlan:
    """Read a plan file written by `save_plan`; PlanFileError names what is wrong.

    Checked in this order, each a one-line refusal: the format's version, the integrity
    check (no byte changed since it was written), then every field's type, so that a plan
    this code did not write never reaches a host.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise PlanFileError(
            "plan file not found",
            where=path,
            hint="make one with `redmedic run PLAYBOOK -i INV --check --plan-out FILE`",
        ) from None
    except (OSError, ValueError) as exc:
        raise PlanFileError(f"cannot read the plan: {exc}", where=path) from None
    if not isinstance(data, dict):
        raise PlanFileError("malformed plan file (not a JSON object)", where=path, hint=_DO_AGAIN)
    version = data.get("version")
    if version != PLAN_VERSION:
        raise PlanFileError(
            f"plan format version {version!r} is not this redmedic's ({PLAN_VERSION})",
            where=path,
            hint=_DO_AGAIN,
        )
    _check_integrity(data, path)
    try:
        return _plan_from_data(data)
    except _Malformed as exc:
        raise PlanFileError(f"malformed plan file: {exc}", where=path, hint=_DO_AGAIN) from None


class _Malformed(Exception):
    """A field of the plan file that is missing or of the wrong type."""


# The fields `apply` reads from each kind of change, and their JSON types.
_CHANGE_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "command": {"command": (str,), "become": (bool,)},
    "file": {
        "path": (str,),
        "after": (str,),
        "after_sha256": (str,),
        "before_sha256": (str, type(None)),
        "mode": (int, type(None)),
        "become": (bool,),
    },
}


def _field(data: Mapping[str, Any], key: str, types: tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise _Malformed(f"{where} has no `{key}`")
    value = data[key]
    # bool is an int in Python, never an index or a count here
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise _Malformed(f"{where}: `{key}` must be {names}")
    return value


def _plan_from_data(data: Mapping[str, Any]) -> SavedPlan:
    salt = _field(data, "salt", (str,), "the plan")
    try:
        if len(bytes.fromhex(salt)) < 16:
            raise ValueError
    except ValueError:
        raise _Malformed("the plan: `salt` must be hex (16 bytes or more)") from None
    hosts = {}
    for name, host in _field(data, "hosts", (dict,), "the plan").items():
        where = f"host {name!r}"
        if not isinstance(host, dict):
            raise _Malformed(f"{where} must be an object")
        steps = []
        for number, step in enumerate(_field(host, "steps", (list,), where)):
            at = f"{where}, step {number + 1}"
            if not isinstance(step, dict):
                raise _Malformed(f"{at} must be an object")
            index = _field(step, "index", (int,), at)
            if index < 0:
                raise _Malformed(f"{at}: `index` must not be negative")
            changes = _field(step, "changes", (list,), at)
            for count, change in enumerate(changes):
                _check_change(change, f"{at}, change {count + 1}")
            steps.append(SavedStep(index, _field(step, "name", (str,), at), tuple(changes)))
        hosts[name] = SavedHost(
            name=name,
            status=_field(host, "status", (str,), where),
            message=host.get("message", ""),
            steps=tuple(steps),
        )
    return SavedPlan(
        playbook=_field(data, "playbook", (str,), "the plan"),
        playbook_sha256=_field(data, "playbook_sha256", (str,), "the plan"),
        inventory=_field(data, "inventory", (str,), "the plan"),
        salt=salt,
        extra_vars=_field(data, "extra_vars", (dict,), "the plan"),
        hosts=hosts,
        connection=_field(data, "connection", (dict,), "the plan"),
        become=_field(data, "become", (bool,), "the plan"),
    )


def _check_change(change: object, where: str) -> None:
    if not isinstance(change, dict):
        raise _Malformed(f"{where} must be an object")
    kind = change.get("kind")
    fields = _CHANGE_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise _Malformed(f"{where}: unknown kind {kind!r}")
    for key, types in fields.items():
        _field(change, key, types, where)
