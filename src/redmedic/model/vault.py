"""Ansible Vault: values (`!vault`) and whole files encrypted with `ansible-vault`.

An existing Ansible fleet keeps its passwords in vault-encrypted `group_vars` files or in
`!vault |` values. redmedic reads them as Ansible does, or refuses with the file, the line and
the flag to pass; vault text is never parsed as if it were the plain value.

The format (Ansible's "AES256" vault, versions 1.1 and 1.2):

    $ANSIBLE_VAULT;1.1;AES256            or   $ANSIBLE_VAULT;1.2;AES256;LABEL
    <hex lines: hex of  hex(salt) "\\n" hex(hmac) "\\n" hex(ciphertext)>

Keys come from PBKDF2-HMAC-SHA256 over the password and the salt (10000 rounds, 80 bytes:
the AES key, the HMAC key, the CTR counter block); the HMAC-SHA256 of the ciphertext is
checked first (in constant time), then AES-256-CTR decrypts and PKCS7 padding is removed.
A wrong password and a tampered file look the same: the HMAC does not match.

Everything decrypted is a secret: the Vault remembers it (`secrets`) so the run's masker
hides it in every output, and the passwords themselves never leave this module.
"""

from __future__ import annotations

import binascii
import getpass
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from redmedic.errors import InputError, UsageError

HEADER = "$ANSIBLE_VAULT;"
DEFAULT_LABEL = "default"  # Ansible's vault id for unlabelled passwords and envelopes
_VERSIONS = ("1.1", "1.2")
_ITERATIONS = 10_000
_KEY = 32  # AES-256 key and HMAC key, each
_IV = 16  # one AES block: the initial counter
_DAMAGED = "restore it from version control, or encrypt it again with ansible-vault"


def is_encrypted(text: str) -> bool:
    """True when `text` is a vault envelope (`$ANSIBLE_VAULT;1.1;AES256` then hex lines)."""
    return text.lstrip().startswith(HEADER)


@dataclass(frozen=True)
class VaultPassword:
    """One password of the run with its vault id, and the flag that gave it (for messages)."""

    label: str
    secret: bytes = field(repr=False)
    source: str


@dataclass(frozen=True)
class _Envelope:
    label: str
    salt: bytes
    mac: bytes
    ciphertext: bytes


class Vault:
    """The vault passwords of one run, and every plaintext they revealed.

    Without passwords it refuses vault data with the flags to pass, like no vault at all.
    """

    def __init__(self, passwords: Sequence[VaultPassword] = ()) -> None:
        self.passwords = tuple(passwords)
        self._revealed: set[str] = set()

    @property
    def secrets(self) -> frozenset[str]:
        """What must be masked in every output: the plaintexts decrypted so far, the passwords."""
        words = {p.secret.decode("utf-8", "surrogateescape") for p in self.passwords}
        return frozenset(self._revealed | words)

    def decrypt(self, envelope: str, *, where: str, error: type[InputError] = InputError) -> str:
        """The plain text of one vault envelope; `error` (with `where`) if it cannot be opened.

        Passwords of the envelope's vault id are tried first, then all others, as Ansible
        does by default (the label is a hint, not part of what is authenticated).
        """
        if not self.passwords:
            raise refuse(where, error)
        parsed = _parse(envelope, where, error)
        ordered = sorted(self.passwords, key=lambda p: p.label != parsed.label)
        for password in ordered:
            data = _open(parsed, password.secret, where, error)
            if data is None:
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise error(
                    "the decrypted vault data is not UTF-8 text",
                    where=where,
                    hint="only text (YAML values and files) can be read from a vault",
                ) from None
            self.reveal(text)
            return text
        tried = ", ".join(dict.fromkeys(p.source for p in self.passwords))
        label = "" if parsed.label == DEFAULT_LABEL else f" (vault id '{parsed.label}')"
        raise error(
            f"wrong vault password{label}: none of the given passwords opens it",
            where=where,
            hint=f"check {tried}: it must be the password ansible-vault encrypted this with",
        )

    def reveal(self, value: object) -> None:
        """Treat `value`'s scalars (through lists and mappings) as secrets from now on.

        A whole vault-encrypted file is secret, so every value in it is; booleans and
        nulls carry nothing and would only blank out words like "True" everywhere.
        """
        if isinstance(value, dict):
            values: Iterable[object] = value.values()
        elif isinstance(value, list):
            values = value
        else:
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                text = str(value)
                for form in (text, text.strip()):
                    if form:
                        self._revealed.add(form)
            return
        for item in values:
            self.reveal(item)

    def holds(self, value: object) -> bool:
        """True when `value` (or anything inside it) carries a revealed plaintext."""
        if isinstance(value, dict):
            return any(self.holds(v) for v in value.values())
        if isinstance(value, list):
            return any(self.holds(v) for v in value)
        text = str(value)
        return any(secret in text for secret in self._revealed)


def refuse(where: str, error: type[InputError] = InputError) -> InputError:
    """The error for vault data met without a vault password: what to pass."""
    return error(
        "encrypted with Ansible Vault, and no vault password was given",
        where=where,
        hint="pass --vault-password-file FILE, --vault-id LABEL@FILE or --ask-vault-pass",
    )


