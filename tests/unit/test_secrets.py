"""Secrets never reach output: names like passwords, sensitive vars, requirepass values."""

import pytest

from redmedic.events import ChangePlanned, masked
from redmedic.safety.secrets import (
    MASK,
    Masker,
    UnknownSecretError,
    directive_secrets,
    is_secret_name,
)


def test_password_like_names_are_secret() -> None:
    for name in ("redis_password", "ansible_become_password", "db_pass", "api_token", "SECRET"):
        assert is_secret_name(name), name
    for name in ("redis_port", "bind_line", "passthrough"):
        assert not is_secret_name(name), name


def test_requirepass_and_masterauth_values_are_masked_in_any_text() -> None:
    masker = Masker()
    diff = '-# requirepass foobared\n+requirepass "s3 cret"\n masterauth hunter2\n'
    out = masker.mask(diff)
    assert "s3 cret" not in out and "hunter2" not in out and "foobared" not in out
    assert out.count(MASK) == 3
    assert directive_secrets("requirepass abc\nCONFIG SET masterauth 'x y'") == ["abc", "x y"]


def test_known_values_are_masked_everywhere_even_inside_events() -> None:
    masker = Masker()
    masker.add_from_vars({"redis_password": "Tr0ub4dor", "port": 6379}, sensitive=())
    event = ChangePlanned("h", "fix", "step", "command", "redis-cli -a Tr0ub4dor ping", "")
    clean = masked(event, masker.mask)
    assert isinstance(clean, ChangePlanned)
    assert "Tr0ub4dor" not in clean.description and MASK in clean.description
    assert masker.mask("port 6379") == "port 6379"


def test_prose_about_requirepass_in_comments_is_not_taken_for_a_secret() -> None:
    conf = (
        '# the "requirepass" configuration directive below) it is possible to tell\n'
        "# requirepass foobared\n"
        "requirepass realsecret\n"
    )
    assert directive_secrets(conf) == ["realsecret"]
    masked_text = Masker().mask(conf)
    assert "realsecret" not in masked_text and "it is possible to tell" in masked_text
    assert Masker().mask("redis-cli -p 1 -a hunter2 ping") == f"redis-cli -p 1 -a {MASK} ping"


def test_sealed_text_shows_no_secret_and_unseals_only_with_the_same_secrets() -> None:
    salt = b"0123456789abcdef"
    text = "requirepass Tr0ub4dor\nmasterauth Tr0ub4dor\n"
    sealed = Masker(["Tr0ub4dor"]).seal(text, salt)
    assert "Tr0ub4dor" not in sealed and "⟦redmedic-secret:" in sealed
    assert Masker(["Tr0ub4dor"]).unseal(sealed, salt) == text
    with pytest.raises(UnknownSecretError, match="same inventory"):
        Masker(["other"]).unseal(sealed, salt)


def test_a_known_multi_word_password_is_masked_whole() -> None:
    out = Masker(["two words"]).mask("requirepass two words\n")
    assert "two" not in out and "words" not in out
