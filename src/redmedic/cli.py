"""The `redmedic` command: parse flags, build objects, call the library, map errors to exits.

Exit codes: 0 success; 1 a host failed, was declined or skipped; 2 bad input or usage;
4 a host was unreachable (and none failed); 130 interrupted.
"""

from __future__ import annotations

import argparse
import difflib
import gc
import getpass
import os
import secrets
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from redmedic.authoring.reference import schema_text, step_reference
from redmedic.authoring.scaffold import new_playbook
from redmedic.connection import ConnectOptions
from redmedic.connection.base import COMMAND_TIMEOUT_S
from redmedic.errors import InputError, UsageError
from redmedic.events import Confirm, Event, Reporter, RunFinished
from redmedic.model.extravars import parse_extra_vars
from redmedic.model.inventory import Host, Inventory, load_inventory, select_hosts
from redmedic.model.shipped import resolve_playbook, shipped_dir, shipped_playbooks
from redmedic.model.sshconfig import DEFAULT_CONFIG, ssh_warnings
from redmedic.model.vault import Vault, open_vault
from redmedic.playbook import Playbook, check_variables, load_playbook, validate_playbook
from redmedic.report.console import ConsolePrompt, ConsoleReporter, summary_text
from redmedic.report.jsonl import JsonLinesReporter
from redmedic.report.listing import listing
from redmedic.report.merge import merge_summaries
from redmedic.report.sshlog import run_masker, ssh_conversation
from redmedic.report.visible import visible
from redmedic.run.executor import RunOptions
from redmedic.run.fleet import EXIT_INPUT, RunResult, exit_code, run_playbook
from redmedic.run.gate import Gate
from redmedic.run.rollback import Rollback, undo_steps
from redmedic.run.shard import parse_shard
from redmedic.safety.audit import AuditLog, default_audit_path, read_run
from redmedic.safety.planfile import (
    PlanFileError,
    SavedHost,
    SavedPlan,
    file_sha256,
    load_plan,
    save_plan,
)
from redmedic.safety.secrets import is_secret_name
from redmedic.safety.showplan import render_plan
from redmedic.steps import StepRegistry, load_step_types


class _Parser(argparse.ArgumentParser):
    """No abbreviated flags: `--lim` must not quietly mean `--limit` (or, after a new flag
    starting the same way is added, something else)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


class _CommandParser(_Parser):
    """A sub-command's parser: an unknown flag is its error, shown with its own usage.

    Left to argparse, unknown flags travel up to the top-level parser, whose usage
    (`redmedic [-h] COMMAND ...`) says nothing about the flags of the command typed. Only
    flag names are repeated, never other words: `-k hunter2` must not echo the password.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            flags = [word.split("=", 1)[0] for word in extras if word.startswith("-")]
            words = len(extras) - len(flags)
            more = f" (and {words} more word(s))" if flags and words else ""
            if flags:
                self.error(f"unrecognized arguments: {' '.join(flags)}{more}")
            self.error(f"{words} unexpected word(s) on the command line")
        return parsed, extras


class _VersionAction(argparse.Action):
    """`--version` as ansible prints it: the program, then the versions it runs on."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show versions and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        sys.stdout.write(version_text())
        parser.exit()


def version_text() -> str:
    """`redmedic X.Y.Z` from the installed package's metadata, then python and paramiko."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import paramiko

    try:
        ours = version("redmedic")
    except PackageNotFoundError:  # run from a source tree that was never installed
        ours = "(not installed)"
    return (
        f"redmedic {ours}\n"
        f"  python version = {platform.python_version()} ({sys.executable})\n"
        f"  paramiko version = {paramiko.__version__}\n"
    )


_INVENTORY_HELP = (
    "inventory: YAML, INI, a script, a directory, or host1,host2, (repeat -i to merge)"
)


