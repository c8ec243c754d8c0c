"""The kept-open shell's loop program and framing, run by the local /bin/sh (no SSH).

Given the loop as the kept shell runs it (behind SCRIPT_READER, on a pipe), when requests
arrive one after the other, then each command's rc, stdout and stderr come back whole and
apart, with or without input, and nothing of one command reaches the next.
"""

from __future__ import annotations

import subprocess

from redmedic.connection.base import SCRIPT_READER, script_on_stdin
from redmedic.connection.keptshell import Frames, loop_program, new_nonce, request


def _run_loop(requests: list[tuple[str, bytes]]) -> list[tuple[int, bytes, bytes]]:
    """Every request's result, cut out of the streams of one local loop run."""
    nonce = new_nonce()
    _, program = script_on_stdin(loop_program(nonce))
    data = program + b"".join(request(cmd.encode(), stdin) for cmd, stdin in requests)
    ran = subprocess.run(["/bin/sh", "-c", SCRIPT_READER], input=data, capture_output=True)
    assert ran.returncode == 0
    out_mark, err_mark = f"\n{nonce} ".encode(), f"\n{nonce}\n".encode()
    outs = ran.stdout.split(out_mark)
    errs = ran.stderr.split(err_mark)
    results = []
    for n in range(len(requests)):
        rc_line, _, rest = outs[n + 1].partition(b"\n")
        results.append((int(rc_line), outs[n], errs[n]))
        outs[n + 1] = rest
    return results


def test_requests_with_and_without_input_come_back_apart() -> None:
    results = _run_loop(
        [
            ("cat; echo oops >&2; exit 3", b"in\n\n"),
            ("cat; echo none", b""),
            ("head -c 1", b"xyz"),  # leaves two bytes unread
            ("cat; printf 'a\\n\\n'", b""),
            ("cd /; export V=1; exit 0", b""),
            ('pwd; echo "${V-unset} ${_rmk-no mark}"', b""),
        ]
    )

    assert results[0] == (3, b"in\n\n", b"oops\n")
    assert results[1] == (0, b"none\n", b"")
    assert results[2] == (0, b"x", b"")
    assert results[3] == (0, b"a\n\n", b"")
    assert results[5][1].endswith(b"unset no mark\n")
    assert results[5][1] != b"/\n"


def test_a_frame_split_across_chunks_is_found_and_cut_off() -> None:
    nonce = new_nonce()
    frames = Frames(nonce)
    stream = f"output\n\n{nonce} 7\n".encode()
    for at in range(0, len(stream), 5):
        assert frames.rc is None
        frames.add_out(stream[at : at + 5])
    frames.add_err(f"warn\n{nonce}"[:-3].encode())
    assert not frames.done
    frames.add_err(f"{nonce}"[-3:].encode() + b"\n")

    assert frames.done
    assert frames.result() == (7, b"output\n", b"warn")


def test_output_that_only_looks_like_a_frame_does_not_end_it() -> None:
    frames = Frames(new_nonce())
    frames.add_out(b"\nredmedic-kept-0123 0\n")  # another shell's mark: not this one's

    assert frames.rc is None
