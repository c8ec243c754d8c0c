"""Logging into one SSH server with the keys OpenSSH would offer, in OpenSSH's order.

Why its own module: which keys are offered is the user's ssh config (every IdentityFile,
IdentitiesOnly), the inventory (`ansible_ssh_private_key_file`, `ansible_password`) and the
agent together, and the rules are OpenSSH's, not paramiko's (`SSHClient` would also try
every key it finds). The order:

1. the inventory's key file — it must exist: a typo there is an error, not a silent skip;
2. every IdentityFile of the ssh config, in order; missing ones are skipped as `ssh` does;
3. the agent's keys — with IdentitiesOnly only those whose public key is one of the files
   above (the file itself may be encrypted: its `.pub` beside it is enough to match);
4. the default `~/.ssh/id_*` keys, only when no key file is configured at all (these *are*
   OpenSSH's configured files then, so IdentitiesOnly keeps them);
5. the password.

Errors list what was tried (file names, "ssh-agent", "password"), never a secret.
"""

from __future__ import annotations

import getpass
import os
from contextlib import suppress
from dataclasses import dataclass

import paramiko
from paramiko.pkey import PublicBlob, UnknownKeyType

from redmedic.connection.eagerauth import auth_publickey
from redmedic.errors import AuthError, ConnectError
from redmedic.model.inventory import Host

_DEFAULT_KEYS = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
#: What paramiko and the socket layer raise once a transport exists.
SSH_ERRORS = (paramiko.SSHException, EOFError, OSError)
_KEY_ERRORS = (*SSH_ERRORS, ValueError, UnknownKeyType)


def reason(exc: BaseException) -> str:
    """A foreign exception as the few words of a one-line message."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text or type(exc).__name__


@dataclass
class _Offer:
    """The keys to offer, in order, and the public keys IdentitiesOnly lets the agent use."""

    keys: list[tuple[str, paramiko.PKey]]
    listed: set[bytes]
    configured: bool  # a key file was named (inventory or IdentityFile): no default keys

    def add_file(self, host: Host, path: str, *, explicit: bool) -> None:
        """Offer the key at `path`; an explicit one must load, an IdentityFile may be absent."""
        self.configured = True
        expanded = os.path.expanduser(path)
        if not explicit and not os.path.isfile(expanded):
            return
        public = _public_blob(expanded)
        if public is not None:
            self.listed.add(public)
        key = _load_key(host, path) if explicit else _try_key(host, expanded)
        if key is not None and all(key.asbytes() != k.asbytes() for _, k in self.keys):
            self.listed.add(key.asbytes())
            self.keys.append((f"key {path}", key))

    def add_agent_keys(self, agent: paramiko.Agent, identities_only: bool) -> None:
        offered = {k.asbytes() for _, k in self.keys}
        for key in agent.get_keys():
            blob = key.asbytes()
            if blob in offered or (identities_only and blob not in self.listed):
                continue
            offered.add(blob)
            self.keys.append(("ssh-agent", key))


def authenticate(transport: paramiko.Transport, host: Host) -> None:
    """Offer the keys, then the password; AuthError if none works (see the module doc)."""
    user = host.user or getpass.getuser()
    offer = _Offer([], set(), configured=False)
    if host.private_key_file:
        offer.add_file(host, host.private_key_file, explicit=True)
    for path in host.ssh.identity_files:
        if host.private_key_file is None or os.path.expanduser(path) != os.path.expanduser(
            host.private_key_file
        ):
            offer.add_file(host, path, explicit=False)
    agent: paramiko.Agent | None = None
    try:
        if os.environ.get("SSH_AUTH_SOCK"):
            try:
                agent = paramiko.Agent()
                offer.add_agent_keys(agent, host.ssh.identities_only)
            except SSH_ERRORS:
                agent = None
        if not offer.configured:
            for name in _DEFAULT_KEYS:
                offer.add_file(host, name, explicit=False)
        tried = _try_all(transport, host, user, offer.keys)
    finally:
        if agent is not None:
            agent.close()
    if transport.is_authenticated():
        return
    if not tried:
        raise AuthError(
            host.name,
            f"no credentials to log in as {user} — set ansible_ssh_private_key_file or "
            "ansible_password, an IdentityFile in the ssh config, or load a key into ssh-agent",
        )
    raise AuthError(
        host.name,
        f"SSH login as {user} was refused (tried {', '.join(tried)}) — check the user, "
        "that the key is in the user's authorized_keys, or the password",
    )


def _try_all(
    transport: paramiko.Transport, host: Host, user: str, keys: list[tuple[str, paramiko.PKey]]
) -> list[str]:
    """Offer each key, then the password, until one works; return what was tried."""
    tried: list[str] = []
    for what, key in keys:
        if what not in tried:
            tried.append(what)
        try:
            auth_publickey(transport, user, key)
        except paramiko.BadAuthenticationType as exc:
            if "publickey" not in exc.allowed_types:
                break
            continue
        except paramiko.AuthenticationException:
            continue
        except SSH_ERRORS as exc:
            raise _auth_transport_error(host, exc) from None
        if transport.is_authenticated():
            return tried
    if host.password is not None:
        tried.append("password")
        try:
            transport.auth_password(user, host.password)
        except paramiko.AuthenticationException:
            pass
        except SSH_ERRORS as exc:
            raise _auth_transport_error(host, exc) from None
    return tried


def _public_blob(path: str) -> bytes | None:
    """The public key in `path.pub`, if there is one (it matches agent keys)."""
    try:
        with open(path + ".pub", encoding="utf-8") as handle:
            fields = handle.read().split()
        blob: bytes = PublicBlob.from_string(" ".join(fields[:2])).key_blob
        return blob
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


def _read_key(host: Host, path: str) -> paramiko.PKey:
    """Load a key file (any type); an encrypted one is tried with the login password."""
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        if host.password is not None:
            with suppress(*_KEY_ERRORS):
                return paramiko.PKey.from_path(path, password=host.password)
        raise


def _try_key(host: Host, path: str) -> paramiko.PKey | None:
    """An IdentityFile from the ssh config: used if it loads, skipped (as by ssh) if not."""
    try:
        return _read_key(host, path)
    except _KEY_ERRORS:
        return None


def _load_key(host: Host, path: str) -> paramiko.PKey:
    """The inventory's key file: it must load, or the host fails saying why."""
    try:
        return _read_key(host, os.path.expanduser(path))
    except paramiko.PasswordRequiredException:
        raise AuthError(
            host.name, f"private key {path} is encrypted — load it into ssh-agent first"
        ) from None
    except FileNotFoundError:
        raise AuthError(
            host.name, f"private key {path} does not exist — check ansible_ssh_private_key_file"
        ) from None
    except _KEY_ERRORS as exc:
        raise AuthError(host.name, f"cannot load private key {path}: {reason(exc)}") from None


def _auth_transport_error(host: Host, exc: BaseException) -> ConnectError:
    return ConnectError(host.name, f"connection failed while logging in: {reason(exc)}")
