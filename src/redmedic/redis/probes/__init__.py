"""Probes: one bounded network attempt against a host, classified by cause.

A probe answers "what does a client see from here?" without changing anything on the
server (the optional write probe only touches one short-lived key of its own). It
returns a :class:`~redmedic.redis.probes.outcome.ProbeResult` naming the *cause* — refused,
timeout, protected mode, authentication, maxclients, OOM, loading, TLS — because the
diagnose steps choose their fix from that cause; a generic "failed" would leave them
guessing. Probes never raise for network or server conditions.
"""
