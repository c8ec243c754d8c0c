"""What the user sees of the ssh config on the command line: warnings before the run."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from redmedic.cli import main


def test_unhonoured_options_are_printed_once_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n    ForwardAgent yes\n    HostName 127.0.0.1\n", encoding="utf-8")
    playbook = tmp_path / "pb.yaml"
    playbook.write_text("name: x\nhosts: all\ndiagnose:\n  - shell: 'true'\n", encoding="utf-8")
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        inventory = tmp_path / "inv.yaml"
        inventory.write_text(
            f"all:\n  vars: {{ansible_port: {port}}}\n  hosts:\n    web1:\n    web2:\n",
            encoding="utf-8",
        )

        code = main(
            [
                "run",
                str(playbook),
                "-i",
                str(inventory),
                "--check",
                "--ssh-config",
                str(config),
                "--connect-timeout",
                "5",
            ]
        )

    err = capsys.readouterr().err
    assert code == 4  # both unreachable: the warning is no error
    assert err.splitlines()[0] == (
        f"redmedic: warning: {config}:2: ForwardAgent yes is not honoured: redmedic never "
        "forwards the agent (hosts: web1, web2)"
    )
    assert err.count("ForwardAgent") == 1
