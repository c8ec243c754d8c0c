"""YAML files as plain Python values that still know where each value was written.

Every loader of user files (inventory, playbook) needs two things from YAML: the data as
plain dicts/lists/scalars, and `FILE:LINE:COL` of any part of it for error messages. This
module owns both, and owns PyYAML: its exceptions never leave here.

    doc = load_yaml("inventory.yaml", error=InventoryError)
    doc.data                                   # plain value, e.g. {"all": {"hosts": ...}}
    doc.where("all", "hosts", "r1", "port")    # "inventory.yaml:7:15" (value node)
    doc.where_key("all", "hosts", "r1", "port")  # "inventory.yaml:7:9" (the key itself)

Paths are mapping keys and list indexes (ints), exactly the shape of pydantic's error `loc`.
A path that does not exist falls back to its nearest existing parent, so a "missing key"
error points at the mapping that lacks it.

Stricter than plain `yaml.safe_load`: a key repeated in one mapping is an error naming
both lines (YAML would silently keep the last one), and a file must hold one document.
Safe loading only: no Python object tags. Merge keys (`<<: *defaults`) work. One tag
more: Ansible's `!vault |` value is decrypted with the caller's Vault (refused without one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml
import yaml.constructor
import yaml.nodes

from redmedic.errors import InputError
from redmedic.model.vault import Vault, is_encrypted, refuse

# libyaml when PyYAML was built with it: same results, marks included, much faster.
_Loader: type[yaml.CSafeLoader | yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_VAULT_TAG = "!vault"
# The most values a file may hold once every alias is expanded: far above any real inventory
# or playbook, far below what an alias bomb ("billion laughs") would build in memory.
MAX_VALUES = 1_000_000
PathPart = str | int


@dataclass(frozen=True)
class YamlDoc:
    """One parsed YAML file: `data` is the plain value, `where()` locates any part of it."""

    source: str
    data: Any
    _root: yaml.nodes.Node | None = field(repr=False, compare=False)
    # Per mapping node: its keys as plain values -> (key node, value node); built on demand.
    _index: dict[int, dict[object, tuple[yaml.nodes.Node, yaml.nodes.Node]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def where(self, *path: PathPart) -> str:
        """`SOURCE:LINE:COL` (1-based) of the value at `path`, or of its nearest existing parent."""
        return self._format(self._find(path, want_key=False))

    def where_key(self, *path: PathPart) -> str:
        """Like `where`, but points at the mapping key that names the value (its first char)."""
        return self._format(self._find(path, want_key=True))

    def _format(self, node: yaml.nodes.Node | None) -> str:
        if node is None:
            return self.source
        mark = node.start_mark
        return f"{self.source}:{mark.line + 1}:{mark.column + 1}"

    def _find(self, path: tuple[PathPart, ...], *, want_key: bool) -> yaml.nodes.Node | None:
        found = node = self._root
        for part in path:
            if node is None:
                break
            key_node, node = self._child(node, part)
            if node is None:
                break
            found = key_node if want_key and key_node is not None else node
        return found

    def _child(
        self, node: yaml.nodes.Node, part: PathPart
    ) -> tuple[yaml.nodes.Node | None, yaml.nodes.Node | None]:
        if isinstance(node, yaml.nodes.MappingNode):
            index = self._index.get(id(node))
            if index is None:
                # Later keys overwrite earlier ones, as in the constructed dict (merge keys
                # were flattened in front of the mapping's own keys).
                index = {
                    _key_value(key_node): (key_node, value_node)
                    for key_node, value_node in node.value
                    if key_node.tag != _MERGE_TAG and isinstance(key_node, yaml.nodes.ScalarNode)
                }
                self._index[id(node)] = index
            return index.get(part, (None, None))
        is_list = isinstance(node, yaml.nodes.SequenceNode)
        if is_list and isinstance(part, int) and 0 <= part < len(node.value):
            return None, node.value[part]
        return None, None


def load_yaml(
    path: str | os.PathLike[str],
    *,
    error: type[InputError] = InputError,
    vault: Vault | None = None,
) -> YamlDoc:
    """Read and parse a YAML file; any problem is raised as `error` with FILE:LINE:COL and a hint.

    `error` is the caller's exception class (InventoryError, PlaybookError, ...). The
    source name in messages is `path` as given, so it reads like the user's command line.
    A file encrypted with Ansible Vault is opened with `vault`, or refused without one.
    """
    source = os.fspath(path)
    text, encrypted = read_text(source, error=error, vault=vault)
    doc = parse_yaml(text, source, error=error, vault=vault)
    if encrypted and vault is not None:
        vault.reveal(doc.data)  # the whole file was secret: so is every value in it
    return doc


def read_text(
    source: str,
    *,
    error: type[InputError] = InputError,
    vault: Vault | None = None,
    not_text_hint: str = "save the file as UTF-8",
) -> tuple[str, bool]:
    """A text input file's contents, and whether it was vault-encrypted (then decrypted with
    `vault`, or refused without one); every problem is `error` naming the file."""
    try:
        with open(source, encoding="utf-8-sig") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise error("file not found", where=source, hint="check the path") from None
    except IsADirectoryError:
        raise error("is a directory, not a YAML file", where=source, hint="pass a file") from None
    except UnicodeDecodeError as exc:
        raise error(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})",
            where=source,
            hint=not_text_hint,
        ) from None
    except OSError as exc:
        raise error(
            f"cannot read: {exc.strerror or exc}", where=source, hint="check its permissions"
        ) from None
    if not is_encrypted(text):
        return text, False
    if vault is None:
        raise refuse(source, error)
    return vault.decrypt(text, where=source, error=error), True


def parse_yaml(
    text: str,
    source: str = "<string>",
    *,
    error: type[InputError] = InputError,
    vault: Vault | None = None,
) -> YamlDoc:
    """Parse YAML text; `source` names it in `where()` results and in error messages.

    A `!vault` value becomes its plain text, decrypted with `vault`; without one it is
    refused with its FILE:LINE:COL and the flags to pass.
    """
    loader = _Loader(text)
    # Per loader, not on the shared (C)SafeLoader class: PyYAML looks constructors up on self.
    loader.yaml_constructors = {  # type: ignore[misc]
        **loader.yaml_constructors,
        _VAULT_TAG: _vault_constructor(vault, source, error),
    }
    try:
        root = loader.get_single_node()
        if root is None:
            return YamlDoc(source, None, None)
        _check_expansion(root, source, error)
        _check_duplicate_keys(root, source, error)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        raise _translate(exc, text, source, error) from None
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML error we know is marked
        raise error(f"invalid YAML: {exc}", where=source, hint="fix the YAML syntax") from None
    finally:
        loader.dispose()
    return YamlDoc(source, data, root)


def _vault_constructor(vault: Vault | None, source: str, error: type[InputError]) -> Any:
    """The constructor of `!vault` values for one parse: decrypt, or refuse with the place."""

    def construct(loader: Any, node: yaml.nodes.Node) -> str:
        mark = node.start_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}"
        if not isinstance(node, yaml.nodes.ScalarNode) or not is_encrypted(node.value):
            raise error(
                "a !vault value must be the text `ansible-vault encrypt_string` printed",
                where=where,
                hint="paste its whole output: `!vault |` and the indented $ANSIBLE_VAULT lines",
            )
        if vault is None:
            raise refuse(where, error)
        return vault.decrypt(node.value, where=where, error=error)

    return construct


def _translate(
    exc: yaml.MarkedYAMLError, text: str, source: str, error: type[InputError]
) -> InputError:
    """PyYAML's error as ours: position of the problem, its wording, and a fitting hint."""
    mark = exc.problem_mark or exc.context_mark
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    problem = exc.problem or "syntax error"
    if exc.context and exc.context_mark and exc.context_mark is not mark:
        problem = f"{problem} ({exc.context} at line {exc.context_mark.line + 1})"
    elif exc.context:
        problem = f"{exc.context}, {problem}"
    lines = text.splitlines()
    line = lines[mark.line] if mark and mark.line < len(lines) else ""
    indent = line[: len(line) - len(line.lstrip())]
    if "\t" in indent or "'\\t'" in problem:  # libyaml does not name the tab; look ourselves
        hint = "indent with spaces; YAML does not allow tabs there"
    elif "expected a single document" in problem:
        hint = "keep one document per file: remove the extra '---'"
    elif "could not determine a constructor" in problem:
        hint = "remove the '!tag': only plain YAML values are allowed"
    else:
        hint = "fix the YAML there: check indentation, quoting, and the ':' after each key"
    return error(f"invalid YAML: {problem}", where=where, hint=hint)