def _absolute_sources(sources: list[str]) -> list[str]:
    """-i values for a saved plan: paths made absolute, host lists (`h1,h2,`) as given."""
    return [s if "," in s and not os.path.exists(s) else os.path.abspath(s) for s in sources]


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="redmedic",
        description="Diagnose and fix 'Redis connection refused' across a fleet, safely, over SSH.",
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser
    )

    run = commands.add_parser("run", help="dry-run (--check) or apply a playbook to hosts")
    run.add_argument("playbook", help="playbook file, or the name of a shipped one")
    run.add_argument("-i", "--inventory", action="append", required=True, help=_INVENTORY_HELP)
    run.add_argument(
        "-C", "--check", action="store_true", help="change nothing; show the full plan with diffs"
    )
    run.add_argument(
        "-D",
        "--diff",
        action="store_true",
        help="accepted for Ansible habits: redmedic always shows the diff of every change",
    )
    _add_list_options(run)
    run.add_argument(
        "--plan-out", metavar="FILE", help="with --check: save the plan for `redmedic apply`"
    )
    run.add_argument("--confirm-each", action="store_true", help="ask before every change")
    run.add_argument("-t", "--tags", default="", help="only fix steps with these tags (comma list)")
    run.add_argument("--skip-tags", default="", help="skip fix steps with these tags")
    _add_fleet_options(run)

    apply = commands.add_parser("apply", help="apply exactly the changes of a saved plan")
    apply.add_argument("plan", help="plan file from `run --check --plan-out`")
    apply.add_argument("-i", "--inventory", action="append", help="inventory (default: the plan's)")
    apply.add_argument("--confirm-each", action="store_true", help="ask before every change")
    _add_fleet_options(apply)

    rollback = commands.add_parser("rollback", help="undo what an earlier run applied")
    rollback.add_argument("run_id", metavar="RUN_ID", help="the run id printed by that run")
    rollback.add_argument("-i", "--inventory", action="append", required=True, help=_INVENTORY_HELP)
    _add_fleet_options(rollback)

    report = commands.add_parser(
        "report", help="one summary of several --output json runs (the shards of a fleet)"
    )
    report.add_argument("outputs", nargs="+", metavar="FILE", help="--output json files")
    report.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (the summary table) or json (one summary line)",
    )

    show = commands.add_parser("show", help="show exactly what `apply` would run from a plan")
    show.add_argument("plan", help="plan file from `run --check --plan-out`")

    validate = commands.add_parser("validate", help="check playbooks without contacting hosts")
    validate.add_argument(
        "playbooks", nargs="+", metavar="PLAYBOOK", help="files, or names of shipped playbooks"
    )
    validate.add_argument(
        "-i",
        "--inventory",
        action="append",
        help="also check that every selected host provides the variables the steps read",
    )
    _add_vault_options(validate)

    steps = commands.add_parser("steps", help="list step types, or describe one")
    steps.add_argument("name", nargs="?")
    steps.add_argument(
        "--markdown", action="store_true", help="print the reference of every step type"
    )

    commands.add_parser("playbooks", help="list the shipped playbooks (run them by name)")

    commands.add_parser(
        "schema", help="print the JSON Schema of playbooks (for editors' YAML language server)"
    )

    new = commands.add_parser("new", help="scaffold a commented playbook to start from")
    new.add_argument("kind", choices=("playbook",), help="what to create")
    new.add_argument("name", help="file name, e.g. fix-bind (.yaml is added)")
    return parser


