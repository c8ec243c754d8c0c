"""`--shard K/N`: N control machines split the selected hosts by a hash of each host's name.

The split must be the same on every machine and in every run (no salted `hash()`), the
shards disjoint with the whole selection as their union, and roughly balanced.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from redmedic.cli import main
from redmedic.run.shard import Shard, parse_shard


@dataclass(frozen=True)
class Named:
    name: str


FLEET = [Named(f"redis-{region}-{n:03d}") for region in ("eu", "us", "ap") for n in range(400)]


def shards(count: int) -> list[list[Named]]:
    return [Shard(k, count).pick(FLEET) for k in range(1, count + 1)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16])
def test_the_shards_are_disjoint_and_together_the_whole_selection(count: int) -> None:
    picked = [host for shard in shards(count) for host in shard]
    assert sorted(picked, key=lambda h: h.name) == sorted(FLEET, key=lambda h: h.name)


def test_each_shard_keeps_the_selections_order() -> None:
    for shard in shards(4):
        assert shard == sorted(shard, key=FLEET.index)


def test_the_shards_are_roughly_balanced() -> None:
    sizes = [len(shard) for shard in shards(4)]
    assert min(sizes) > 0.85 * len(FLEET) / 4 and max(sizes) < 1.15 * len(FLEET) / 4, sizes


def test_a_hosts_shard_depends_only_on_its_name_not_on_the_other_hosts() -> None:
    shard = Shard(2, 4)
    alone = [h.name for h in FLEET if shard.pick([h])]
    assert [h.name for h in shard.pick(FLEET)] == alone
    assert [h.name for h in shard.pick(list(reversed(FLEET)))] == list(reversed(alone))


def test_the_split_is_the_same_in_another_process_with_another_hash_seed() -> None:
    # Python salts str hashes per process: a split built on hash() would differ here.
    code = (
        "from redmedic.run.shard import Shard\n"
        "names = [f'redis-eu-{n:03d}' for n in range(400)]\n"
        "print(','.join(n for n in names if Shard(3, 4).holds(n)))\n"
    )
    here = ",".join(
        f"redis-eu-{n:03d}" for n in range(400) if Shard(3, 4).holds(f"redis-eu-{n:03d}")
    )
    for seed in ("1", "2"):
        there = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
            timeout=60,
        ).stdout.strip()
        assert there == here


@pytest.mark.parametrize(
    ("name", "of_4", "of_3"),
    [("redis-eu-1", 4, 2), ("redis-eu-2", 2, 2), ("redis-us-1", 1, 3), ("db01.example.com", 3, 3)],
)
def test_known_names_land_in_pinned_shards(name: str, of_4: int, of_3: int) -> None:
    # Pinned: a changed hash would move hosts between the shards of jobs already set up.
    assert [k for k in range(1, 5) if Shard(k, 4).holds(name)] == [of_4]
    assert [k for k in range(1, 4) if Shard(k, 3).holds(name)] == [of_3]


@pytest.mark.parametrize("text", ["1/4", "4/4", " 2/3 ", "1/1"])
def test_good_values_parse(text: str) -> None:
    index, count = map(int, text.split("/"))
    assert parse_shard(text) == Shard(index, count)


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "4", "a/b", "-1/4", "1/4/2", "", "1.5/4"])
def test_a_bad_value_is_one_line_and_exit_2(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    playbook = tmp_path / "pb.yaml"
    playbook.write_text("name: x\nhosts: all\ndiagnose:\n  - shell: 'true'\n")
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("all:\n  hosts:\n    box: {ansible_connection: local}\n")
    assert main(["run", str(playbook), "-i", str(inventory), "--check", f"--shard={text}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"redmedic: error: bad --shard value {text!r} — use K/N with 1 <= K <= N")


def test_an_empty_shard_is_a_run_with_no_hosts_and_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given one host and 4 shards, 3 of them are empty: each says so and succeeds.
    playbook = tmp_path / "pb.yaml"
    playbook.write_text("name: x\nhosts: all\ndiagnose:\n  - shell: 'true'\n")
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("all:\n  hosts:\n    box: {ansible_connection: local}\n")
    empty = next(k for k in range(1, 5) if not Shard(k, 4).holds("box"))
    argv = ["run", str(playbook), "-i", str(inventory), "--check", "--output", "json"]
    assert main([*argv, "--shard", f"{empty}/4"]) == 0
    captured = capsys.readouterr()
    assert (
        captured.err
        == f"shard {empty}/4: 0 of the 1 selected hosts: nothing to do on this machine\n"
    )
    assert captured.out.splitlines()[-1] == '{"event": "summary", "hosts": {}}'
