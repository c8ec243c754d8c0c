"""docs/promises.md backs each promise with tests named `path::test_name`.

User story: given the promises page, when I follow any test it names, then that test
exists -- a renamed or deleted test cannot leave a promise standing unbacked.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROMISES = REPO / "docs" / "promises.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def referenced_tests() -> list[tuple[str, str]]:
    return REFERENCE.findall(PROMISES.read_text())


def names_of_tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_test_the_promises_name_exists() -> None:
    references = referenced_tests()
    missing = [
        f"{path}::{name}"
        for path, name in references
        if not (REPO / path).is_file() or name not in names_of_tests_in(REPO / path)
    ]
    assert references, "no test references found in docs/promises.md"
    assert missing == []


def test_every_promise_names_a_test() -> None:
    # Each bullet that states a promise is followed by at least one test reference.
    promises = [line for line in PROMISES.read_text().splitlines() if line.startswith("- ")]
    text = PROMISES.read_text()
    for promise in promises:
        following = text.split(promise, 1)[1].split("\n- ", 1)[0]
        assert REFERENCE.search(following), promise
