"""Ansible Vault: values (`!vault`) and whole files encrypted with `ansible-vault`.

An existing Ansible fleet keeps its passwords in vault-encrypted `group_vars` files or in
`!vault |` values. redmedic reads them as Ansible does, or refuses with the file, the line and
the flag to pass; vault text is never parsed as if it were the plain value.
"""

from __future__ import annotations

from redmedic.errors import InputError

HEADER = "$ANSIBLE_VAULT;"


def is_encrypted(text: str) -> bool:
    """True when `text` is a vault envelope (`$ANSIBLE_VAULT;1.1;AES256` then hex lines)."""
    return text.lstrip().startswith(HEADER)


class Vault:
    """The vault passwords of one run (`--vault-password-file`, `--ask-vault-pass`)."""

    def decrypt(self, envelope: str, *, where: str, error: type[InputError] = InputError) -> str:
        """The plain text of one vault envelope; `error` (with `where`) if it cannot be opened."""
        raise error(
            "decrypting Ansible Vault data is not supported yet",
            where=where,
            hint="decrypt it with `ansible-vault decrypt` for now",
        )


def refuse(where: str, error: type[InputError] = InputError) -> InputError:
    """The error for vault data met without a vault password: what to pass."""
    return error(
        "encrypted with Ansible Vault, and no vault password was given",
        where=where,
        hint="pass --vault-password-file FILE or --ask-vault-pass",
    )
