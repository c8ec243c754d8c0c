"""Ansible Vault: given values and files that the real ansible-vault encrypted (tests/data/vault),
when redmedic loads them with the passwords a user passes, then it reads what Ansible reads —
and a wrong password, damaged data or no password is a one-line error saying where and what to do.
"""

from __future__ import annotations

import binascii
import itertools
import stat
from pathlib import Path

import pytest

from redmedic.cli import main
from redmedic.errors import InputError, InventoryError, UsageError
from redmedic.model.vault import Vault, VaultPassword, open_vault
from redmedic.model.yamlsource import load_yaml, parse_yaml

DATA = Path(__file__).resolve().parents[1] / "data" / "vault"
DEFAULT_PW = DATA / "password.txt"
PROD_PW = DATA / "prod-password.txt"


def both_passwords() -> Vault:
    return open_vault([f"prod@{PROD_PW}"], [str(DEFAULT_PW)])


def envelope_of(name: str) -> str:
    """The vault text of one `!vault` value of values.yaml, as ansible-vault printed it."""
    text = (DATA / "values.yaml").read_text()
    block = text.split(f"{name}: !vault |\n", 1)[1].split("\n")
    lines = itertools.takewhile(lambda line: line.startswith(" "), block)
    return "".join(line.strip() + "\n" for line in lines)


def test_vault_values_of_both_formats_read_as_their_plain_text() -> None:
    doc = load_yaml(DATA / "values.yaml", vault=both_passwords())

    assert doc.data == load_yaml(DATA / "plain" / "values.yaml").data


def test_whole_encrypted_files_read_as_the_file_they_were() -> None:
    vault = both_passwords()
    for encrypted, plain in (
        ("group_vars/redis.yaml", "group_vars-redis.yaml"),  # format 1.1, vault id default
        ("inventory.yaml", "inventory.yaml"),  # format 1.2, vault id prod
    ):
        doc = load_yaml(DATA / encrypted, vault=vault)
        assert doc.data == load_yaml(DATA / "plain" / plain).data


def test_a_labelled_envelope_still_opens_with_a_password_given_without_its_label() -> None:
    # As Ansible: the envelope's vault id picks which password to try first, not the only one.
    vault = open_vault([], [str(DEFAULT_PW), str(PROD_PW)])

    assert load_yaml(DATA / "inventory.yaml", vault=vault).data["all"]["children"]


def test_everything_decrypted_becomes_a_secret_to_mask() -> None:
    vault = both_passwords()
    load_yaml(DATA / "values.yaml", vault=vault)
    load_yaml(DATA / "group_vars" / "redis.yaml", vault=vault)

    assert {"r3dis-S3cret!", "k-9f2c", "sudo-Fixture-7", "pass phrase with spaces"} <= vault.secrets
    assert {"fixture-vault-pass", "fixture-prod-pass"} <= vault.secrets  # the passwords too
    assert "6379" not in vault.secrets  # a plain value beside !vault ones stays plain
    assert vault.holds({"auth": ["x", "r3dis-S3cret!"]}) and not vault.holds({"port": 6379})


def test_without_a_password_a_vault_value_is_refused_at_its_line_with_the_flags_to_pass() -> None:
    for vault in (None, Vault()):
        with pytest.raises(InventoryError) as caught:
            load_yaml(DATA / "values.yaml", error=InventoryError, vault=vault)
        assert caught.value.where == f"{DATA / 'values.yaml'}:2:17"
        assert "--vault-password-file" in str(caught.value)
        assert "--ask-vault-pass" in str(caught.value)


def test_without_a_password_an_encrypted_file_is_refused_naming_the_file() -> None:
    with pytest.raises(InputError) as caught:
        load_yaml(DATA / "inventory.yaml")
    assert caught.value.where == str(DATA / "inventory.yaml")


def test_a_wrong_password_names_the_value_and_the_password_file_but_no_secret() -> None:
    vault = open_vault([], [str(PROD_PW)])
    with pytest.raises(UsageError) as caught:
        load_yaml(DATA / "values.yaml", error=UsageError, vault=vault)

    message = str(caught.value)
    assert caught.value.where == f"{DATA / 'values.yaml'}:2:17"
    assert "wrong vault password" in message
    assert f"check --vault-password-file {PROD_PW}" in message
    assert "fixture-prod-pass" not in message and "r3dis" not in message


def test_a_wrong_password_for_a_labelled_envelope_names_its_vault_id() -> None:
    vault = open_vault([], [str(DEFAULT_PW)])
    with pytest.raises(InputError, match=r"wrong vault password \(vault id 'prod'\)"):
        load_yaml(DATA / "inventory.yaml", vault=vault)


def tampered(envelope: str, part: int) -> str:
    """`envelope` with one byte of its salt (0), HMAC (1) or ciphertext (2) changed."""
    header, *body = envelope.splitlines()
    pieces = binascii.unhexlify("".join(body)).split(b"\n", 2)
    raw = bytearray(binascii.unhexlify(pieces[part]))
    raw[0] ^= 1
    pieces[part] = binascii.hexlify(bytes(raw))
    return header + "\n" + binascii.hexlify(b"\n".join(pieces)).decode() + "\n"


