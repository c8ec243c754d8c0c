"""JSON-lines output: one event per line on stdout, the last one `{"event": "summary", ...}`."""

from __future__ import annotations

import dataclasses
import threading
from typing import TextIO

from redmedic.events import Event, event_name
from redmedic.safety.audit import json_line


class JsonLinesReporter:
    """Writes each event as one JSON object; thread-safe, flushed per line for `| jq`."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        # A stdout that is not UTF-8 (LANG=…ISO-8859-1) cannot take "—" or a host's "✓":
        # every non-ASCII character is then a JSON escape, so each line is still written whole.
        encoding = (getattr(stream, "encoding", None) or "utf-8").lower().replace("_", "-")
        self._ascii = encoding not in ("utf-8", "utf8")

    def __call__(self, event: Event) -> None:
        record = {"event": event_name(event), **dataclasses.asdict(event)}
        line = json_line(record, ascii_only=self._ascii)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()
