"""An existing Ansible fleet, unchanged, on a real host (loopback sshd, sudo with a password).

Given an Ansible project as teams keep it — an INI inventory in a directory, `group_vars/`
beside it with the sudo password in a file encrypted whole by the real `ansible-vault`,
`host_vars/` for one host's own values, and `group_vars/` beside the playbook — when I run
redmedic with `-i inventory/` and the vault password file, then the host is reached as the
inventory says, sudo takes the vaulted password, every layer of variables reaches the step
with Ansible's precedence, and the password shows nowhere. A second `-i` adds to the first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from redmedic.cli import main
from tests.support.loopback import LoginUser, SshdHost, SshSession

pytestmark = pytest.mark.integration

ANSIBLE_VAULT = str(Path(sys.executable).parent / "ansible-vault")

PLAYBOOK = """\
name: What the fleet says
hosts: redis
become: true
diagnose:
  - name: Who runs and what it knows
    shell: "id -un; echo role={{ role }} conf={{ redis_conf }} zone={{ zone }}"
"""


@pytest.fixture(scope="module")
def host(ssh_session: SshSession) -> SshdHost:
    return ssh_session.start_sshd(name="fleet-1")


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory,
    host: SshdHost,
    ssh_session: SshSession,
    test_user: LoginUser,
) -> Path:
    root = tmp_path_factory.mktemp("ansible-project")
    (root / "vault-pass").write_text("fleet-vault-pass\n")
    inventory = root / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "host_vars").mkdir()
    (inventory / "hosts.ini").write_text(
        f"[redis_eu]\n"
        f"{host.name} ansible_host={host.address} ansible_port={host.port}\n"
        "\n[redis:children]\nredis_eu\n"
        f"\n[all:vars]\nansible_user={test_user.name}\n"
        f"ansible_ssh_private_key_file={ssh_session.client_key}\n"
        "role=from-all-vars\nzone=from-all-vars\n"
    )
    secret_vars = inventory / "group_vars" / "redis.yml"
    secret_vars.write_text(f"ansible_become_password: {test_user.password}\nrole: from-group\n")
    subprocess.run(
        [ANSIBLE_VAULT, "encrypt", "--vault-password-file", str(root / "vault-pass"), secret_vars],
        check=True,
        capture_output=True,
    )
    (inventory / "host_vars" / f"{host.name}.yml").write_text("role: from-host-vars\n")
    playbooks = root / "playbooks"
    (playbooks / "group_vars").mkdir(parents=True)
    (playbooks / "group_vars" / "all.yml").write_text("redis_conf: /etc/redis/redis.conf\n")
    (playbooks / "fleet.yaml").write_text(PLAYBOOK)
    (root / "known_hosts").write_text(host.known_hosts_line + "\n")
    return root


def redmedic(capsys: pytest.CaptureFixture[str], project: Path, *argv: str) -> tuple[int, str, str]:
    code = main(
        [
            "run",
            str(project / "playbooks" / "fleet.yaml"),
            "--check",
            "-v",
            "--ssh-config",
            "none",
            "--known-hosts",
            str(project / "known_hosts"),
            "--vault-password-file",
            str(project / "vault-pass"),
            *argv,
        ]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_ini_inventory_directory_with_vaulted_group_vars_reaches_the_host(
    project: Path, test_user: LoginUser, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = redmedic(capsys, project, "-i", str(project / "inventory"))

    assert code == 0, out + err
    assert "root" in out  # sudo took the password from the vault-encrypted group_vars file
    # host_vars beat group_vars beat [all:vars]; the playbook's group_vars reach the step
    assert "role=from-host-vars conf=/etc/redis/redis.conf zone=from-all-vars" in out
    assert test_user.password not in out + err


def test_a_second_inventory_adds_to_the_first_and_wins_for_the_same_host(
    project: Path, host: SshdHost, capsys: pytest.CaptureFixture[str]
) -> None:
    override = project / "override.yaml"
    override.write_text(f"all:\n  hosts:\n    {host.name}:\n      zone: from-second-inventory\n")

    code, out, err = redmedic(
        capsys, project, "-i", str(project / "inventory"), "-i", str(override)
    )

    assert code == 0, out + err
    assert "zone=from-second-inventory" in out


def test_without_the_vault_password_nothing_is_contacted_and_the_file_is_named(
    project: Path, host: SshdHost
) -> None:
    logins = host.log_text().count("Accepted ")
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "redmedic"),
            "run",
            str(project / "playbooks" / "fleet.yaml"),
            "--check",
            "-i",
            str(project / "inventory"),
            "--ssh-config",
            "none",
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )

    assert done.returncode == 2
    assert "group_vars/redis.yml" in done.stderr and "--vault-password-file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert host.log_text().count("Accepted ") == logins  # nothing contacted