@pytest.mark.parametrize("part", [0, 1, 2], ids=["salt", "hmac", "ciphertext"])
def test_tampered_vault_data_is_refused_like_a_wrong_password(part: int) -> None:
    envelope = tampered(envelope_of("redis_password"), part)
    with pytest.raises(InputError, match="wrong vault password"):
        both_passwords().decrypt(envelope, where="x.yaml:3")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda e: e.replace("AES256", "AES"), "unsupported Ansible Vault cipher 'AES'"),
        (lambda e: e.replace(";1.1;", ";1.0;"), "unsupported Ansible Vault format '1.0'"),
        (lambda e: e[:40] + "zz" + e[42:], "damaged Ansible Vault data"),
        (lambda e: e.splitlines()[0] + "\n6162\n", "damaged Ansible Vault data"),
    ],
    ids=["unknown cipher", "unknown version", "bad hex", "truncated"],
)
def test_unreadable_vault_data_says_what_is_wrong_and_where(change: object, problem: str) -> None:
    envelope = change(envelope_of("redis_password"))  # type: ignore[operator]
    with pytest.raises(InputError, match=problem) as caught:
        both_passwords().decrypt(envelope, where="group_vars/all.yaml:4:7")
    assert caught.value.where == "group_vars/all.yaml:4:7"


def test_a_vault_tag_on_something_that_is_not_vault_text_is_refused_at_its_line() -> None:
    for text in ("pw: !vault not-vault-text\n", "pw: !vault {a: 1}\n"):
        with pytest.raises(InputError, match="ansible-vault encrypt_string") as caught:
            parse_yaml(text, "vars.yaml", vault=both_passwords())
        assert caught.value.where == "vars.yaml:1:5"


def test_other_tags_are_still_refused_as_before() -> None:
    with pytest.raises(InputError, match="could not determine a constructor"):
        parse_yaml("pw: !secret x\n", "vars.yaml", vault=both_passwords())


def test_a_vault_value_decrypts_inside_any_yaml_text() -> None:
    text = "db:\n  password: !vault |\n" + "".join(
        f"    {line}\n" for line in envelope_of("redis_password").splitlines()
    )
    assert parse_yaml(text, vault=both_passwords()).data == {"db": {"password": "r3dis-S3cret!"}}


# --- where passwords come from ----------------------------------------------------------


def only_password(vault: Vault) -> VaultPassword:
    assert len(vault.passwords) == 1
    return vault.passwords[0]


def test_a_password_file_is_read_stripped(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_bytes(b"  two words \r\n\n")

    password = only_password(open_vault([], [str(path)]))
    assert (password.label, password.secret) == ("default", b"two words")
    assert "two words" not in repr(password)


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_an_executable_password_file_is_run_and_prints_the_password(tmp_path: Path) -> None:
    path = script(tmp_path, "pass.sh", "echo from-script\n")

    assert only_password(open_vault([f"ops@{path}"])).secret == b"from-script"


def test_a_client_script_is_asked_for_its_vault_id_as_ansible_asks_it(tmp_path: Path) -> None:
    path = script(tmp_path, "keyring-client.sh", 'echo "for $1 $2"\n')

    assert only_password(open_vault([f"prod@{path}"])).secret == b"for --vault-id prod"


def test_a_failing_password_script_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    path = script(tmp_path, "pass.sh", "exit 3\n")
    with pytest.raises(UsageError, match="exited with status 3") as caught:
        open_vault([], [str(path)])
    assert caught.value.where == str(path)

    client = script(tmp_path, "store-client", "exit 2\n")
    with pytest.raises(UsageError, match="knows no password for vault id 'prod'"):
        open_vault([f"prod@{client}"])


def test_missing_empty_and_malformed_password_sources_are_usage_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(UsageError, match="not found") as caught:
        open_vault([], [str(tmp_path / "nope")])
    assert caught.value.where == str(tmp_path / "nope")
    with pytest.raises(UsageError, match="is empty"):
        open_vault([], [str(empty)])
    with pytest.raises(UsageError, match="is a directory"):
        open_vault([f"x@{tmp_path}"])
    for bad in ("@file", "prod@"):
        with pytest.raises(UsageError, match="bad --vault-id"):
            open_vault([bad])


def test_prompts_ask_in_ansible_order_with_ansibles_wording(tmp_path: Path) -> None:
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return f"typed-{len(asked)}"

    vault = open_vault(["prod@prompt"], [str(DEFAULT_PW)], ask=True, prompt=prompt)

    assert asked == ["Vault password (prod): ", "Vault password: "]
    assert [(p.label, p.source) for p in vault.passwords] == [
        ("prod", "--vault-id prod@prompt"),
        ("default", f"--vault-password-file {DEFAULT_PW}"),
        ("default", "--ask-vault-pass"),
    ]
    assert {"typed-1", "typed-2"} <= vault.secrets


def test_asking_without_a_terminal_is_refused_instead_of_reading_a_pipe() -> None:
    # pytest's stdin is not a terminal, as in cron or CI.
    with pytest.raises(UsageError, match="no terminal"):
        open_vault(ask=True)


def test_the_cli_takes_ansible_playbooks_vault_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    playbook = tmp_path / "pb.yaml"
    vaulted = "".join(f"    {line}\n" for line in envelope_of("redis_password").splitlines())
    playbook.write_text(
        "name: p\nhosts: all\nvars:\n  auth: !vault |\n" + vaulted
        + "diagnose:\n  - name: s\n    shell: echo {{ auth | length }}\n"
    )  # fmt: skip

    assert main(["validate", str(playbook), "--vault-pass-file", str(DEFAULT_PW)]) == 0
    assert main(["validate", str(playbook), "--vault-id", f"default@{DEFAULT_PW}"]) == 0
    assert main(["validate", str(playbook)]) == 2
    assert f"{playbook}:4:9: encrypted with Ansible Vault" in capsys.readouterr().err
    assert main(["validate", str(playbook), "-J"]) == 2
    assert "cannot ask for the vault password: no terminal" in capsys.readouterr().err
