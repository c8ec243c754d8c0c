"""The `redmedic` command: parse flags, build objects, call the library, map errors to exits.

Exit codes: 0 success; 1 a host failed, was declined or skipped; 2 bad input or usage;
4 a host was unreachable (and none failed); 130 interrupted.
"""

from __future__ import annotations

import argparse
import difflib
import gc
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from redmedic.audit import AuditLog, default_audit_path, read_run
from redmedic.connection import ConnectOptions
from redmedic.connection.base import COMMAND_TIMEOUT_S
from redmedic.errors import InputError, UsageError
from redmedic.executor import RunOptions
from redmedic.fleet import EXIT_FAILED, EXIT_INPUT, EXIT_UNREACHABLE, RunResult, run_playbook
from redmedic.gate import Confirm, Gate
from redmedic.inventory import Host, load_inventory, select_hosts
from redmedic.planfile import PlanFileError, SavedHost, SavedPlan, file_sha256, load_plan, save_plan
from redmedic.playbook import Playbook, check_variables, load_playbook, validate_playbook
from redmedic.reference import schema_text, step_reference
from redmedic.report.console import ConsolePrompt, ConsoleReporter
from redmedic.report.events import Event, Reporter
from redmedic.report.jsonl import JsonLinesReporter
from redmedic.rollback import Rollback, undo_steps
from redmedic.scaffold import new_playbook
from redmedic.secrets import is_secret_name
from redmedic.sshconfig import DEFAULT_CONFIG, ssh_warnings
from redmedic.steps import StepRegistry, load_step_types
from redmedic.yamlsource import load_yaml


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redmedic",
        description="Diagnose and fix 'Redis connection refused' across a fleet, safely, over SSH.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="dry-run (--check) or apply a playbook to hosts")
    run.add_argument("playbook", help="playbook YAML file")
    run.add_argument("-i", "--inventory", required=True, help="Ansible-style YAML inventory")
    run.add_argument(
        "--check", action="store_true", help="change nothing; show the full plan with diffs"
    )
    run.add_argument(
        "--plan-out", metavar="FILE", help="with --check: save the plan for `redmedic apply`"
    )
    run.add_argument("--confirm-each", action="store_true", help="ask before every change")
    run.add_argument("-t", "--tags", default="", help="only fix steps with these tags (comma list)")
    run.add_argument("--skip-tags", default="", help="skip fix steps with these tags")
    _add_fleet_options(run)

    apply = commands.add_parser("apply", help="apply exactly the changes of a saved plan")
    apply.add_argument("plan", help="plan file from `run --check --plan-out`")
    apply.add_argument("-i", "--inventory", help="inventory (default: the plan's)")
    apply.add_argument("--confirm-each", action="store_true", help="ask before every change")
    _add_fleet_options(apply)

    rollback = commands.add_parser("rollback", help="undo what an earlier run applied")
    rollback.add_argument("run_id", metavar="RUN_ID", help="the run id printed by that run")
    rollback.add_argument("-i", "--inventory", required=True, help="Ansible-style YAML inventory")
    _add_fleet_options(rollback)

    validate = commands.add_parser("validate", help="check playbooks without contacting hosts")
    validate.add_argument("playbooks", nargs="+", metavar="PLAYBOOK")
    validate.add_argument(
        "-i",
        "--inventory",
        help="also check that every selected host provides the variables the steps read",
    )

    steps = commands.add_parser("steps", help="list step types, or describe one")
    steps.add_argument("name", nargs="?")
    steps.add_argument(
        "--markdown", action="store_true", help="print the reference of every step type"
    )

    commands.add_parser(
        "schema", help="print the JSON Schema of playbooks (for editors' YAML language server)"
    )

    new = commands.add_parser("new", help="scaffold a commented playbook to start from")
    new.add_argument("kind", choices=("playbook",), help="what to create")
    new.add_argument("name", help="file name, e.g. fix-bind (.yaml is added)")
    return parser


def _add_fleet_options(parser: argparse.ArgumentParser) -> None:
    """Flags every command that reaches hosts shares: selection, gates, SSH, output, audit."""
    parser.add_argument("--yes", action="store_true", help="approve every confirmation gate")
    parser.add_argument(
        "-l", "--limit", help="restrict hosts: names, groups, globs, !exclusions, commas"
    )
    parser.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        metavar="K=V",
        help="set a variable (highest precedence); @FILE loads a YAML mapping",
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
        "-v", "--verbose", action="store_true", help="show every step and its output"
    )


def parse_extra_vars(items: Sequence[str]) -> dict[str, Any]:
    """`-e K=V` and `-e @file.yaml`, later ones winning."""
    result: dict[str, Any] = {}
    for item in items:
        if item.startswith("@"):
            doc = load_yaml(item[1:], error=UsageError)
            if not isinstance(doc.data, dict):
                raise UsageError("-e @FILE must hold a YAML mapping", where=item[1:])
            result.update(doc.data)
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"bad -e value {item!r}", hint="use -e NAME=VALUE (or -e @vars.yaml)")
        result[key.strip()] = value
    return result


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


