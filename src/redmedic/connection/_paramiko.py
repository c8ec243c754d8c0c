"""paramiko, imported without `invoke`: a tenth of redmedic's start-up for nothing we use.

paramiko.config imports invoke (and with it unittest.mock, ~40 ms here) at import time,
only to run `Match exec` lines when paramiko itself parses an ssh_config. redmedic reads
ssh_config with its own parser (`model.sshconfig`) and never asks paramiko to, so paramiko is
imported once here, first, with invoke hidden; paramiko then keeps its own "invoke is not
installed" state, and `import invoke` works as before for anything else.
"""

from __future__ import annotations

import sys


def _import_without_invoke() -> None:
    if "paramiko" in sys.modules or "invoke" in sys.modules:
        return
    sys.modules["invoke"] = None  # type: ignore[assignment]  # makes `import invoke` fail
    try:
        import paramiko  # noqa: F401
    finally:
        if sys.modules.get("invoke", 0) is None:
            del sys.modules["invoke"]


_import_without_invoke()