def _key_value(node: yaml.nodes.ScalarNode) -> object:
    """The plain value of a scalar mapping key, as the constructed dict has it."""
    if node.tag == _STR_TAG:  # nearly every key: skip building a constructor
        return node.value
    return yaml.constructor.SafeConstructor().construct_object(node)


def _children(node: yaml.nodes.Node) -> list[yaml.nodes.Node]:
    if isinstance(node, yaml.nodes.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.nodes.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.nodes.Node, source: str, error: type[InputError]) -> None:
    """Refuse a file whose aliases expand to more than MAX_VALUES values, or into themselves.

    Counted on the composed nodes, each shared node once (memoised), so the check costs as
    much as the text is long however large the expansion would be; the error points at the
    first anchor whose expansion is too large.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.nodes.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size <= MAX_VALUES:
                continue
            problem = f"aliases expand to more than {MAX_VALUES:,} values"
        elif key in sizes:
            continue
        elif key in on_path:
            problem = "an alias refers to the value that contains it"
        else:
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
            continue
        mark = node.start_mark
        raise error(
            problem,
            where=f"{source}:{mark.line + 1}:{mark.column + 1}",
            hint="write the values out, or use fewer nested aliases (`*name`)",
        )


def _check_duplicate_keys(root: yaml.nodes.Node, source: str, error: type[InputError]) -> None:
    """Raise for the first (by line) key that repeats an earlier key of the same mapping."""
    seen_nodes: set[int] = set()
    stack = [root]
    duplicate: tuple[yaml.nodes.Node, yaml.nodes.Node, object] | None = None
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # aliases share nodes; recursive aliases would loop
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.nodes.MappingNode):
            first: dict[object, yaml.nodes.Node] = {}
            for key_node, value_node in node.value:
                stack.append(value_node)
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.nodes.ScalarNode):
                    continue
                key = _key_value(key_node)
                earlier = first.setdefault(key, key_node)
                if earlier is not key_node and (
                    duplicate is None or key_node.start_mark.index < duplicate[1].start_mark.index
                ):
                    duplicate = (earlier, key_node, key)
        elif isinstance(node, yaml.nodes.SequenceNode):
            stack.extend(node.value)
    if duplicate is not None:
        earlier, again, key = duplicate
        mark = again.start_mark
        raise error(
            f"duplicate key {key!r} (first at line {earlier.start_mark.line + 1}, "
            f"again at line {mark.line + 1})",
            where=f"{source}:{mark.line + 1}:{mark.column + 1}",
            hint="remove or rename one of them; YAML would silently keep only the last",
        )
