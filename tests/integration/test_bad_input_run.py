"""A template that fails only on a real host fails that host with the step named, one line.

Given a loopback sshd host and a playbook whose template divides by registered output (zero
here), or whose `when:` gives text, when I run it, then the host fails naming the step, and
nothing says "internal error".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from redmedic.cli import main
from tests.support.loopback import LoginUser, SshdHost, SshSession

pytestmark = pytest.mark.integration

ADVERSARIAL = Path(__file__).parent.parent / "data" / "adversarial"


@pytest.mark.parametrize(
    ("playbook", "flags", "says"),
    [
        (
            "input-template-runtime.yaml",
            [],
            "template error in step 'Clients per slot': ZeroDivisionError",
        ),
        (
            "input-when-runtime-text.yaml",
            ["-e", "restart=false"],
            "`when:` of step 'Restart if asked' is text, not true or false",
        ),
    ],
)
def test_a_template_error_on_the_host_fails_it_naming_the_step(
    playbook: str,
    flags: list[str],
    says: str,
    tmp_path: Path,
    sshd: SshdHost,
    ssh_session: SshSession,
    test_user: LoginUser,
    known_hosts_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "all:\n  children:\n    redis:\n      hosts:\n"
        f"        {sshd.name}:\n          ansible_host: {sshd.address}\n"
        f"          ansible_port: {sshd.port}\n          ansible_user: {test_user.name}\n"
        f"          ansible_ssh_private_key_file: {ssh_session.client_key}\n"
    )
    argv = ["run", str(ADVERSARIAL / playbook), "-i", str(inventory), "--check"]
    code = main([*argv, "--known-hosts", str(known_hosts_file), *flags])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert code not in (0, 2), output
    assert says in output
    assert sshd.name in output
    assert "internal error" not in output
    assert "Traceback" not in output
    assert "restarting" not in output
