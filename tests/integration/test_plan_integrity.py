"""A reviewed plan on a real sshd host: only what was reviewed can run.

User story: I make a plan against a loopback sshd host and review it with `redmedic show`.
When the file is edited afterwards — a command swapped, the host renamed to `all` — then
`apply` refuses with one line (exit 2) and nothing runs on the host; applied untouched, it
runs exactly the command `show` printed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from redmedic.cli import main
from redmedic.safety.planfile import plan_key, signature
from tests.support.loopback import LoginUser, SshdHost, SshSession

pytestmark = pytest.mark.integration


@pytest.fixture
def out(test_user: LoginUser) -> Iterator[Path]:
    """A directory the login user may write to: where the step's command leaves its mark."""
    path = test_user.home / f"t-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    os.chown(path, test_user.uid, test_user.gid)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def planned(
    tmp_path: Path,
    out: Path,
    sshd: SshdHost,
    known_hosts_file: Path,
    ssh_session: SshSession,
    test_user: LoginUser,
    capsys: pytest.CaptureFixture[str],
) -> tuple[Path, list[str]]:
    """A plan that touches a file on the host, and the options to apply it."""
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(
        f"name: Touch\nhosts: all\nfix:\n  - name: Touch\n    shell: touch {out}/made\n"
    )
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
        f"all:\n  hosts:\n    {sshd.name}:\n      ansible_host: {sshd.address}\n"
        f"      ansible_port: {sshd.port}\n      ansible_user: {test_user.name}\n"
        f"      ansible_ssh_private_key_file: {ssh_session.client_key}\n"
        f"  children:\n    redis:\n      hosts:\n        {sshd.name}:\n"
    )
    plan = tmp_path / "plan.json"
    common = ["--known-hosts", str(known_hosts_file), "--output", "json"]
    assert main(["run", str(playbook), "-i", str(inventory), "-C", "--plan-out", str(plan),
                 *common]) == 0  # fmt: skip
    capsys.readouterr()
    return plan, ["--yes", "--audit-log", str(tmp_path / "audit"), *common]


def edit(plan: Path, change: str, *, resign: bool = False) -> None:
    data = json.loads(plan.read_text())
    text = json.dumps(data).replace(change.split("=>")[0], change.split("=>")[1])
    data = json.loads(text)
    if resign:  # as if the signature were not there: the host set is checked on its own
        data["integrity"] = signature(data, plan_key())
    plan.write_text(json.dumps(data, indent=2))


def test_show_prints_what_apply_runs_and_apply_runs_it(
    planned: tuple[Path, list[str]], out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan, options = planned
    assert main(["show", str(plan)]) == 0
    assert f"  fix step 1: Touch\n    run: touch {out}/made\n" in capsys.readouterr().out
    assert main(["apply", str(plan), *options]) == 0
    assert (out / "made").exists()


def test_an_edited_command_is_refused_and_nothing_runs(
    planned: tuple[Path, list[str]], out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the reviewed plan, when someone swaps its command, then apply refuses it whole
    plan, options = planned
    edit(plan, f"touch {out}/made=>touch {out}/evil")
    assert main(["apply", str(plan), *options]) == 2
    err = capsys.readouterr().err
    assert "the plan file was changed after it was made" in err and "Traceback" not in err
    assert not (out / "evil").exists() and not (out / "made").exists()
    assert not (plan.parent / "audit").exists()  # refused before any host was contacted


@pytest.mark.parametrize("renamed", ["all", "redis"])
def test_a_host_renamed_to_a_pattern_or_group_is_refused(
    renamed: str,
    planned: tuple[Path, list[str]],
    sshd: SshdHost,
    out: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan, options = planned
    edit(plan, f'"{sshd.name}"=>"{renamed}"', resign=True)
    assert main(["apply", str(plan), *options]) == 2
    err = capsys.readouterr().err
    assert f"the plan's host '{renamed}' is not a host of the inventory" in err
    assert "never a pattern or a group" in err
    assert not (out / "made").exists()
