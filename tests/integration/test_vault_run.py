"""Vaulted secrets on a real host (loopback sshd, sudo with a password).

Given an inventory whose sudo password and Redis secrets are `!vault` values, a playbook
whose `vars:` hold one more, and an inventory kept whole in the vault — all encrypted by the
real ansible-vault — when I run redmedic with the vault passwords, then sudo works with the
decrypted password, the steps see the plain values, and no output (text, -v, JSON, plan file,
audit log) shows any of them; without the password, or with a wrong one, nothing is contacted
and the error says where and what to pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from redmedic.cli import main
from tests.support.loopback import LoginUser, SshdHost, SshSession

pytestmark = pytest.mark.integration

ANSIBLE_VAULT = str(Path(sys.executable).parent / "ansible-vault")
REDIS_PASSWORD = "vaulted-R3dis-pw"
CLUSTER_KEY = "ck-7f3a91"  # a name that does not look secret: masked because it was vaulted
GREETING = "hello-from-the-vault"
CACHE_AUTH = "cache-auth-4411"  # from `-e @file`, under a name that does not look secret

PLAYBOOK = """\
name: Vaulted secrets
hosts: redis
become: true
vars:
  greeting: VAULTED_GREETING
diagnose:
  - name: Who runs and what it knows
    shell: id -un && echo "auth={{ redis_password }} key={{ cluster_key }} {{ greeting }}"
fix:
  - name: Record the cluster key
    file_line: {path: "{{ conf }}", regexp: '^token ', line: 'token {{ cluster_key }}'}
"""


INVENTORY = """\
all:
  vars:
    ansible_user: {user}
    ansible_ssh_private_key_file: {key}
    ansible_become_password: {become}
  children:
    redis:
      hosts:
        {host.name}:
          ansible_host: {host.address}
          ansible_port: {host.port}
          conf: {conf}
          redis_password: {redis_password}
          cluster_key: {cluster_key}
