"""The systemd room: unit drop-ins as systemd reads them.

What it owns: a drop-in's place and content (`dropin`: merge settings into a file, read
`systemctl show`, plan the mkdir + write + daemon-reload and their undo order). Pure: text
in, changes out. It may import `model`, `connection` (the section marker, RemoteFile) and
`errors`; never `steps` — the `systemd_dropin` and `redis_open_files` step types import
from here, so both plan a drop-in the same way.
"""
