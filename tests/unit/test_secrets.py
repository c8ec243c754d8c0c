"""Secrets never reach output: names like passwords, sensitive vars, requirepass values."""

import json
import shlex
from pathlib import Path

import pytest
import yaml

from redmedic.events import ChangePlanned, masked
from redmedic.safety.secrets import (
    MASK,
    MIN_SECRET_LENGTH,
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


# --- every form a secret takes (issue: Secrets leak) ----------------------------------------

ADVERSARIAL = Path(__file__).parent.parent / "data" / "adversarial"


def data_line(name: str) -> str:
    """The first line of a data file that is not a comment."""
    text = (ADVERSARIAL / name).read_text()
    return next(line for line in text.splitlines() if not line.startswith("#"))


def test_the_quote_filter_does_not_defeat_masking() -> None:
    # Given a password that `quote`, JSON and Python escaping all write differently,
    password = data_line("secrets-quote-password.txt")
    masker = Masker([password])
    written = [
        f"requirepass {shlex.quote(password)}",
        json.dumps({"command": f"redis-cli -a {password} ping"}),
        f"config set requirepass {password!r}",
        "sh -c 'echo " + password.replace("'", "'\\''") + "'",
    ]
    salt = b"0123456789abcdef"
    for text in written:
        # when any of those forms is shown or sealed into a plan file or audit log,
        shown, sealed = masker.mask(text), masker.seal(text, salt)
        # then no piece of the password is left, and sealing still round-trips.
        for piece in ("Tr0ub", "dor"):
            assert piece not in shown and piece not in sealed, (text, shown, sealed)
        assert masker.unseal(sealed, salt) == text


def test_the_directive_pattern_learns_the_whole_quoted_password_not_a_fragment() -> None:
    password = data_line("secrets-quote-password.txt")
    conf = f"requirepass {shlex.quote(password)}\nbind 127.0.0.1\n"

    assert directive_secrets(conf) == [password]
    masker = Masker()
    masker.add_from_text(conf)
    assert masker.mask(f"auth {password} ok; bind 127.0.0.1") == f"auth {MASK} ok; bind 127.0.0.1"


def test_requirepass_values_not_at_the_start_of_a_line_are_masked() -> None:
    # Given what `grep -H/-n requirepass` and CONFIG GET print,
    output = (ADVERSARIAL / "secrets-diagnose-output.txt").read_text()

    # when it is shown, then no value is, and the values are learnt for other texts.
    shown = Masker().mask(output)
    assert "secret" not in shown, shown
    assert sorted(directive_secrets(output)) == sorted(
        ["Gr3pH-secret", "Gr3pN secret", "CfgGet-secret", "CfgGet2-secret"]
    )


def test_secrets_inside_dicts_and_lists_are_masked() -> None:
    variables = yaml.safe_load((ADVERSARIAL / "secrets-nested-vars.yaml").read_text())
    masker = Masker()
    masker.add_from_vars(variables)

    shown = masker.mask(json.dumps(variables))
    assert "-secret" not in shown, shown
    assert "db1" in shown and "cache" in shown


def test_a_one_character_password_is_masked_only_where_it_stands_whole() -> None:
    data = yaml.safe_load((ADVERSARIAL / "secrets-short-password.yaml").read_text())
    masker = Masker()
    masker.add_from_vars(data)

    shown = masker.mask(data["text"])
    assert shown == f"the box exited; {MASK} marks the spot: requirepass {MASK}"
    assert len("x") < MIN_SECRET_LENGTH
