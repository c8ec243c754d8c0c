"""The OpenSSH client configuration a host is reached with: `~/.ssh/config` and friends.

Why this is its own package: the inventory says *which* hosts there are and what they are
called; the ssh config says *how* to reach a name (HostName, User, Port, IdentityFile,
ProxyJump, ...), exactly as `ssh NAME` would. Keeping the two apart lets the inventory read
every Ansible source without knowing OpenSSH's rules, and lets the connection layer get
everything it needs as one typed value, `SshOptions`, on the `Host`.

The contract with the inventory is one function, `resolve`: it takes the connection fields
the inventory set for a host and returns them completed. Inside:

    lexer     files → directives: OpenSSH's line syntax, value checks, Include
    evaluate  directives → what applies to one host: Host/Match, first value wins, tokens
    cmdline   ansible_ssh_common_args / extra_args → directives (they come before files)
    keywords  what is done with each option redmedic does not honour (warn or not, why)
    resolve   SshConfig, load_ssh_config, resolve, ProxyJump chains, ssh_warnings
    model     SshOptions, JumpHost, SshWarning: the values the connection layer reads

Not a wrapper of paramiko.SSHConfig: it has no Include, no `Match final`/`localuser`,
tokens only partly, accumulates only IdentityFile, and does not locate a value's line.
"""

from redmedic.model.sshconfig.model import JumpHost, SshOptions, SshWarning
from redmedic.model.sshconfig.resolve import (
    DEFAULT_CONFIG,
    SshConfig,
    load_ssh_config,
    resolve,
    ssh_warnings,
)

__all__ = [
    "DEFAULT_CONFIG",
    "JumpHost",
    "SshConfig",
    "SshOptions",
    "SshWarning",
    "load_ssh_config",
    "resolve",
    "ssh_warnings",
]