def _add_list_options(parser: argparse.ArgumentParser) -> None:
    """ansible-playbook's --list-* flags: print what the run would touch, contact nothing."""
    parser.add_argument(
        "--list-hosts", action="store_true", help="list the hosts the run would touch (after -l)"
    )
    parser.add_argument(
        "--list-tasks", action="store_true", help="list the steps of each phase, with tags"
    )
    parser.add_argument("--list-tags", action="store_true", help="list the steps' tags")


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    """ansible-playbook's connection flags. As in Ansible, any inventory variable beats them
    (they are the `defaults` below every inventory level), and passwords are asked for on
    the terminal, never taken from the command line."""
    parser.add_argument("-u", "--user", help="login user (ansible_user)")
    parser.add_argument(
        "--private-key",
        "--key-file",
        dest="private_key",
        metavar="FILE",
        help="SSH private key (ansible_ssh_private_key_file)",
    )
    parser.add_argument(
        "-k", "--ask-pass", action="store_true", help="ask for the SSH password (ansible_password)"
    )
    parser.add_argument(
        "-K",
        "--ask-become-pass",
        action="store_true",
        help="ask for the sudo password (ansible_become_password)",
    )
    parser.add_argument(
        "-b", "--become", action="store_true", help="become root with sudo (ansible_become)"
    )
    parser.add_argument(
        "--become-user",
        metavar="USER",
        help="become this user instead of root (ansible_become_user)",
    )


def _add_vault_options(parser: argparse.ArgumentParser) -> None:
    """Ansible's vault flags, spelled as ansible-playbook spells them."""
    parser.add_argument(
        "--vault-id",
        dest="vault_ids",
        action="append",
        default=[],
        metavar="[LABEL@]SOURCE",
        help="a vault password: SOURCE is a file, an executable printing it, or 'prompt'",
    )
    parser.add_argument(
        "--vault-password-file",
        "--vault-pass-file",
        dest="vault_password_files",
        action="append",
        default=[],
        metavar="FILE",
        help="vault password file (or an executable printing the password)",
    )
    parser.add_argument(
        "-J",
        "--ask-vault-password",
        "--ask-vault-pass",
        dest="ask_vault_pass",
        action="store_true",
        help="ask for the vault password (never echoed)",
    )


def _vault(args: argparse.Namespace) -> Vault:
    """The run's vault passwords; with none, vault data is refused with these flags named."""
    return open_vault(args.vault_ids, args.vault_password_files, ask=args.ask_vault_pass)


def _add_fleet_options(parser: argparse.ArgumentParser) -> None:
    """Flags every command that reaches hosts shares: selection, gates, SSH, output, audit."""
    _add_connection_options(parser)
    _add_vault_options(parser)
    parser.add_argument("--yes", action="store_true", help="approve every confirmation gate")
    parser.add_argument(
        "-l", "--limit", help="restrict hosts: names, groups, globs, !exclusions, commas"
    )
    parser.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        metavar="VARS",
        help="set variables (highest precedence), as Ansible: 'k=v k2=v2' (strings), "
        "inline JSON/YAML '{\"k\": 1}', or @FILE (YAML/JSON); repeatable, later wins",
    )
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="only this machine's share of the selected hosts: shard K (from 1) of N, "
        "by a hash of the host name (docs/sharding.md)",
    )
    parser.add_argument("-f", "--forks", type=int, default=20, help="hosts in parallel (20)")
    parser.add_argument("--serial", help="batch sizes, e.g. 1 or 10%% or 1,10%%,100%%")
    parser.add_argument(
        "--max-fail-percent",
        type=float,
        help="stop later batches when more than this percent of a batch failed "
        "(with --serial the default is 0: any failure stops the rollout)",
    )
    parser.add_argument(
        "--confirm-batches",
        action="store_true",
        help="plan each batch after the first, show it, and ask before applying it",
    )
    parser.add_argument(
        "--known-hosts",
        action="append",
        default=[],
        metavar="FILE",
        help="extra known_hosts file (besides ~/.ssh/known_hosts)",
    )
    parser.add_argument(
        "--trust-new-host-keys",
        action="store_true",
        help="record unknown host keys (changed keys are always refused)",
    )
    parser.add_argument(
        "--ssh-config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help="read only this ssh client config, as ssh -F (`none`: no config); "
        "default: ~/.ssh/config, then /etc/ssh/ssh_config",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="to reach and log into a host (10); a host's ConnectTimeout wins",
    )
    parser.add_argument(
        "--command-timeout",
        type=float,
        default=COMMAND_TIMEOUT_S,
        metavar="SECONDS",
        help=f"fail a host whose command runs longer ({COMMAND_TIMEOUT_S:g}; 0: no limit)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=0,
        metavar="N",
        help="retry a connection that failed to open (network errors only), with backoff (0)",
    )
    parser.add_argument(
        "--audit-log",
        metavar="FILE",
        help="append-only record of applied changes (default ~/.local/state/redmedic/audit.jsonl)",
    )
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (rich) or json (one event per line)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: show every step and its output; -vvv: also the SSH conversation "
        "(key exchange, authentication, channels; secrets masked)",
    )


