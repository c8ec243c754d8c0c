"""What a running Redis takes live, by version: the rules read from Redis's sources."""

from __future__ import annotations

from redmedic.redis.live import (
    any_address_bind,
    bind_refusal,
    parse_version,
    protected_mode_refuses_remote,
    restart_reason,
)

V6_0 = (6, 0, 16)
V7_0 = (7, 0, 15)


def test_bind_and_port_are_live_from_6_2_1_only() -> None:
    for name in ("bind", "port", "tls-port"):
        assert restart_reason(name, V7_0) is None
        assert restart_reason(name, (6, 2, 1)) is None
        reason = restart_reason(name, (6, 2, 0))
        assert reason is not None and "6.2.1" in reason
    assert "Redis 6.0.16 cannot change `bind`" in str(restart_reason("bind", V6_0))


def test_the_other_fix_directives_are_live_on_6_0() -> None:
    for name in ("requirepass", "maxclients", "maxmemory", "maxmemory-policy", "protected-mode"):
        assert restart_reason(name, V6_0) is None, name


def test_an_unknown_directive_or_version_needs_a_restart() -> None:
    assert restart_reason("save", V7_0) == "redmedic does not set `save` live"
    assert restart_reason("port", None) is not None


def test_versions_parse_from_info() -> None:
    assert parse_version("7.0.15") == V7_0
    assert parse_version("6.2") == (6, 2, 0)
    assert parse_version("") is None


def test_protected_mode_ignores_bind_from_7_0() -> None:
    rule = protected_mode_refuses_remote
    assert rule(V7_0, protected_mode=True, has_password=False, bind_set=True)
    assert not rule(V6_0, protected_mode=True, has_password=False, bind_set=True)
    assert rule(V6_0, protected_mode=True, has_password=False, bind_set=False)
    assert not rule(V7_0, protected_mode=True, has_password=True, bind_set=False)
    assert not rule(V7_0, protected_mode=False, has_password=False, bind_set=False)


def test_bind_syntax_of_7_0_would_stop_a_6_0_server() -> None:
    assert any_address_bind(V7_0) == "0.0.0.0 -::*"
    assert any_address_bind(V6_0) == "0.0.0.0"
    assert bind_refusal(["0.0.0.0", "-::*"], V7_0) is None
    assert "would not start" in str(bind_refusal(["0.0.0.0", "-::*"], V6_0))
    assert bind_refusal(["0.0.0.0", "::1"], V6_0) is None