def _parse(envelope: str, where: str, error: type[InputError]) -> _Envelope:
    lines = envelope.strip().splitlines()
    header = [part.strip() for part in lines[0].strip().split(";")]
    if len(header) < 3 or header[1] not in _VERSIONS:
        version = header[1] if len(header) > 1 else "?"
        raise error(
            f"unsupported Ansible Vault format {version!r} (1.1 and 1.2 are read)",
            where=where,
            hint="re-encrypt it with a current ansible-vault",
        )
    if header[2] != "AES256":
        raise error(
            f"unsupported Ansible Vault cipher {header[2]!r} (only AES256 is)",
            where=where,
            hint="re-key it with a current `ansible-vault rekey`",
        )
    label = header[3] if len(header) > 3 and header[3] else DEFAULT_LABEL
    try:
        inner = binascii.unhexlify("".join(line.strip() for line in lines[1:]))
        salt, mac, ciphertext = inner.split(b"\n", 2)
        return _Envelope(
            label, binascii.unhexlify(salt), binascii.unhexlify(mac), binascii.unhexlify(ciphertext)
        )
    except (binascii.Error, ValueError):
        raise error(
            "damaged Ansible Vault data: not the hex it should be", where=where, hint=_DAMAGED
        ) from None


def _open(
    envelope: _Envelope, password: bytes, where: str, error: type[InputError]
) -> bytes | None:
    """The padded-off plaintext, or None when the HMAC says this is not the password."""
    kdf = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=2 * _KEY + _IV, salt=envelope.salt, iterations=_ITERATIONS
    )
    keys = kdf.derive(password)
    check = hmac.HMAC(keys[_KEY : 2 * _KEY], hashes.SHA256())
    check.update(envelope.ciphertext)
    try:
        check.verify(envelope.mac)  # constant-time comparison
    except InvalidSignature:
        return None
    decryptor = Cipher(algorithms.AES(keys[:_KEY]), modes.CTR(keys[2 * _KEY :])).decryptor()
    padded = decryptor.update(envelope.ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:  # authentic but badly padded: written by something that is not Ansible
        raise error("damaged Ansible Vault data: bad padding", where=where, hint=_DAMAGED) from None


# --- where the passwords come from ------------------------------------------------------

Prompt = Callable[[str], str]


def open_vault(
    vault_ids: Sequence[str] = (),
    password_files: Sequence[str] = (),
    *,
    ask: bool = False,
    prompt: Prompt | None = None,
) -> Vault:
    """The run's Vault from the command line, in Ansible's order.

    `--vault-id [LABEL@]SOURCE` first (SOURCE `prompt` asks), then `--vault-password-file`
    (vault id "default"), then `--ask-vault-pass`. A SOURCE file is the password (stripped);
    an executable one is run and prints it, with `--vault-id LABEL` when its name ends in
    `-client`, as Ansible does. Every problem is a UsageError naming the file or the flag.
    """
    ask_user = prompt or _ask_terminal
    sources: list[tuple[str, str, str]] = []  # (label, source, flag)
    for item in vault_ids:
        label, at, source = item.partition("@")  # the first '@', as Ansible splits it
        label, source = (label, source) if at else (DEFAULT_LABEL, item)
        if not label or not source:
            raise UsageError(
                f"bad --vault-id value {item!r}", hint="use --vault-id LABEL@FILE or LABEL@prompt"
            )
        sources.append((label, source, "--vault-id"))
    sources += [(DEFAULT_LABEL, path, "--vault-password-file") for path in password_files]
    passwords = []
    for label, source, flag in sources:
        if source == "prompt":
            secret = ask_user(f"Vault password ({label}): ").encode("utf-8", "surrogateescape")
            passwords.append(_nonempty(label, secret, f"--vault-id {label}@prompt", None))
        else:
            secret = _read_password(source, label, flag)
            passwords.append(_nonempty(label, secret, f"{flag} {source}", source))
    if ask:
        secret = ask_user("Vault password: ").encode("utf-8", "surrogateescape")
        passwords.append(_nonempty(DEFAULT_LABEL, secret, "--ask-vault-pass", None))
    return Vault(passwords)


def _nonempty(label: str, secret: bytes, source: str, where: str | None) -> VaultPassword:
    if not secret:
        raise UsageError(
            f"the vault password from {source} is empty",
            where=where,
            hint="give the password ansible-vault encrypted with",
        )
    return VaultPassword(label, secret, source)


def _read_password(path: str, label: str, flag: str) -> bytes:
    """A password file's content, or an executable's output (stderr left to the user)."""
    if not os.path.exists(path):
        raise UsageError("vault password file not found", where=path, hint=f"check the {flag} path")
    if os.path.isdir(path):
        raise UsageError(
            "is a directory, not a vault password file", where=path, hint="pass a file"
        )
    if not os.access(path, os.X_OK):
        try:
            with open(path, "rb") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise UsageError(
                f"cannot read the vault password file: {exc.strerror or exc}",
                where=path,
                hint="check its permissions",
            ) from None
    client = os.path.splitext(os.path.basename(path))[0].endswith("-client")
    command = [os.path.abspath(path), *(["--vault-id", label] if client else [])]
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, check=False)
    except OSError as exc:
        raise UsageError(
            f"cannot run the vault password script: {exc.strerror or exc}",
            where=path,
            hint="give it a #! line, or remove its executable bit to read it as a plain file",
        ) from None
    if done.returncode != 0:
        unknown = client and done.returncode == 2  # Ansible's "no secret for this vault id"
        raise UsageError(
            f"the vault password script knows no password for vault id {label!r}"
            if unknown
            else f"the vault password script exited with status {done.returncode}",
            where=path,
            hint="run it by hand to see why; it must print the password and exit 0",
        )
    return done.stdout.strip(b"\r\n")


def _ask_terminal(prompt: str) -> str:
    """Ask on the terminal without echo; never from a pipe, where getpass would echo."""
    if not sys.stdin or not sys.stdin.isatty():
        raise UsageError(
            "cannot ask for the vault password: no terminal on stdin",
            hint="pass --vault-password-file FILE instead",
        )
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise UsageError(
            "no vault password was typed", hint="type it, or pass --vault-password-file"
        ) from None