def _tags(text: str) -> frozenset[str]:
    return frozenset(t.strip() for t in text.split(",") if t.strip())


def _serial(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    parts = tuple(p.strip() for p in text.split(","))
    for part in parts:
        number = part[:-1] if part.endswith("%") else part
        if not number.replace(".", "", 1).isdigit() or float(number) <= 0:
            raise UsageError(
                f"bad --serial value {part!r}", hint="use sizes like 1, 5, 10% or 1,10%,100%"
            )
    return parts


def _in_shard(args: argparse.Namespace, hosts: list[Host]) -> list[Host]:
    """`--shard K/N`: this machine's share of the selected hosts; an empty share is no error
    (a small fleet leaves some of N shards empty), the run then just has no hosts."""
    if args.shard is None:
        return hosts
    shard = parse_shard(args.shard)
    mine = shard.pick(hosts)
    empty = "" if mine else ": nothing to do on this machine"
    print(f"shard {shard}: {len(mine)} of the {len(hosts)} selected hosts{empty}", file=sys.stderr)
    return mine


def _new_run_id() -> str:
    """Sortable and unique enough to name in `redmedic rollback`."""
    return datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def _ask_secret(prompt: str, flag: str) -> str:
    """Read a password from the terminal, not echoed (getpass reads /dev/tty itself).

    Without a terminal getpass would fall back to reading stdin with echo on, and a run
    from cron or CI would hang or swallow its input: that is a usage error instead.
    """
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        raise UsageError(
            f"{flag} needs a terminal to ask for the password, and there is none",
            hint="run it from a terminal, or put the password in the inventory "
            "(encrypted with ansible-vault)",
        ) from None
    try:
        return getpass.getpass(prompt)
    except EOFError:  # Ctrl-D at the prompt
        raise UsageError(f"{flag}: no password was typed") from None


def connection_defaults(args: argparse.Namespace, *, ask: bool = True) -> dict[str, Any]:
    """-u, --private-key, -k, -K, --become-user as inventory variables below every
    inventory level (Ansible ranks the command line's connection options lowest).

    `-b` is not among them: Ansible ranks it below the playbook's `become:` keywords too,
    which an inventory variable would beat, so it travels as `RunOptions.become`.

    With `ask` False (nothing will be contacted: --list-hosts) -k and -K ask nothing.
    """
    defaults: dict[str, Any] = {}
    if args.user:
        defaults["ansible_user"] = args.user
    if args.private_key:
        defaults["ansible_ssh_private_key_file"] = args.private_key
    if args.become_user:
        defaults["ansible_become_user"] = args.become_user
    if ask and args.ask_pass:
        defaults["ansible_password"] = _ask_secret("SSH password: ", "-k/--ask-pass")
    if ask and args.ask_become_pass:
        if args.ask_pass:  # as Ansible: an empty answer reuses the SSH password
            said = _ask_secret("BECOME password[defaults to SSH password]: ", "-K")
            defaults["ansible_become_password"] = said or defaults["ansible_password"]
        else:
            defaults["ansible_become_password"] = _ask_secret("BECOME password: ", "-K")
    return defaults


def _ssh_log(
    args: argparse.Namespace,
    hosts: Sequence[Host],
    extra: dict[str, Any],
    sensitive: frozenset[str] = frozenset(),
    secrets: frozenset[str] = frozenset(),
) -> AbstractContextManager[None]:
    """-vvv: the SSH conversation on stderr while the block runs, with the run's secrets
    (vault plaintexts among them) masked; nothing otherwise."""
    if args.verbose < 3:
        return nullcontext()
    return ssh_conversation(run_masker(hosts, extra, sensitive, secrets))


def _run_options(
    args: argparse.Namespace,
    extra: dict[str, Any],
    *,
    check: bool,
    run_id: str,
    salt: bytes,
    secrets: frozenset[str],
) -> RunOptions:
    if args.forks < 1:
        raise UsageError("-f/--forks must be at least 1")
    if args.retries < 0 or args.command_timeout < 0 or args.connect_timeout <= 0:
        raise UsageError(
            "--retries and --command-timeout cannot be negative, --connect-timeout must be > 0"
        )
    return RunOptions(
        check=check,
        confirm_each=getattr(args, "confirm_each", False),
        tags=_tags(getattr(args, "tags", "")),
        skip_tags=_tags(getattr(args, "skip_tags", "")),
        extra_vars=extra,
        forks=args.forks,
        serial=_serial(args.serial),
        max_fail_percent=args.max_fail_percent,
        confirm_batches=args.confirm_batches,
        connect=ConnectOptions(
            known_hosts_files=tuple(args.known_hosts),
            trust_new_host_keys=args.trust_new_host_keys,
            connect_timeout=args.connect_timeout,
            command_timeout=args.command_timeout or None,
            retries=args.retries,
        ),
        keep_plan=bool(getattr(args, "plan_out", None)),
        run_id=run_id,
        salt=salt,
        secrets=secrets,
        become=args.become,
    )


@dataclass
class _Output:
    """Where a run's events go: the user's reporter, the gate prompt, the audit log."""

    reporter: Reporter
    confirm: Confirm | None
    audit: AuditLog | None

    def close(self) -> None:
        if self.audit is not None:
            self.audit.close()


def _output(
    args: argparse.Namespace,
    *,
    changes: bool,
    run_id: str,
    salt: bytes,
    rollback_of: str | None = None,
) -> _Output:
    """Refuse to change hosts without a way to confirm; set up reporting and auditing."""
    interactive = sys.stdin is not None and sys.stdin.isatty()
    if changes and not args.yes and not interactive:
        raise UsageError(
            "refusing to apply: no terminal on stdin to confirm changes",
            hint="re-run with --yes to approve them, or --check to only show the plan",
        )
    confirm: Confirm | None = None
    user: Reporter
    if args.output == "json":
        user = JsonLinesReporter(sys.stdout)
    else:
        console = ConsoleReporter(Console(highlight=False), verbose=args.verbose >= 1)
        user = console
        if interactive:
            confirm = ConsolePrompt(console, sys.stdin)
    if not changes:
        return _Output(user, confirm, None)
    path = Path(args.audit_log) if args.audit_log else default_audit_path()
    audit = AuditLog(path, run_id, salt, rollback_of=rollback_of)

    def both(event: Event) -> None:
        audit(event)
        user(event)

    return _Output(both, confirm, audit)


def _execute(
    args: argparse.Namespace,
    registry: StepRegistry,
    playbook: Playbook,
    hosts: list[Host],
    extra: dict[str, Any],
    *,
    check: bool,
    salt: bytes,
    vault: Vault,
    saved: dict[str, SavedHost] | None = None,
) -> RunResult:
    """Run (or apply a saved plan) with the user's output, gates and audit log."""
    _warn_ssh(hosts)
    run_id = _new_run_id()
    secrets = vault.secrets
    options = _run_options(args, extra, check=check, run_id=run_id, salt=salt, secrets=secrets)
    output = _output(args, changes=not check, run_id=run_id, salt=salt)
    try:
        with _ssh_log(args, hosts, extra, playbook.sensitive_vars, secrets):
            return run_playbook(
                playbook,
                hosts,
                options,
                registry=registry,
                reporter=output.reporter,
                confirm=output.confirm,
                approve_all=args.yes,
                saved=saved,
            )
    finally:
        output.close()


def _warn_ssh(hosts: list[Host]) -> None:
    """What the ssh config (or ssh args) of these hosts set that redmedic ignores, once each."""
    for line in ssh_warnings((host.name, host.ssh) for host in hosts):
        print(f"redmedic: warning: {line}", file=sys.stderr)


def _check_writable_dir(path: str) -> None:
    """Refuse now, before any host, a file that could not be written after the whole run."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(
            f"--plan-out: the directory {folder} does not exist", hint="create it or pick another"
        )
    if not os.access(folder, os.W_OK | os.X_OK) or os.path.isdir(path):
        raise UsageError(
            f"--plan-out: cannot write {path}", hint="pick a file in a directory you can write"
        )


def command_run(args: argparse.Namespace, registry: StepRegistry) -> int:
    if args.plan_out and not args.check:
        raise UsageError(
            "--plan-out needs --check", hint="plan with --check, then `redmedic apply`"
        )
    if args.plan_out:
        _check_writable_dir(args.plan_out)
    args.playbook = resolve_playbook(args.playbook)
    vault = _vault(args)
    playbook = load_playbook(args.playbook, registry, vault=vault)
    extra = parse_extra_vars(args.extra_vars, vault=vault)
    listing_only = args.list_hosts or args.list_tasks or args.list_tags
    defaults = connection_defaults(args, ask=not listing_only)
    inventory = load_inventory(
        args.inventory,
        ssh_config=args.ssh_config,
        defaults=defaults,
        vault=vault,
        playbook_dir=os.path.dirname(args.playbook),
    ).with_extra_vars(extra)
    hosts = _in_shard(
        args, select_hosts(inventory, playbook.hosts, args.limit, where=playbook.hosts_where)
    )
    if listing_only:
        sys.stdout.write(_listing(args, playbook, hosts))
        return 0
    # In host order, each set of variable names once: a fleet's hosts mostly share one.
    for known in dict.fromkeys(frozenset({*host.vars, *extra}) for host in hosts):
        check_variables(playbook, known)
    salt = os.urandom(16)
    result = _execute(
        args, registry, playbook, hosts, extra, check=args.check, salt=salt, vault=vault
    )
    if args.plan_out:
        save_plan(
            SavedPlan(
                playbook=os.path.abspath(args.playbook),
                playbook_sha256=file_sha256(args.playbook),
                inventory="\n".join(_absolute_sources(args.inventory)),
                salt=salt.hex(),
                extra_vars={
                    k: v for k, v in extra.items() if not is_secret_name(k) and not vault.holds(v)
                },
                hosts=result.plans,
                connection={k: v for k, v in defaults.items() if not is_secret_name(k)},
                become=args.become,
            ),
            args.plan_out,
        )
        print(
            f"plan saved to {args.plan_out}: review it, then `redmedic apply {args.plan_out}`",
            file=sys.stderr,
        )
    return result.exit_code


def _listing(args: argparse.Namespace, playbook: Playbook, hosts: Sequence[Host]) -> str:
    selection = RunOptions(tags=_tags(args.tags), skip_tags=_tags(args.skip_tags))
    return listing(
        playbook,
        hosts=[host.name for host in hosts] if args.list_hosts else None,
        tasks=args.list_tasks,
        tags=args.list_tags,
        selects=selection.selects,
    )


def command_apply(args: argparse.Namespace, registry: StepRegistry) -> int:
    plan = load_plan(args.plan)
    vault = _vault(args)
    playbook = load_playbook(plan.playbook, registry, vault=vault)
    if file_sha256(plan.playbook) != plan.playbook_sha256:
        raise PlanFileError(
            f"the playbook {plan.playbook} changed since the plan was made",
            where=args.plan,
            hint="make a new plan with --check --plan-out",
        )
    extra = {**plan.extra_vars, **parse_extra_vars(args.extra_vars, vault=vault)}
    inventory = load_inventory(
        args.inventory or plan.inventory.split("\n"),  # one line per -i of the plan
        ssh_config=args.ssh_config,
        defaults={**plan.connection, **connection_defaults(args)},
        vault=vault,
        playbook_dir=os.path.dirname(plan.playbook),
    ).with_extra_vars(extra)
    names = [name for name, host in plan.hosts.items() if host.steps]
    if not names:
        print("the plan changes nothing: nothing to apply", file=sys.stderr)
        return 0
    hosts = _in_shard(args, _plan_hosts(inventory, names, args.limit, where=args.plan))
    salt = bytes.fromhex(plan.salt)
    saved = dict(plan.hosts)
    args.become = args.become or plan.become  # -b given to the run that made the plan
    return _execute(
        args, registry, playbook, hosts, extra, check=False, salt=salt, vault=vault, saved=saved
    ).exit_code


def command_show(args: argparse.Namespace, registry: StepRegistry) -> int:
    """What `apply` would run, as a reviewer reads it; a host's bytes shown, never obeyed."""
    sys.stdout.write(visible(render_plan(load_plan(args.plan))))
    return 0


def _plan_hosts(
    inventory: Inventory, names: Sequence[str], limit: str | None, *, where: str
) -> list[Host]:
    """Exactly the plan's hosts, each by its name (never as a pattern: `all` or a group name
    is no host), narrowed by --limit."""
    by_name = {host.name: host for host in inventory.hosts}
    for name in names:
        if name not in by_name:
            raise PlanFileError(
                f"the plan's host {name!r} is not a host of the inventory "
                "(apply runs exactly the plan's hosts, never a pattern or a group)",
                where=where,
                hint="make the plan again against this inventory",
            )
    if limit is not None:
        allowed = {host.name for host in select_hosts(inventory, "all", limit)}
        names = [name for name in names if name in allowed]
        if not names:
            raise UsageError(f"--limit {limit!r} leaves none of the plan's hosts")
    return [by_name[name] for name in names]


def command_rollback(args: argparse.Namespace, registry: StepRegistry) -> int:
    audit_path = Path(args.audit_log) if args.audit_log else default_audit_path()
    records, later = read_run(audit_path, args.run_id)
    started = next((r for r in records if r["event"] == "run_started"), None)
    if started is None:
        raise UsageError(
            f"run {args.run_id} has no run_started record in the audit log",
            where=str(audit_path),
            hint="the log was cut or edited: undo by hand from its change records",
        )
    steps = undo_steps(records, later, str(audit_path))
    if not steps:
        print(f"run {args.run_id} left nothing to undo", file=sys.stderr)
        return 0
    vault = _vault(args)
    extra = parse_extra_vars(args.extra_vars, vault=vault)
    inventory = load_inventory(
        args.inventory,
        ssh_config=args.ssh_config,
        defaults=connection_defaults(args),
        vault=vault,
        playbook_dir=os.path.dirname(started["playbook"]),
    ).with_extra_vars(extra)
    hosts = _in_shard(
        args, select_hosts(inventory, ",".join(steps), args.limit, where=str(audit_path))
    )
    _warn_ssh(hosts)
    salt = bytes.fromhex(started["salt"])
    secrets = vault.secrets
    options = _run_options(
        args, extra, check=False, run_id=_new_run_id(), salt=salt, secrets=secrets
    )
    output = _output(args, changes=True, run_id=options.run_id, salt=salt, rollback_of=args.run_id)
    try:
        with _ssh_log(args, hosts, extra, secrets=secrets):
            statuses = Rollback(
                args.run_id,
                salt,
                steps,
                hosts,
                options.connect,
                output.reporter,
                Gate(output.confirm, approve_all=args.yes),
                forks=args.forks,
                secrets=secrets,
            ).run(started["playbook"])
    finally:
        output.close()
    return exit_code(statuses.values())


def command_report(args: argparse.Namespace, registry: StepRegistry) -> int:
    """The shards' summaries as one, with the exit code one run over all their hosts gives."""
    hosts = merge_summaries(args.outputs)
    if args.output == "json":
        JsonLinesReporter(sys.stdout)(RunFinished(hosts))
    else:
        Console(highlight=False).print(summary_text(hosts))
    return exit_code(str(row.get("status")) for row in hosts.values())


def command_validate(args: argparse.Namespace, registry: StepRegistry) -> int:
    """Every error of every playbook as `FILE:LINE:COL: message` on stderr; exit 2 if any."""
    vault = _vault(args)
    failed = False
    inventories: dict[str, Inventory] = {}  # by playbook directory: its group_vars count
    for path in map(resolve_playbook, args.playbooks):
        inventory = None
        if args.inventory:
            where = os.path.dirname(path)
            if where not in inventories:
                inventories[where] = load_inventory(
                    args.inventory, ssh_config=None, playbook_dir=where, vault=vault
                )
            inventory = inventories[where]
        errors = validate_playbook(path, registry, inventory=inventory, vault=vault)
        for error in errors:
            print(error, file=sys.stderr)
        if errors:
            failed = True
        else:
            print(f"{path}: ok")
    return EXIT_INPUT if failed else 0


def command_steps(args: argparse.Namespace, registry: StepRegistry) -> int:
    if args.markdown:
        sys.stdout.write(step_reference(registry))
        return 0
    console = Console(highlight=False)
    if args.name is None:
        width = max(len(n) for n in registry)
        for name in sorted(registry):
            console.print(f"[bold]{name.ljust(width)}[/]  {registry[name].summary}")
        return 0
    step_type = registry.get(args.name)
    if step_type is None:
        close = difflib.get_close_matches(args.name, list(registry), n=1)
        raise UsageError(
            f"unknown step type '{args.name}'",
            hint=f"did you mean '{close[0]}'?" if close else "`redmedic steps` lists them",
        )
    console.print(f"[bold]{step_type.name}[/]: {step_type.summary}")
    if step_type.__doc__:
        console.print(" ".join(step_type.__doc__.split()))
    for name, kind, default, description in step_type.describe_args():
        console.print(f"  [bold]{name}[/] ({kind}, {default}): {description}")
    return 0


def command_playbooks(args: argparse.Namespace, registry: StepRegistry) -> int:
    """One line per shipped playbook: the name `run` takes, and what it is for."""
    shipped = shipped_playbooks()
    width = max((len(p.name) for p in shipped), default=0)
    for playbook in shipped:
        print(f"{playbook.name.ljust(width)}  {playbook.summary}")
    print(f"(installed in {shipped_dir()}; run one with `redmedic run NAME -i INVENTORY`)")
    return 0


def command_schema(args: argparse.Namespace, registry: StepRegistry) -> int:
    """The playbook JSON Schema, including installed plugins' step types."""
    sys.stdout.write(schema_text(registry))
    return 0


def command_new(args: argparse.Namespace, registry: StepRegistry) -> int:
    """Write a starter playbook; never overwrites."""
    path = new_playbook(args.name)
    print(f"created {path}: edit it, then `redmedic validate {path}`")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    # Everything imported so far lives until exit: keep the cyclic GC from walking it again
    # in every collection and once more at exit (~40 ms of a run's start-up and teardown).
    gc.freeze()
    args = _parser().parse_args(argv)
    handlers = {
        "run": command_run,
        "apply": command_apply,
        "show": command_show,
        "rollback": command_rollback,
        "report": command_report,
        "validate": command_validate,
        "steps": command_steps,
        "playbooks": command_playbooks,
        "schema": command_schema,
        "new": command_new,
    }
    try:
        return handlers[args.command](args, load_step_types())
    except InputError as exc:
        print(f"redmedic: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("redmedic: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
