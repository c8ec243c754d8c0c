"""What redmedic does with each OpenSSH client option it does not honour.

Every option present for a host that redmedic does not honour is a warning naming it and its
FILE:LINE, except:
- `SILENT`: options that cannot change where or how safely a host is reached, or what
  redmedic's commands do there (each has its reason below). Several are in the stock
  /etc/ssh/ssh_config of Debian, Ubuntu and Fedora: a warning there would fire on every
  run of every user and teach people to ignore warnings.
- `SAME_AS_REDMEDIC`: a value that asks for what redmedic does anyway
  (`StrictHostKeyChecking yes`, `ForwardAgent no`, ...).
A keyword OpenSSH does not know is a warning too (a typo?), unless `IgnoreUnknown` names it.
"""

from __future__ import annotations

# OpenSSH's client keywords (readconf.c), including aliases and deprecated names.
_NAMES = """
    addkeystoagent addressfamily afstokenpassing batchmode bindaddress bindinterface
    canonicaldomains canonicalizefallbacklocal canonicalizehostname canonicalizemaxdots
    canonicalizepermittedcnames casignaturealgorithms certificatefile
    challengeresponseauthentication channeltimeout checkhostip cipher ciphers
    clearallforwardings compression compressionlevel connectionattempts connecttimeout
    controlmaster controlpath controlpersist dsaauthentication dynamicforward
    enableescapecommandline enablesshkeysign escapechar exitonforwardfailure fallbacktorsh
    fingerprinthash forkafterauthentication forwardagent forwardx11 forwardx11timeout
    forwardx11trusted gatewayports globalknownhostsfile globalknownhostsfile2
    gssapiauthentication gssapidelegatecredentials hashknownhosts host
    hostbasedacceptedalgorithms hostbasedauthentication hostbasedkeytypes hostkeyalgorithms
    hostkeyalias hostname identitiesonly identityagent identityfile identityfile2
    ignoreunknown include ipqos kbdinteractiveauthentication kbdinteractivedevices keepalive
    kerberosauthentication kerberostgtpassing kexalgorithms knownhostscommand localcommand
    localforward loglevel logverbose macs match nohostauthenticationforlocalhost
    numberofpasswordprompts obscurekeystroketiming passwordauthentication permitlocalcommand
    permitremoteopen pkcs11provider port preferredauthentications protocol proxycommand
    proxyjump proxyusefdpass pubkeyacceptedalgorithms pubkeyacceptedkeytypes
    pubkeyauthentication refuseconnection rekeylimit remotecommand remoteforward requesttty
    requiredrsasize revokedhostkeys rhostsauthentication rhostsrsaauthentication
    rsaauthentication securitykeyprovider sendenv serveralivecountmax serveraliveinterval
    sessiontype setenv skeyauthentication smartcarddevice stdinnull streamlocalbindmask
    streamlocalbindunlink stricthostkeychecking syslogfacility tag tcpkeepalive
    tisauthentication tunnel tunneldevice updatehostkeys useprivilegedport user
    userknownhostsfile userknownhostsfile2 useroaming usersh verifyhostkeydns
    versionaddendum visualhostkey warnweakcrypto xauthlocation
"""
OPENSSH_KEYWORDS = frozenset(_NAMES.split())

