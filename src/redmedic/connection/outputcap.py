"""How much of a command's output is kept: the head and the tail, and a line saying what was cut.

A diagnose command that prints 50 MB (a runaway `journalctl`, a `cat` of the wrong file)
must not take the run's memory with it: each stream keeps its first and last
`OUTPUT_CAP // 2` bytes, and the middle is replaced by one line naming how many bytes were
cut. The head holds what most commands put first (headers, the first error), the tail how
they ended. The cap applies to both SSH and local commands; how long a command may run is
`--command-timeout`'s job.
"""

from __future__ import annotations

#: Bytes kept per stream (stdout, stderr) of one command: 4 MiB of head, 4 MiB of tail.
#: Larger than any file `read_file` accepts (`scripts.MAX_READ_BYTES`), so a file read in a
#: batch of commands is never cut.
OUTPUT_CAP = 8 * 1024 * 1024


class OutputCap:
    """Collects one stream's chunks, keeping the head and the tail within `cap` bytes."""

    def __init__(self, cap: int = OUTPUT_CAP) -> None:
        self._half = cap // 2
        self._head = bytearray()
        self._tail = bytearray()
        self.cut = 0

    def add(self, data: bytes) -> None:
        """Keep `data` while the head has room, then in the tail, dropping the tail's oldest."""
        room = self._half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            extra = len(self._tail) - self._half
            if extra > 0:
                del self._tail[:extra]
                self.cut += extra

    def value(self) -> bytes:
        """The kept bytes; when some were cut, a line in their place says how many."""
        if not self.cut:
            return bytes(self._head + self._tail)
        note = f"\n[redmedic: {self.cut} bytes of output cut here; the first and last "
        note += f"{self._half} bytes are kept]\n"
        return bytes(self._head) + note.encode() + bytes(self._tail)
