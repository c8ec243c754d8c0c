"""The test hosts' base recipes: which apt sources a base gets and where it is cached.

Given a control machine whose apt lists only Debian 12 (bookworm) mirrors, a Debian 11
base must get the same mirrors under bullseye's names, and each recipe its own cache dir.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.rootfs import BOOKWORM, BULLSEYE, base_path, debian_sources

DEB822 = """\
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://elsewhere.example/debian
Suites: trixie
Enabled: no
"""


def test_a_bullseye_base_gets_the_control_machines_mirrors_under_bullseyes_names(
    tmp_path: Path,
) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(DEB822)
    missing = tmp_path / "sources.list"

    assert debian_sources("bullseye", deb822=deb822, legacy=missing) == [
        ("http://mirror.example/debian", "bullseye"),
        ("http://mirror.example/debian", "bullseye-updates"),
        ("http://mirror.example/debian-security", "bullseye-security"),
    ]
    assert [s for _, s in debian_sources(deb822=deb822, legacy=missing)] == [
        "bookworm",
        "bookworm-updates",
        "bookworm-security",
    ]


def test_a_one_line_sources_list_is_read_when_there_is_no_deb822_file(tmp_path: Path) -> None:
    legacy = tmp_path / "sources.list"
    legacy.write_text(
        "# comment\n"
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m.example/debian"
        " bookworm main\n"
        "deb-src http://m.example/debian bookworm main\n"
        "deb http://m.example/debian-security bookworm-security main\n"
    )

    assert debian_sources("bullseye", deb822=tmp_path / "none", legacy=legacy) == [
        ("http://m.example/debian", "bullseye"),
        ("http://m.example/debian-security", "bullseye-security"),
    ]


def test_each_recipe_has_its_own_cache_dir(tmp_path: Path) -> None:
    bookworm, bullseye = base_path(BOOKWORM, tmp_path), base_path(BULLSEYE, tmp_path)
    assert bookworm != bullseye
    assert bookworm.parent == bullseye.parent == tmp_path
    assert bullseye.name.startswith("rootfs-")
    assert BULLSEYE.packages == BOOKWORM.packages  # every package exists there by that name
