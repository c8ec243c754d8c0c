"""The shell scripts behind the connection's file operations and batches, and the one way
to split a script's output into sections.

Why one module: each script is a single round trip whose output the caller must take apart
again, and a section marker that host output could forge would let a log line or a file's
content pose as something else (a drift answer, another file, a fact). Every marker here is
either fixed and checked in a fixed position (`read_script`, `write_script`), or carries a
random nonce the host never sees in any argv (`batch_script`, `new_marker`/`split_sections`).
Steps build their gather scripts with `new_marker` and `marker_line`, and read them back with
`split_sections`.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

# Exit code our file scripts use for "the file is not what the plan expected".
DRIFT_RC = 65
MARK = "redmedic:"


def new_marker() -> str:
    """A section marker no host output can predict (and so cannot forge).

    Inside `replaying(sequence)` it is the sequence's next marker: a step diagnosed twice
    while planning (`lookahead`) builds the very same scripts both times, so its second
    pass finds the answers its first pass had read ahead.
    """
    sequence = _REPLAY.get()
    return sequence.draw() if sequence is not None else _fresh_marker()


def _fresh_marker() -> str:
    return f"@@redmedic-{secrets.token_hex(6)}@@ "


class MarkerSequence:
    """The markers one step drew, handed out again in the same order on its next pass."""

    def __init__(self) -> None:
        self._drawn: list[str] = []
        self._next = 0

    def restart(self) -> None:
        self._next = 0

    def draw(self) -> str:
        if self._next == len(self._drawn):
            self._drawn.append(_fresh_marker())
        self._next += 1
        return self._drawn[self._next - 1]


_REPLAY: ContextVar[MarkerSequence | None] = ContextVar("redmedic_markers", default=None)


@contextmanager
def replaying(sequence: MarkerSequence) -> Iterator[None]:
    """`new_marker()` draws from `sequence`, from its first marker on, inside the block."""
    sequence.restart()
    token = _REPLAY.set(sequence)
    try:
        yield
    finally:
        _REPLAY.reset(token)


def marker_line(marker: str, name: str) -> str:
    """Shell that starts section `name` (a word) of a script read back by `split_sections`."""
    return f"printf '\\n%s%s\\n' {shlex.quote(marker)} {shlex.quote(name)}\n"


def split_sections(output: str, marker: str) -> dict[str, str]:
    """The script's output as {section name: text}; each section's text without the
    newline the marker line added in front of it."""
    sections: dict[str, str] = {}
    name: str | None = None
    body: list[str] = []
    for line in output.split("\n"):
        if line.startswith(marker):
            if name is not None:
                sections[name] = "\n".join(body[:-1] if body and body[-1] == "" else body)
            name, body = line[len(marker) :].strip(), []
        elif name is not None:
            body.append(line)
    if name is not None:
        sections[name] = "\n".join(body).rstrip("\n")
    return sections


def with_stdin(command: str, text: str) -> str:
    """`command` reading `text` on its stdin, as one shell text (a here-document).

    How a planned command or a batched script hands a secret to its program: the whole
    text travels on the channel's stdin (connection/base.py), so the secret is on no
    command line, and a plan shows it masked like any other output.
    """
    end = "REDMEDIC_STDIN_END"
    while end in text:
        end += "_"
    body = text if text.endswith("\n") else text + "\n"
    return f"{{ {command}\n}} <<'{end}'\n{body}{end}"


def parse_stat_line(line: str) -> tuple[int, str, str]:
    """Parse our `stat -c '%a %U %G'` line into (mode, owner, group).

    Raises ValueError on anything else so a surprising host fails loudly, not silently.
    """
    parts = line.strip().split(" ")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"unexpected stat output {line!r}")
    mode_text, owner, group = parts
    mode = int(mode_text, 8)
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"unexpected file mode {mode_text!r}")
    return mode, owner, group


# `[ -e ]` is also false when a parent directory cannot be searched; only a real ENOENT
# (or ENOTDIR) may count as "absent", anything else is an error worth showing.
_EXISTS_FN = (
    "exists() {\n"
    '  [ -e "$1" ] && return 0\n'
    '  e=$(LC_ALL=C stat -L -c %a -- "$1" 2>&1 >/dev/null) && return 0\n'
    '  case $e in *"No such file or directory"*|*"Not a directory"*) return 1;; esac\n'
    "  printf '%s\\n' \"$e\" >&2; exit 1\n"
    "}\n"
)


#: The largest file `read_file` reads (and so edits): 4 MiB, some forty times a big
#: redis.conf. Anything larger is refused with a message rather than cut (an edit of a cut
#: file would write the cut back), and stays well inside `outputcap.OUTPUT_CAP`.
MAX_READ_BYTES = 4 * 1024 * 1024


def read_script(path: str) -> str:
    """The one-round-trip script behind `read_file`: a marker line, a stat line, the bytes.

    A file larger than `MAX_READ_BYTES` is refused on the host (exit 1, the reason on stderr).
    """
    return (
        _EXISTS_FN + f"p={shlex.quote(path)}\n"
        'if exists "$p"; then\n'
        '  s=$(stat -L -c %s -- "$p") || exit 1\n'
        f'  if [ "$s" -gt {MAX_READ_BYTES} ]; then\n'
        "    printf 'the file is %s bytes, larger than redmedic reads "
        f'({MAX_READ_BYTES // 1024 // 1024} MiB)\\n\' "$s" >&2; exit 1\n'
        "  fi\n"
        f"  printf '%s\\n' '{MARK}file'\n"
        "  stat -L -c '%a %U %G' -- \"$p\" || exit 1\n"
        '  exec cat -- "$p"\n'
        "fi\n"
        f"printf '%s\\n' '{MARK}absent'\n"
    )


def write_script(path: str, expected_sha256: str | None, mode: int | None, backup: bool) -> str:
    """The one-round-trip script behind `write_file`; the new content arrives on stdin.

    Order matters for safety: drift check, then the temp file is written and given its final
    owner/mode *before* the backup and the rename, so a full disk or a failing chown leaves
    the target untouched (and the trap removes the temp file on every exit path).
    """
    return (
        "set -u\n" + _EXISTS_FN + f"p={shlex.quote(path)}\n"
        f"want={shlex.quote(expected_sha256 or '')}\n"
        f"mode={shlex.quote(format(mode, 'o') if mode is not None else '')}\n"
        f"backup={'1' if backup else '0'}\n"
        "um=$(umask)\n"
        # Edit the real file behind a symlink, never replace the link with a file.
        'if [ -L "$p" ]; then p=$(readlink -f -- "$p") || exit 1; fi\n'
        'existed=0; if exists "$p"; then existed=1; fi\n'
        'if [ "$existed" = 1 ]; then\n'
        f'  [ -n "$want" ] || {{ echo "{MARK}drift exists"; exit {DRIFT_RC}; }}\n'
        '  have=$(sha256sum < "$p") || exit 1\n'
        "  have=${have%% *}\n"
        f'  [ "$have" = "$want" ] || {{ echo "{MARK}drift $have"; exit {DRIFT_RC}; }}\n'
        'elif [ -n "$want" ]; then\n'
        f'  echo "{MARK}drift absent"; exit {DRIFT_RC}\n'
        "fi\n"
        'd=$(dirname -- "$p"); b=$(basename -- "$p")\n'
        'tmp=$(mktemp "$d/.$b.redmedic-XXXXXX") || exit 1\n'
        "trap 'rm -f -- \"$tmp\"' EXIT\n"
        "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM\n"
        'cat > "$tmp" || exit 1\n'
        'if [ "$existed" = 1 ]; then\n'
        '  chown --reference="$p" -- "$tmp" || exit 1\n'
        '  chmod --reference="$p" -- "$tmp" || exit 1\n'
        "fi\n"
        'if [ -n "$mode" ]; then\n'
        '  chmod "$mode" -- "$tmp" || exit 1\n'
        'elif [ "$existed" = 0 ]; then\n'
        '  chmod "$(printf \'%o\' $((0666 & ~$um)))" -- "$tmp" || exit 1\n'
        "fi\n"
        'if [ "$existed" = 1 ] && [ "$backup" = 1 ]; then\n'
        "  stamp=$(date +%Y%m%dT%H%M%S)\n"
        '  bk="$p.redmedic-$stamp~"; n=1\n'
        '  while [ -e "$bk" ] || [ -L "$bk" ]; do\n'
        "    n=$((n + 1))\n"
        '    [ "$n" -le 100 ] || { echo "too many backups of $p this second" >&2; exit 1; }\n'
        '    bk="$p.redmedic-$stamp-$n~"\n'
        "  done\n"
        '  cp -p -- "$p" "$bk" || exit 1\n'
        f"  printf '%s\\n' \"{MARK}backup $bk\"\n"
        "fi\n"
        'sync -- "$tmp" 2>/dev/null || :\n'
        'mv -f -- "$tmp" "$p" || exit 1\n'
        f"printf '%s\\n' '{MARK}written'\n"
    )


def restore_script(path: str, backup: str | None) -> str:
    """The script behind `restore_file`: copy the backup beside the target, rename over it.

    The backup itself is kept (a copy is renamed, not the backup) so a failed restore can be
    retried and the operator still has the pre-change file.
    """
    if backup is None:
        return (
            f"p={shlex.quote(path)}\n"
            'if [ -L "$p" ]; then p=$(readlink -f -- "$p") || exit 1; fi\n'
            'rm -f -- "$p"\n'
        )
    return (
        "set -u\n"
        f"p={shlex.quote(path)}\n"
        f"bk={shlex.quote(backup)}\n"
        'if [ -L "$p" ]; then p=$(readlink -f -- "$p") || exit 1; fi\n'
        '[ -f "$bk" ] || { echo "backup $bk does not exist" >&2; exit 1; }\n'
        'd=$(dirname -- "$p"); b=$(basename -- "$p")\n'
        'tmp=$(mktemp "$d/.$b.redmedic-XXXXXX") || exit 1\n'
        "trap 'rm -f -- \"$tmp\"' EXIT\n"
        "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM\n"
        'cp -p -- "$bk" "$tmp" || exit 1\n'
        'mv -f -- "$tmp" "$p" || exit 1\n'
    )


def batch_script(commands: Sequence[str], nonce: str) -> str:
    """The one-round-trip script behind `run_many`, read by `/bin/sh -s` from stdin.

    Each command runs in a subshell, `( eval COMMAND ) </dev/null`: a fresh copy of a shell
    that has set nothing, so it behaves as under `run` (only a syntax error's message
    says `eval:`); no stdin, so it cannot eat the rest of the script. After each command
    the shell's builtin printf ends its stdout with `\\nNONCE RC\\n` and its stderr with
    `\\nNONCE\\n`. No helper process per command or per batch (a temp-file framing cost the
    host ~10 ms more per batch of 9). The nonce is random per batch and travels on stdin, not
    in any argv (`ps` would show it to a diagnose command like `ps aux | grep redis`), so no
    command's output can contain it.
    """
    lines = []
    for command in commands:
        lines.append(
            f"( eval {shlex.quote(command)} ) </dev/null; "
            f"printf '\\n%s %s\\n' {nonce} $?; printf '\\n%s\\n' {nonce} >&2"
        )
    return "\n".join(lines) + "\n"


def parse_batch_output(
    out: bytes, err: bytes, count: int, nonce: str
) -> list[tuple[int, bytes, bytes]]:
    """(rc, stdout, stderr) for each of `count` commands, from `batch_script`'s streams.

    Raises ValueError unless both streams hold exactly `count` complete results.
    """
    out_mark, err_mark = f"\n{nonce} ".encode(), f"\n{nonce}\n".encode()
    outs: list[tuple[int, bytes]] = []
    at = 0
    while at < len(out):
        found = out.find(out_mark, at)
        end = out.find(b"\n", found + len(out_mark)) if found >= 0 else -1
        code = out[found + len(out_mark) : end] if end >= 0 else b""
        if found < 0 or not code.isdigit():
            raise ValueError(f"stdout ends without a result mark after byte {at}")
        outs.append((int(code), out[at:found]))
        at = end + 1
    errs = err.split(err_mark)
    if errs[-1] != b"" or len(errs) - 1 != count or len(outs) != count:
        raise ValueError(f"{len(outs)} results on stdout, {len(errs) - 1} on stderr, not {count}")
    return [(code, stdout, stderr) for (code, stdout), stderr in zip(outs, errs, strict=False)]