"""


def encrypt_string(value: str, *vault_args: str) -> str:
    """`!vault |` and its envelope lines, as `ansible-vault encrypt_string` prints them."""
    done = subprocess.run(
        [ANSIBLE_VAULT, "encrypt_string", *vault_args, value],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def nested(vaulted: str, indent: int) -> str:
    """The `!vault |` block re-indented to sit under a key indented by `indent` spaces."""
    tag, *lines = vaulted.splitlines()
    return tag + "".join(f"\n{' ' * (indent + 2)}{line.strip()}" for line in lines)


@dataclass
class Site:
    dir: Path
    playbook: Path
    inventory: Path
    known_hosts: Path
    conf: Path
    default_pw: Path
    prod_pw: Path
    become_password: str

    def vault_flags(self) -> list[str]:
        return ["--vault-password-file", str(self.default_pw), "--vault-id", f"prod@{self.prod_pw}"]


@pytest.fixture(scope="module")
def host(ssh_session: SshSession) -> SshdHost:
    return ssh_session.start_sshd(name="vault-1")


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    host: SshdHost,
    ssh_session: SshSession,
    test_user: LoginUser,
) -> Site:
    root = tmp_path_factory.mktemp("vault-site")
    default_pw, prod_pw = root / "vault-pass", root / "prod-pass"
    default_pw.write_text("site-default-pass\n")
    prod_pw.write_text("site-prod-pass\n")
    default = ("--vault-password-file", str(default_pw))
    prod = ("--vault-id", f"prod@{prod_pw}", "--encrypt-vault-id", "prod")
    conf = root / "redis.conf"
    conf.write_text("port 6379\n")
    inventory = root / "inventory.yaml"
    inventory.write_text(
        INVENTORY.format(
            user=test_user.name,
            key=ssh_session.client_key,
            become=nested(encrypt_string(test_user.password, *default), 4),
            host=host,
            conf=conf,
            redis_password=nested(encrypt_string(REDIS_PASSWORD, *default), 10),
            cluster_key=nested(encrypt_string(CLUSTER_KEY, *prod), 10),
        )
    )
    playbook = root / "vaulted.yaml"
    playbook.write_text(
        PLAYBOOK.replace("VAULTED_GREETING", nested(encrypt_string(GREETING, *prod), 2))
    )
    known_hosts = root / "known_hosts"
    known_hosts.write_text(host.known_hosts_line + "\n")
    return Site(
        root, playbook, inventory, known_hosts, conf, default_pw, prod_pw, test_user.password
    )


def redmedic(
    capsys: pytest.CaptureFixture[str], *argv: str, inventory: Path, site: Site
) -> tuple[int, str, str]:
    code = main(
        [
            *argv,
            "-i",
            str(inventory),
            "--known-hosts",
            str(site.known_hosts),
            "--connect-timeout",
            "5",
        ]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def secrets_of(site: Site) -> list[str]:
    passwords = [site.default_pw.read_text().strip(), site.prod_pw.read_text().strip()]
    return [REDIS_PASSWORD, CLUSTER_KEY, GREETING, CACHE_AUTH, site.become_password, *passwords]


def assert_nothing_shows(site: Site, *texts: str) -> None:
    for text in texts:
        for secret in secrets_of(site):
            assert secret not in text


def test_a_dry_run_uses_the_vaulted_sudo_password_and_shows_no_vaulted_value(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", str(site.playbook), "--check", *site.vault_flags()]

    code, out, err = redmedic(capsys, *argv, "-v", inventory=site.inventory, site=site)
    assert code == 0, err
    assert "auth=******** key=******** ********" in out  # the step ran and saw the values
    assert "root" in out  # sudo took the vaulted password
    assert "+token ********" in out  # the planned diff
    assert_nothing_shows(site, out, err)

    code, out, err = redmedic(
        capsys, *argv, "--output", "json", inventory=site.inventory, site=site
    )
    assert code == 0, err
    outputs = [json.loads(line).get("output", "") for line in out.splitlines()]
    assert "root\nauth=******** key=******** ********" in outputs
    assert_nothing_shows(site, out, err)


def test_a_reviewed_plan_applies_and_rolls_back_the_vaulted_value_yet_no_file_shows_it(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    plan, audit = site.dir / "plan.json", site.dir / "audit.jsonl"
    extra = site.dir / "extra.yaml"
    extra.write_text(
        "cache_auth: " + encrypt_string(CACHE_AUTH, "--vault-password-file", str(site.default_pw))
    )
    code, out, err = redmedic(
        capsys,
        "run",
        str(site.playbook),
        "--check",
        "--plan-out",
        str(plan),
        "-e",
        f"@{extra}",
        *site.vault_flags(),
        inventory=site.inventory,
        site=site,
    )
    assert code == 0, err
    assert_nothing_shows(site, out, err, plan.read_text())

    changing = ("--yes", "--audit-log", str(audit), *site.vault_flags())
    code, out, err = redmedic(
        capsys, "apply", str(plan), *changing, inventory=site.inventory, site=site
    )
    assert code == 0, err + out
    assert site.conf.read_text() == f"port 6379\ntoken {CLUSTER_KEY}\n"  # unsealed on the host
    assert_nothing_shows(site, out, err, audit.read_text())

    run_id = json.loads(audit.read_text().splitlines()[0])["run_id"]
    code, out, err = redmedic(
        capsys, "rollback", run_id, *changing, inventory=site.inventory, site=site
    )
    assert code == 0, err + out
    assert site.conf.read_text() == "port 6379\n"
    assert_nothing_shows(site, out, err, audit.read_text())


def test_an_inventory_kept_whole_in_the_vault_is_read_with_its_vault_id(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    encrypted = site.dir / "inventory.vault.yaml"
    encrypted.write_text(site.inventory.read_text())
    prod_id = ("--vault-id", f"prod@{site.prod_pw}")
    subprocess.run(
        [ANSIBLE_VAULT, "encrypt", "--encrypt-vault-id", "prod", str(encrypted), *prod_id],
        capture_output=True,
        check=True,
    )
    code, out, err = redmedic(
        capsys,
        "run",
        str(site.playbook),
        "--check",
        "--output",
        "json",
        *site.vault_flags(),
        inventory=encrypted,
        site=site,
    )
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["hosts"]["vault-1"]["status"] == "would_change"
    assert_nothing_shows(site, out, err)


def test_without_the_vault_password_nothing_is_contacted_and_the_value_is_named(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = redmedic(
        capsys, "run", str(site.playbook), "--check", inventory=site.inventory, site=site
    )
    assert code == 2
    assert out == ""
    assert err.startswith(f"redmedic: error: {site.playbook}:5:13: encrypted with Ansible Vault")
    assert "--vault-password-file" in err


def test_a_wrong_vault_password_is_one_line_naming_where_and_the_flag(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = site.dir / "wrong-pass"
    wrong.write_text("not-it\n")
    code = main(["validate", str(site.playbook), "--vault-password-file", str(wrong)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1
    assert f"{site.playbook}:5:13: wrong vault password (vault id 'prod')" in err
    assert f"check --vault-password-file {wrong}" in err
    assert_nothing_shows(site, out, err)
