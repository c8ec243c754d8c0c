"""-vvv's SSH log: every line names its host and passes through the run's secret masker."""

from __future__ import annotations

import logging

import pytest

from redmedic.connection.sshopen import PARAMIKO_LOGGER
from redmedic.model.inventory import Host
from redmedic.report.sshlog import run_masker, ssh_conversation


def test_ssh_lines_name_the_host_and_mask_every_secret_of_the_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given hosts whose passwords, sudo passwords and password-like variables are known,
    # when paramiko logs a line that contains them (an auth banner could), then stderr
    # shows the line with each one (and `sensitive` variables') masked, under the host's name.
    hosts = [
        Host("web1", "10.0.0.1", password="ssh-pw-1", become_password="sudo-pw-1"),
        Host(
            "web2",
            "10.0.0.2",
            vars={"redis_password": "redis-pw-2", "token_x": "tok-3", "plain": "v-5"},
        ),
    ]
    masker = run_masker(hosts, {"vault_secret": "extra-4"}, sensitive={"plain"})
    logger = logging.getLogger(f"{PARAMIKO_LOGGER}.web1")
    with ssh_conversation(masker):
        logger.debug("banner: %s %s", "ssh-pw-1", "sudo-pw-1")
        logger.info("more: redis-pw-2 tok-3 extra-4 v-5")
    logger.debug("after the block: not shown")
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "ssh web1: banner: ******** ********",
        "ssh web1: more: ******** ******** ******** ********",
    ]


def test_outside_vvv_paramiko_stays_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger(f"{PARAMIKO_LOGGER}.web1").debug("kex algos: ...")
    assert capsys.readouterr().err == ""
