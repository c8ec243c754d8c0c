"""The `redmedic` command: parse flags, build objects, call the library, map errors to exits.

Exit codes: 0 success; 1 a host failed, was declined or skipped; 2 bad input or usage;
4 a host was unreachable (and none failed); 130 interrupted.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from redmedic.connection import ConnectOptions
from redmedic.errors import InputError, UsageError
from redmedic.executor import Confirm, RunOptions
from redmedic.fleet import EXIT_INPUT, run_playbook
from redmedic.inventory import load_inventory, select_hosts
from redmedic.playbook import check_variables, load_playbook, validate_playbook
from redmedic.report.console import ConsolePrompt, ConsoleReporter
from redmedic.report.events import Reporter
from redmedic.report.jsonl import JsonLinesReporter
from redmedic.steps import StepRegistry, builtin_step_types
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
    run.add_argument("--yes", action="store_true", help="approve every confirmation gate")
    run.add_argument("--confirm-each", action="store_true", help="ask before every change")
    run.add_argument(
        "-l", "--limit", help="restrict hosts: names, groups, globs, !exclusions, commas"
    )
    run.add_argument("-t", "--tags", default="", help="only fix steps with these tags (comma list)")
    run.add_argument("--skip-tags", default="", help="skip fix steps with these tags")
    run.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        metavar="K=V",
        help="set a variable (highest precedence); @FILE loads a YAML mapping",
    )
    run.add_argument("-f", "--forks", type=int, default=20, help="hosts handled in parallel (20)")
    run.add_argument("--serial", help="batch sizes, e.g. 1 or 10%% or 1,10%%,100%%")
    run.add_argument(
        "--max-fail-percent",
        type=float,
        help="stop later batches when more than this percent of a batch failed",
    )
    run.add_argument(
        "--known-hosts",
        action="append",
        default=[],
        metavar="FILE",
        help="extra known_hosts file (besides ~/.ssh/known_hosts)",
    )
    run.add_argument(
        "--trust-new-host-keys",
        action="store_true",
        help="record unknown host keys (changed keys are always refused)",
    )
    run.add_argument("--ssh-config", default="~/.ssh/config", help="ssh config merged into hosts")
    run.add_argument("--connect-timeout", type=float, default=10.0, help="seconds (10)")
    run.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (rich) or json (one event per line)",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="show every step and its output")

    validate = commands.add_parser("validate", help="check playbooks without contacting hosts")
    validate.add_argument("playbooks", nargs="+", metavar="PLAYBOOK")
    validate.add_argument(
        "-i",
        "--inventory",
        help="also check that every selected host provides the variables the steps read",
    )

    steps = commands.add_parser("steps", help="list step types, or describe one")
    steps.add_argument("name", nargs="?")
    return parser


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


def command_run(args: argparse.Namespace, registry: StepRegistry) -> int:
    playbook = load_playbook(args.playbook, registry)
    extra = parse_extra_vars(args.extra_vars)
    inventory = load_inventory(args.inventory, ssh_config=args.ssh_config).with_extra_vars(extra)
    hosts = select_hosts(inventory, playbook.hosts, args.limit, where=playbook.hosts_where)
    for host in hosts:
        check_variables(playbook, {*host.vars, *extra})
    if args.forks < 1:
        raise UsageError("-f/--forks must be at least 1")
    options = RunOptions(
        check=args.check,
        confirm_each=args.confirm_each,
        tags=_tags(args.tags),
        skip_tags=_tags(args.skip_tags),
        extra_vars=extra,
        forks=args.forks,
        serial=_serial(args.serial),
        max_fail_percent=args.max_fail_percent,
        connect=ConnectOptions(
            known_hosts_files=tuple(args.known_hosts),
            trust_new_host_keys=args.trust_new_host_keys,
            connect_timeout=args.connect_timeout,
        ),
    )
    interactive = sys.stdin is not None and sys.stdin.isatty()
    if not args.check and not args.yes and not interactive:
        raise UsageError(
            "refusing to apply: no terminal on stdin to confirm changes",
            hint="re-run with --yes to approve them, or --check to only show the plan",
        )
    reporter: Reporter
    confirm: Confirm | None = None
    if args.output == "json":
        reporter = JsonLinesReporter(sys.stdout)
    else:
        console_reporter = ConsoleReporter(Console(highlight=False), verbose=args.verbose)
        reporter = console_reporter
        if interactive:
            confirm = ConsolePrompt(console_reporter, sys.stdin)
    result = run_playbook(
        playbook,
        hosts,
        options,
        registry=registry,
        reporter=reporter,
        confirm=confirm,
        approve_all=args.yes,
    )
    return result.exit_code


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = _parser().parse_args(argv)
    registry = builtin_step_types()
    handlers = {"run": command_run, "validate": command_validate, "steps": command_steps}
    try:
        return handlers[args.command](args, registry)
    except InputError as exc:
        print(f"redmedic: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("redmedic: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
