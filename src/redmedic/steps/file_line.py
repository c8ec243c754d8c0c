"""`file_line`: make sure one line is present in (or absent from) a text file.

Semantics follow Ansible's `lineinfile`, which our users know: with `regexp`, the last
matching line is replaced; without a match the line is inserted after the last match of
`insertafter` (or before the last match of `insertbefore`), else at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from redmedic.connection.base import RemoteFile
from redmedic.model.plan import Change, FileChange, StepResult
from redmedic.steps.base import PlanError, StepArgs, StepContext, StepType


class FileLineArgs(StepArgs):
    path: str = Field(description="File to edit.")
    line: str | None = Field(default=None, description="The line wanted (state=present).")
    regexp: str | None = Field(
        default=None, description="Python regex; the last matching line is replaced or removed."
    )
    state: Literal["present", "absent"] = Field(default="present", description="present or absent.")
    insertafter: str | None = Field(
        default=None,
        description="Regex (or EOF): insert after its last match when nothing matched.",
    )
    insertbefore: str | None = Field(
        default=None,
        description="Regex (or BOF): insert before its last match when nothing matched.",
    )
    create: bool = Field(default=False, description="Create the file if it does not exist.")
    mode: str | None = Field(
        default=None,
        description="Octal mode, e.g. '0640': a new file's, or a change to an existing file's"
        " (the plan shows 'mode 0600 → 0640'). Unset, an existing file keeps its mode.",
    )

    @field_validator("regexp", "insertafter", "insertbefore")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        """A pattern Python cannot compile is the playbook's mistake: say so before any host."""
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid Python regexp ({exc})") from None
        return value

    @field_validator("mode")
    @classmethod
    def _octal(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"0?[0-7]{3,4}", value):
            raise ValueError("not an octal file mode such as '0640'")
        return value

    @model_validator(mode="after")
    def _needs(self) -> FileLineArgs:
        if self.state == "present" and self.line is None:
            raise ValueError("state=present needs `line`")
        if self.state == "absent" and self.line is None and self.regexp is None:
            raise ValueError("state=absent needs `regexp` or `line`")
        return self


@dataclass(frozen=True)
class FileNow:
    """The file as this run will find it (None: absent), and whether writing it needs sudo."""

    file: RemoteFile | None
    become: bool


def edit_lines(text: str, args: FileLineArgs) -> str:
    """The new text of the file; pure so it is tested as text in, text out."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    pattern = re.compile(args.regexp) if args.regexp else None

    def matches(line: str) -> bool:
        body = line.rstrip("\n")
        return bool(pattern.search(body)) if pattern else body == args.line

    if args.state == "absent":
        kept = [line for line in lines if not matches(line)]
        return text if len(kept) == len(lines) else "".join(kept)

    assert args.line is not None  # enforced by FileLineArgs
    wanted = args.line + "\n"
    hits = [i for i, line in enumerate(lines) if matches(line)]
    if hits:
        index = hits[-1]
        if lines[index] == wanted:
            return text
        lines[index] = wanted
        return "".join(lines)
    if any(line == wanted for line in lines):
        return text
    lines.insert(_insert_index(lines, args), wanted)
    return "".join(lines)


def _insert_index(lines: list[str], args: FileLineArgs) -> int:
    if args.insertbefore and args.insertbefore != "BOF":
        before = [i for i, line in enumerate(lines) if re.search(args.insertbefore, line)]
        if before:
            return before[-1]
    elif args.insertbefore == "BOF":
        return 0
    if args.insertafter and args.insertafter != "EOF":
        after = [i for i, line in enumerate(lines) if re.search(args.insertafter, line)]
        if after:
            return after[-1] + 1
    return len(lines)


class FileLine(StepType[FileLineArgs, FileNow]):
    name = "file_line"
    Args = FileLineArgs
    summary = "Ensure a line is present (optionally replacing a regexp match) or absent in a file."
    read_only = False

    def reads(self, args: FileLineArgs) -> tuple[str, ...]:
        return (args.path,)

    def diagnose(self, args: FileLineArgs, ctx: StepContext) -> FileNow:
        return FileNow(ctx.read_file(args.path), ctx.become)

    def registered(self, found: FileNow) -> StepResult:
        if found.file is None:
            return StepResult(facts={"exists": False, "content": ""})
        content = found.file.content.decode("utf-8", "replace")
        return StepResult(facts={"exists": True, "content": content})

    def plan(self, args: FileLineArgs, found: FileNow) -> list[Change]:
        current = found.file
        if current is None and not args.create:
            if args.state == "absent":
                return []
            raise PlanError(f"{args.path} does not exist — set `create: true` to create it")
        old = current.content if current is not None else b""
        new = edit_lines(old.decode("utf-8", "surrogateescape"), args).encode(
            "utf-8", "surrogateescape"
        )
        if current is not None and new == old:
            return []
        mode = int(args.mode, 8) if args.mode else None
        return [FileChange(args.path, current, new, become=found.become, mode=mode)]
