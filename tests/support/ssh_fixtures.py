"""The ssh_config fixtures of tests/data/ssh_config, copied where a test can read them.

They are copied into the test's own directory because ssh (and redmedic) refuse included
config files that others may write or that belong to another user, and because Include
paths must be absolute there: `@DIR@` in a fixture becomes the copy's directory.
Each fixture's `# hosts:` line lists the host names the tests look up.
"""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "ssh_config"


def copy_fixtures(target: Path) -> Path:
    """Copy every fixture below `target`/ssh_config with @DIR@ filled in; returns that dir."""
    root = target / "ssh_config"
    shutil.copytree(FIXTURES, root)
    for path in root.rglob("*"):
        if path.is_file():
            path.write_text(path.read_text(encoding="utf-8").replace("@DIR@", str(root)))
            path.chmod(0o644)
    return root


def fixture_hosts(path: Path) -> list[str]:
    """The host names a fixture's `# hosts:` line lists."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# hosts:"):
            return line.split(":", 1)[1].split()
    raise AssertionError(f"{path} has no `# hosts:` line")
