"""Start-up: redmedic does not pay for what it never uses (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys


def test_paramiko_comes_without_invoke_and_invoke_still_imports() -> None:
    script = (
        "import sys, redmedic.cli\n"
        "assert 'paramiko' in sys.modules\n"
        "print('invoke' in sys.modules, 'unittest.mock' in sys.modules)\n"
        "import invoke\n"
        "print(invoke.__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == ["False", "False", "invoke"]