def _new_run_id() -> str:
    """Sortable and unique enough to name in `redmedic rollback`."""
    return datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def _run_options(
    args: argparse.Namespace, extra: dict[str, Any], *, check: bool, run_id: str, salt: bytes
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
        console = ConsoleReporter(Console(highlight=False), verbose=args.verbose)
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
    saved: dict[str, SavedHost] | None = None,
) -> RunResult:
    """Run (or apply a saved plan) with the user's output, gates and audit log."""
    _warn_ssh(hosts)
    run_id = _new_run_id()
    options = _run_options(args, extra, check=check, run_id=run_id, salt=salt)
    output = _output(args, changes=not check, run_id=run_id, salt=salt)
    try:
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


def command_run(args: argparse.Namespace, registry: StepRegistry) -> int:
    if args.plan_out and not args.check:
        raise UsageError(
            "--plan-out needs --check", hint="plan with --check, then `redmedic apply`"
        )
    playbook = load_playbook(args.playbook, registry)
    extra = parse_extra_vars(args.extra_vars)
    inventory = load_inventory(args.inventory, ssh_config=args.ssh_config).with_extra_vars(extra)
    hosts = select_hosts(inventory, playbook.hosts, args.limit, where=playbook.hosts_where)
    # In host order, each set of variable names once: a fleet's hosts mostly share one.
    for known in dict.fromkeys(frozenset({*host.vars, *extra}) for host in hosts):
        check_variables(playbook, known)
    salt = os.urandom(16)
    result = _execute(args, registry, playbook, hosts, extra, check=args.check, salt=salt)
    if args.plan_out:
        save_plan(
            SavedPlan(
                playbook=os.path.abspath(args.playbook),
                playbook_sha256=file_sha256(args.playbook),
                inventory=os.path.abspath(args.inventory),
                salt=salt.hex(),
                extra_vars={k: v for k, v in extra.items() if not is_secret_name(k)},
                hosts=result.plans,
            ),
            args.plan_out,
        )
        print(
            f"plan saved to {args.plan_out}: review it, then `redmedic apply {args.plan_out}`",
            file=sys.stderr,
        )
    return result.exit_code


def command_apply(args: argparse.Namespace, registry: StepRegistry) -> int:
    plan = load_plan(args.plan)
    playbook = load_playbook(plan.playbook, registry)
    if file_sha256(plan.playbook) != plan.playbook_sha256:
        raise PlanFileError(
            f"the playbook {plan.playbook} changed since the plan was made",
            where=args.plan,
            hint="make a new plan with --check --plan-out",
        )
    extra = {**plan.extra_vars, **parse_extra_vars(args.extra_vars)}
    inventory_path = args.inventory or plan.inventory
    inventory = load_inventory(inventory_path, ssh_config=args.ssh_config).with_extra_vars(extra)
    names = [name for name, host in plan.hosts.items() if host.steps]
    if not names:
        print("the plan changes nothing: nothing to apply", file=sys.stderr)
        return 0
    hosts = select_hosts(inventory, ",".join(names), args.limit, where=args.plan)
    salt = bytes.fromhex(plan.salt)
    saved = dict(plan.hosts)
    return _execute(
        args, registry, playbook, hosts, extra, check=False, salt=salt, saved=saved
    ).exit_code


def command_rollback(args: argparse.Namespace, registry: StepRegistry) -> int:
    audit_path = Path(args.audit_log) if args.audit_log else default_audit_path()
    records, later = read_run(audit_path, args.run_id)
    started = next(r for r in records if r["event"] == "run_started")
    steps = undo_steps(records, later)
    if not steps:
        print(f"run {args.run_id} left nothing to undo", file=sys.stderr)
        return 0
    extra = parse_extra_vars(args.extra_vars)
    inventory = load_inventory(args.inventory, ssh_config=args.ssh_config).with_extra_vars(extra)
    hosts = select_hosts(inventory, ",".join(steps), args.limit, where=str(audit_path))
    _warn_ssh(hosts)
    salt = bytes.fromhex(started["salt"])
    options = _run_options(args, extra, check=False, run_id=_new_run_id(), salt=salt)
    output = _output(args, changes=True, run_id=options.run_id, salt=salt, rollback_of=args.run_id)
    try:
        statuses = Rollback(
            args.run_id,
            salt,
            steps,
            hosts,
            options.connect,
            output.reporter,
            Gate(output.confirm, approve_all=args.yes),
            forks=args.forks,
        ).run(started["playbook"])
    finally:
        output.close()
    if any(s in ("failed", "declined") for s in statuses.values()):
        return EXIT_FAILED
    return EXIT_UNREACHABLE if "unreachable" in statuses.values() else 0


def command_validate(args: argparse.Namespace, registry: StepRegistry) -> int:
    """Every error of every playbook as `FILE:LINE:COL: message` on stderr; exit 2 if any."""
    inventory = None
    if args.inventory:
        inventory = load_inventory(args.inventory, ssh_config=None)
    failed = False
    for path in args.playbooks:
        errors = validate_playbook(path, registry, inventory=inventory)
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
        "rollback": command_rollback,
        "validate": command_validate,
        "steps": command_steps,
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