SILENT = frozenset(
    {
        # ssh itself ignores these (deprecated or removed).
        "cipher",
        "fallbacktorsh",
        "globalknownhostsfile2",
        "userknownhostsfile2",
        "rhostsauthentication",
        "useroaming",
        "usersh",
        "useprivilegedport",
        "protocol",
        "afstokenpassing",
        "kerberosauthentication",
        "kerberostgtpassing",
        "rsaauthentication",
        "rhostsrsaauthentication",
        "compressionlevel",
        # Stock Debian/Ubuntu: forwards LANG/LC_*; redmedic's commands set LC_ALL=C anyway.
        "sendenv",
        # Stock Debian/Ubuntu: how ssh would *write* new known_hosts lines; redmedic reads.
        "hashknownhosts",
        # Stock Debian/Ubuntu/Fedora: one more login method tried first; without it the
        # keys and password are tried, and a refused login is reported as such.
        "gssapiauthentication",
        "gssapidelegatecredentials",
        # Only what ssh prints or logs, or its interactive session.
        "loglevel",
        "logverbose",
        "syslogfacility",
        "visualhostkey",
        "fingerprinthash",
        "escapechar",
        "enableescapecommandline",
        "obscurekeystroketiming",
        "batchmode",  # redmedic never asks questions during a connection
        "numberofpasswordprompts",
        # Only meaningful with ForwardX11, which is warned about itself.
        "forwardx11trusted",
        "forwardx11timeout",
        "xauthlocation",
        # What ssh does with the agent after a login; redmedic never adds keys to it.
        "addkeystoagent",
        # How ssh would update known_hosts; redmedic never rewrites them.
        "updatehostkeys",
        "tcpkeepalive",  # the kernel's keepalive; ServerAliveInterval is honoured
        "compression",  # speed only
        "usekeychain",  # macOS's ssh: Keychain passphrases (not an OpenSSH keyword)
    }
)

# Values that ask for what redmedic does anyway (compared lower case, first argument).
SAME_AS_REDMEDIC: dict[str, frozenset[str]] = {
    "stricthostkeychecking": frozenset({"yes", "true"}),
    "forwardagent": frozenset({"no", "false"}),
    "forwardx11": frozenset({"no", "false"}),
    "controlmaster": frozenset({"no", "false"}),
    "controlpath": frozenset({"none"}),
    "controlpersist": frozenset({"no", "false"}),
    "canonicalizehostname": frozenset({"no", "false"}),
    "checkhostip": frozenset({"no", "false"}),
    "clearallforwardings": frozenset({"yes", "true"}),
    "permitlocalcommand": frozenset({"no", "false"}),
    "requesttty": frozenset({"no", "false", "auto"}),
    "tunnel": frozenset({"no", "false"}),
    "hostbasedauthentication": frozenset({"no", "false"}),
    "pubkeyauthentication": frozenset({"yes", "true"}),
    "verifyhostkeydns": frozenset({"no", "false"}),
    "enablesshkeysign": frozenset({"no", "false"}),
    "proxyusefdpass": frozenset({"no", "false"}),
    "addressfamily": frozenset({"any"}),
    "forkafterauthentication": frozenset({"no", "false"}),
    "stdinnull": frozenset({"no", "false"}),
    "exitonforwardfailure": frozenset({"no", "false"}),
    "gatewayports": frozenset({"no", "false"}),
}

# Why, for the options users most often have (the rest: "redmedic does not honour it").
WHY_NOT = {
    "stricthostkeychecking": "redmedic always checks host keys strictly "
    "(--trust-new-host-keys accepts a host's first key)",
    "forwardagent": "redmedic never forwards the agent",
    "controlmaster": "redmedic opens its own connection (no multiplexing)",
    "controlpath": "redmedic opens its own connection (no multiplexing)",
    "controlpersist": "redmedic opens its own connection (no multiplexing)",
    "canonicalizehostname": "redmedic does not canonicalize host names",
    "localforward": "redmedic forwards no ports",
    "remoteforward": "redmedic forwards no ports",
    "dynamicforward": "redmedic forwards no ports",
    "identityagent": "redmedic uses the agent of $SSH_AUTH_SOCK",
    "certificatefile": "redmedic logs in with keys and passwords, not certificates",
    "ciphers": "redmedic uses paramiko's algorithm choices",
    "macs": "redmedic uses paramiko's algorithm choices",
    "kexalgorithms": "redmedic uses paramiko's algorithm choices",
    "hostkeyalgorithms": "redmedic uses paramiko's algorithm choices",
    "pubkeyacceptedalgorithms": "redmedic uses paramiko's algorithm choices",
    "checkhostip": "redmedic checks host keys by name (or HostKeyAlias), not also by IP",
}
