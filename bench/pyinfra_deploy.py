"""pyinfra's version of bench/workload.yaml (run with `--dry --diff`).

Read-only commands are pyinfra *facts* (`server.Command`): facts run during the dry run,
operations do not. The edit is `files.line`, pyinfra's lineinfile; in a dry run it reports
the change it would make (a sed command), not a line diff. `bench_commands` and
`redis_conf` come from the inventory bench/run.py writes.
"""

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import files

for command in host.data.bench_commands:
    host.get_fact(Command, command=command)

files.line(
    name="Listen on the addresses clients use",
    path=host.data.redis_conf,
    line=r"^\s*bind\s",
    replace="bind 0.0.0.0 -::*",
)
