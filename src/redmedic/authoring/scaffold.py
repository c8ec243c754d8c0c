"""`redmedic new playbook NAME`: a commented playbook to start from, never over an existing file.

Why a scaffold and not a blank page: the four phases, `register`/`when`, gates, handlers and
verify are easiest to learn from a working example whose comments say what each part does.
The scaffold is valid as written (a test validates and dry-runs it), so a user edits a
playbook that already works instead of debugging one that never did.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from redmedic.errors import UsageError

_TEMPLATE = """\
# {title}: what this playbook fixes, in one line.
#
#   redmedic validate {file}                          # check it without a host
#   redmedic run {file} -i inventory.yaml --check     # dry run: diagnose, plan, show diffs
#   redmedic run {file} -i inventory.yaml             # apply, asking at each gate
#
# Completion and checking in your editor: `redmedic schema > playbook.schema.json`, then
# make the first line of this file:  # yaml-language-server: $schema=playbook.schema.json
# Step types: `redmedic steps` lists them, `redmedic steps NAME` describes one.
# Guide: docs/writing-playbooks.md in the redmedic repository.
name: {title}
hosts: all                  # an inventory group or pattern, e.g. redis or 'redis,!canary'
vars:                       # defaults: the inventory and -e NAME=VALUE override them
  redis_conf: /etc/redis/redis.conf
  redis_port: 6379
  redis_service: redis-server

# 1. diagnose: read-only steps that always run, also under --check. `register:` keeps a
#    step's result (rc, stdout, stderr, and the step type's facts) for later `when:`.
diagnose:
  - name: Read the bind line of redis.conf
    shell: grep -E '^[[:space:]]*bind[[:space:]]' {{{{ redis_conf | quote }}}}
    register: bind_line

# 2. fix: every step is planned first (nothing changes), shown as a diff, confirmed at a
#    gate, then applied: file edits atomically, with a backup.
fix:
  - name: Listen on every interface
    file_line:
      path: "{{{{ redis_conf }}}}"
      regexp: '^\\s*bind\\s'
      line: bind 0.0.0.0 -::*
    when: "'127.0.0.1' in bind_line.stdout"
    confirm: true           # ask before applying (--yes approves)
    notify: restart redis   # run that handler once after the fixes, if this changed anything
    tags: [bind]            # select fix steps with --tags / --skip-tags

# 3. handlers: run once after the fixes, when a fix step that changed something notifies
#    them by name. redis_restart is guarded: the plan says what the restart costs, RDB is
#    saved first, and a restart that would lose keys is refused before anything changes.
handlers:
  - name: restart redis
    redis_restart: {{unit: "{{{{ redis_service }}}}", config: "{{{{ redis_conf }}}}"}}

# 4. verify: must pass after the fixes, or this host's changes are undone in reverse order.
verify:
  - name: Redis answers on the host
    shell: redis-cli -p {{{{ redis_port }}}} ping
    expect_stdout: PONG
"""


def playbook_path(name: str) -> Path:
    """`fix-bind` -> fix-bind.yaml; a name that already ends in .yaml/.yml is kept."""
    path = Path(name)
    return path if path.suffix in (".yaml", ".yml") else path.with_name(path.name + ".yaml")


def scaffold_playbook(path: str | os.PathLike[str]) -> str:
    """The commented starter playbook for `path`, titled after its file name."""
    file = os.fspath(path)
    stem = Path(file).stem
    words = re.sub(r"[-_.\s]+", " ", stem).strip() or "New playbook"
    return _TEMPLATE.format(title=words[0].upper() + words[1:], file=file)


def new_playbook(name: str) -> Path:
    """Write the starter playbook for NAME; UsageError rather than touch an existing file."""
    path = playbook_path(name)
    try:
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(scaffold_playbook(path))
    except FileExistsError:
        raise UsageError(
            f"{path} already exists: not overwriting it", hint="pick another name or remove it"
        ) from None
    except FileNotFoundError:
        raise UsageError(
            f"cannot create {path}: its folder does not exist", hint="create the folder first"
        ) from None
    return path
