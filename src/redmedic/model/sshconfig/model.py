"""The typed values the ssh configuration hands to the connection layer (via `Host.ssh`)."""

from __future__ import annotations

from dataclasses import dataclass, field

# What OpenSSH reads when UserKnownHostsFile / GlobalKnownHostsFile are not set.
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


@dataclass(frozen=True)
class SshWarning:
    """An option redmedic read but does not honour: `where` is FILE:LINE or the host variable."""

    where: str
    message: str


@dataclass(frozen=True)
class JumpHost:
    """One hop of a ProxyJump chain, itself resolved through the ssh config like any host.

    `address`/`port`/`user` are the hop's HostName/Port/User after the config (a
    `user@host:port` in ProxyJump beats the hop's own config, as on ssh's command line);
    `ssh` holds its IdentityFile, known-hosts files, HostKeyAlias, timeouts. Its
    `ssh.proxy_jump` is always empty: chains are flattened into `SshOptions.proxy_jump`.
    Only the first hop of a chain can have `ssh.proxy_command` (the others are reached
    through the hop before them).
    """

    name: str  # as written in ProxyJump (an alias or an address)
    address: str
    port: int = 22
    user: str | None = None
    ssh: SshOptions = field(default_factory=lambda: SshOptions())


@dataclass(frozen=True)
class SshOptions:
    """How to reach one host beyond address/port/user: what the connection layer honours.

    - `identity_files`: every key file `ssh` would offer, in order, `~` and tokens expanded:
      the inventory's `ansible_ssh_private_key_file` first (it is `Host.private_key_file`),
      then `-i`/`-o IdentityFile` from `ansible_ssh_common_args`/`extra_args`, then every
      `IdentityFile` of the config. Empty means OpenSSH's default: `~/.ssh/id_*`.
    - `proxy_jump`: the hops, first hop (the one redmedic connects to itself) first; empty
      means direct (`ProxyJump none` too). Never set together with `proxy_command`.
    - `proxy_command`: a shell command whose stdin/stdout is the connection (tokens %h %p
      %r %n %% already expanded); None means none.
    - `user_known_hosts_files` / `global_known_hosts_files`: always the exact lists to
      read; an empty tuple really means `none` (no such file). `resolve` fills them with
      `~` expanded; the class defaults are OpenSSH's (what ssh reads when
      UserKnownHostsFile / GlobalKnownHostsFile are not set) and keep `~`, so expand with
      `os.path.expanduser`. Files that do not exist are skipped, as ssh does. Host keys
      are checked strictly, for every jump host as for the target.
    - `host_key_alias`: the name to look the host key up by instead of the address.
    - `connect_timeout`, `server_alive_interval` (seconds): None when the config does not
      set them (`ServerAliveInterval 0` is None: no keepalives); `server_alive_count_max`:
      unanswered keepalives before the connection counts as dead.
    - `warnings`: options of this host's config (or ssh args) redmedic does not honour; the
      CLI prints them once per FILE:LINE before the run (see `ssh_warnings`).
    """

    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    proxy_jump: tuple[JumpHost, ...] = ()
    proxy_command: str | None = None
    user_known_hosts_files: tuple[str, ...] = DEFAULT_USER_KNOWN_HOSTS
    global_known_hosts_files: tuple[str, ...] = DEFAULT_GLOBAL_KNOWN_HOSTS
    host_key_alias: str | None = None
    connect_timeout: float | None = None
    server_alive_interval: float | None = None
    server_alive_count_max: int = 3
    warnings: tuple[SshWarning, ...] = ()
