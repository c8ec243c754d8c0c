"""The one round trip that reads a host's firewall, and which backend's reading decides.

The script asks only what `Request.backend` needs, in the order `assess` judges: ufw, then
firewalld, then plain iptables, then nftables; on auto the first active one wins and the
rest are not even asked. Each command's output (stderr too) lands in its own section and
its exit code in `<name>.rc`, marked with `connection.scripts`' nonce marker, so no rule
comment or zone name a firewall prints can pose as another section.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from redmedic.connection.scripts import marker_line, split_sections
from redmedic.firewall import firewalld, iptables, nft, ufw
from redmedic.firewall.assessment import Assessment, Request, ToolError


@dataclass(frozen=True)
class Output:
    """What one command printed (stdout and stderr together) and its exit code."""

    text: str
    rc: int = 0


def _section(marker: str, name: str, command: str) -> str:
    """Shell that runs `command` into `$out` and prints it as section `name`, its exit
    code as section `name.rc`."""
    return (
        f"out=$({command} 2>&1); rc=$?\n"
        + marker_line(marker, name)
        + "printf '%s\\n' \"$out\"\n"
        + marker_line(marker, f"{name}.rc")
        + "printf '%s\\n' \"$rc\"\n"
    )


def gather_script(request: Request, marker: str) -> str:
    """One POSIX sh script: only the backends `request.backend` needs, first active wins
    on auto. `marker` comes from `connection.scripts.new_marker()`."""
    zone = f" --zone={shlex.quote(request.zone)}" if request.zone else ""
    services = (
        'grep -H "<port " /etc/firewalld/services/*.xml /usr/lib/firewalld/services/*.xml'
        f" 2>/dev/null | grep -E 'port=\"([0-9]+[-:][0-9]+|{request.port})\"'"
    )
    return (
        "LC_ALL=C; export LC_ALL; PATH=$PATH:/usr/sbin:/sbin\n"
        f"backend={shlex.quote(request.backend)}\n"
        "done=no\n"
        "if [ $backend = auto ] || [ $backend = ufw ]; then\n"
        "if command -v ufw >/dev/null 2>&1; then\n"
        + _section(marker, "ufw", "ufw status verbose")
        + 'case $out in *"Status: active"*) done=yes;; esac\n'
        "fi\n"
        "fi\n"
        "if [ $done = no ] && { [ $backend = auto ] || [ $backend = firewalld ]; }; then\n"
        "if command -v firewall-cmd >/dev/null 2>&1; then\n"
        + _section(marker, "firewalld-state", "firewall-cmd --state")
        + 'if [ "$out" = running ]; then\n'
        "done=yes\n"
        + _section(marker, "firewalld-runtime", f"firewall-cmd{zone} --list-all")
        + _section(marker, "firewalld-permanent", f"firewall-cmd --permanent{zone} --list-all")
        # /etc first: a service defined there overrides the packaged one.
        + _section(marker, "firewalld-services", services)
        + "fi\n"
        "fi\n"
        "fi\n"
        "if [ $done = no ] && { [ $backend = auto ] || [ $backend = iptables ]; }; then\n"
        "if command -v iptables >/dev/null 2>&1; then\n"
        + _section(marker, "iptables", "iptables -S")
        + "fi\n"
        "if [ $backend = auto ] && command -v nft >/dev/null 2>&1; then\n"
        + _section(marker, "nft", "nft list ruleset")
        + "fi\n"
        "fi\n"
        "exit 0\n"
    )


def read_gathered(output: str, marker: str) -> dict[str, Output]:
    """The script's output as {section: Output}; a missing exit code counts as 0."""
    sections = split_sections(output, marker)
    rc_of = {
        name.removesuffix(".rc"): text.strip()
        for name, text in sections.items()
        if name.endswith(".rc")
    }
    return {
        name: Output(text, int(rc_of[name]) if rc_of.get(name, "").isdigit() else 0)
        for name, text in sections.items()
        if not name.endswith(".rc")
    }


_NEEDS = {"ufw": "ufw", "firewalld": "firewalld-state", "iptables": "iptables"}


def assess(request: Request, gathered: Mapping[str, Output]) -> Assessment:
    """The verdict, findings and openings of the backend that decides: pure.

    Raises ToolError when a forced backend is not installed or a firewall tool failed.
    """
    needed = _NEEDS.get(request.backend)
    if needed is not None and needed not in gathered:
        raise ToolError(f"{request.backend} is not installed on this host — use `backend: auto`")
    inactive = ""  # an installed firewall that is off: named in the facts, never blocking
    if "ufw" in gathered:
        _check(gathered["ufw"], "ufw status verbose")
        status = ufw.parse_ufw_status(gathered["ufw"].text)
        if status.active or request.backend == "ufw":
            return ufw.assess(request, status)
        inactive = "ufw"
    if "firewalld-state" in gathered:
        if gathered["firewalld-state"].text.strip() == "running":
            runtime = gathered.get("firewalld-runtime", Output(""))
            _check(runtime, "firewall-cmd --list-all")
            return firewalld.assess(
                request,
                runtime.text,
                gathered.get("firewalld-permanent", Output("")).text,
                gathered.get("firewalld-services", Output("")).text,
            )
        inactive = inactive or "firewalld"
    if "iptables" in gathered:
        _check(gathered["iptables"], "iptables -S")
        rules = iptables.parse_iptables(gathered["iptables"].text)
        if rules.active or request.backend == "iptables":
            return iptables.assess(request, rules)
    if "nft" in gathered and gathered["nft"].rc == 0:
        # iptables-nft's own tables were judged through `iptables -S` just above.
        skip = {"ip filter", "ip6 filter"} if "iptables" in gathered else set()
        chains = [c for c in nft.parse_nft(gathered["nft"].text) if c.table not in skip]
        if nft.nft_active(chains):
            return nft.assess(request, chains)
    return Assessment(inactive or "none", False, True)


def _check(output: Output, command: str) -> None:
    if output.rc != 0:
        raise ToolError(f"`{command}` failed: {output.text.strip()}")
