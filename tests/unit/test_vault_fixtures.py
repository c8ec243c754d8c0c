"""redmedic and the real ansible-vault agree: on the committed fixtures (made by
tests/data/vault/make-fixtures.sh), and on data ansible-vault encrypts now, at test time.

ansible-core is in the test extras only; redmedic never imports it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from redmedic.model.vault import open_vault
from redmedic.model.yamlsource import load_yaml, parse_yaml

DATA = Path(__file__).resolve().parents[1] / "data" / "vault"
ANSIBLE_VAULT = str(Path(sys.executable).parent / "ansible-vault")
PASSWORDS = [f"default@{DATA / 'password.txt'}", f"prod@{DATA / 'prod-password.txt'}"]
IDS = [arg for vault_id in PASSWORDS for arg in ("--vault-id", vault_id)]  # for ansible-vault


def ansible_vault(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [ANSIBLE_VAULT, *args], input=stdin, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class _RawVault(yaml.SafeLoader):
    """Plain PyYAML that keeps each `!vault` value's envelope text, to hand to ansible-vault."""


_RawVault.add_constructor("!vault", lambda loader, node: node.value)


@pytest.mark.parametrize("name", ["group_vars/redis.yaml", "inventory.yaml"])
def test_ansible_vault_view_shows_what_redmedic_decrypts(name: str) -> None:
    vault = open_vault(PASSWORDS)
    shown = ansible_vault("view", *IDS, str(DATA / name))

    assert load_yaml(DATA / name, vault=vault).data == parse_yaml(shown).data
    assert shown in vault.secrets  # the whole plaintext, as ansible-vault shows it


def test_each_committed_vault_value_is_what_ansible_vault_decrypts(tmp_path: Path) -> None:
    vault = open_vault(PASSWORDS)
    values = load_yaml(DATA / "values.yaml", vault=vault).data
    envelopes = yaml.load((DATA / "values.yaml").read_text(), Loader=_RawVault)
    for name in ("redis_password", "cluster_key"):
        envelope = tmp_path / name
        envelope.write_text(envelopes[name])
        assert ansible_vault("decrypt", *IDS, "--output", "-", str(envelope)) == values[name]


def test_a_value_ansible_vault_encrypts_now_reads_back_with_its_vault_id(tmp_path: Path) -> None:
    password = tmp_path / "ops-pass"
    password.write_text("today's ops password\n")
    secret = "ünïcode pass\nwith a second line"
    printed = ansible_vault(
        "encrypt_string",
        "--vault-id",
        f"ops@{password}",
        "--encrypt-vault-id",
        "ops",
        "--stdin-name",
        "cache_auth",
        stdin=secret,
    )
    assert "$ANSIBLE_VAULT;1.2;AES256;ops" in printed
    vault = open_vault([f"ops@{password}"])

    assert parse_yaml(printed, "vars.yaml", vault=vault).data == {"cache_auth": secret}


def test_a_file_ansible_vault_encrypts_now_reads_back(tmp_path: Path) -> None:
    plain = "redis_password: fresh-42\nports: [6379, 6380]\n"
    path = tmp_path / "vars.yaml"
    path.write_text(plain)
    ansible_vault("encrypt", "--vault-password-file", str(DATA / "password.txt"), str(path))
    assert path.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256\n")
    vault = open_vault([], [str(DATA / "password.txt")])

    assert load_yaml(path, vault=vault).data == {
        "redis_password": "fresh-42",
        "ports": [6379, 6380],
    }
    assert {"fresh-42", "6379"} <= vault.secrets  # every value of an encrypted file is secret
