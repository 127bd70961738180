"""Step 1 of loading promenade.yaml: YAML text to plain data with the line of every key.

Why not `yaml.safe_load`: it silently keeps the last of two duplicate keys, turns
`no`/`off` into False and forgets where anything was written. We compose the node tree
instead and walk it ourselves, so that every problem can name its line, duplicates are
refused, and values that are text by nature (`command`, `directory`, `env_file` and env
values) keep exactly the characters the user typed: `DEBUG: yes` gives "yes",
`VERSION: 1.10` gives "1.10" (not the float 1.1), `command: true` runs the `true` program.
Mapping keys are always kept as typed too, so a service named `no` stays "no".

YAML merge keys (`<<: *common`) work; top-level keys starting with `x-` are ignored so
they can hold anchors, as in docker-compose files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path_ = tuple[str | int, ...]

MAX_NODES = 100_000  # alias expansion bomb guard ("billion laughs")
MAX_DEPTH = 40
NULL_TAG = "tag:yaml.org,2002:null"
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class Document:
    """Plain data (dicts, lists, scalars) plus the 1-based line of every key and item,
    and, for one merged from several files, the file that set each of them."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    #: how the file is named in messages (`promenade.yaml`)
    file: str = ""
    #: for a merged document: paths set by another file than `file`
    files: dict[Path_, str] = field(default_factory=dict)

    def line(self, path: Path_) -> int:
        """The line of `path`, or of its nearest recorded parent (a missing key's mapping)."""
        return self.where(path)[1]

    def where(self, path: Path_) -> tuple[str, int]:
        """The file and line of `path`, or of its nearest recorded parent."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.files.get(path[:end], self.file), self.lines[path[:end]]
        return self.file, 1


def merge_documents(base: Document, top: Document) -> Document:
    """`top` merged on top of `base`, as override files are: mappings key by key, lists
    and scalars replaced. Each path keeps the file and line that set it (a mapping in
    both keeps where it was first written)."""
    merged = Document(None, dict(base.lines), base.file, dict(base.files))
    merged.data = _merge(base.data, top.data, (), merged, top)
    return merged


def _merge(below: Any, above: Any, path: Path_, into: Document, top: Document) -> Any:
    if isinstance(below, dict) and isinstance(above, dict):
        result = dict(below)
        for key, value in above.items():
            key_path = (*path, key)
            if key in below and isinstance(below[key], dict) and isinstance(value, dict):
                result[key] = _merge(below[key], value, key_path, into, top)
            else:
                _take(key_path, into, top)
                result[key] = value
        return result
    _take(path, into, top)
    return above


def _take(path: Path_, into: Document, top: Document) -> None:
    """`path` and everything under it now come from `top`."""
    size = len(path)
    for old in [p for p in into.lines if p[:size] == path]:
        del into.lines[old]
        into.files.pop(old, None)
    for new, line in top.lines.items():
        if new[:size] == path:
            into.lines[new] = line
            into.files[new] = top.files.get(new, top.file)


@dataclass
class YamlProblem:
    line: int
    path: Path_
    message: str


class _TooBig(Exception):
    pass


def keep_text(path: Path_) -> bool:
    """Paths whose scalars stay as typed: commands, paths and env values are text."""
    if len(path) == 3 and path[0] == "services":
        return path[2] in ("command", "directory", "env_file")
    if len(path) == 4 and path[0] == "services" and path[2] == "env":
        return True
    return len(path) == 3 and path[:2] == ("defaults", "env")


#: libyaml's parser when PyYAML has it (7x faster on a config, and the same nodes and
#: marks); the pure-Python one otherwise.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str) -> tuple[Document | None, list[YamlProblem]]:
    """Compose and walk `text`; a syntax error is one problem and no document."""
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        detail = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return None, [YamlProblem(line, (), f"YAML syntax error: {detail}")]
    except yaml.YAMLError as exc:
        return None, [YamlProblem(1, (), f"YAML syntax error: {exc}")]
    except RecursionError:
        return None, [YamlProblem(1, (), "YAML is nested too deeply")]
    except UnicodeEncodeError as exc:   # libyaml's parser is handed UTF-8: a lone surrogate
        return None, [YamlProblem(1, (), f"YAML syntax error: not UTF-8 text ({exc.reason})")]
    if root is None or (isinstance(root, ScalarNode) and root.tag == NULL_TAG):
        return None, [YamlProblem(1, (), "the file is empty; it needs a 'services:' mapping")]
    walker = _Walker()
    try:
        data = walker.value(root, ())
    except _TooBig as exc:
        return None, [YamlProblem(root.start_mark.line + 1, (), str(exc))]
    except Exception as exc:  # no input may crash the loader
        # PyYAML's constructors raise whatever they meet (a TypeError for a merge that
        # refers to itself); any of it is a problem at the last node we were reading.
        message = f"cannot read this YAML ({type(exc).__name__}: {exc})"
        return None, [YamlProblem(walker.line, walker.path, message)]
    doc = Document(data, walker.lines)
    doc.lines.setdefault((), root.start_mark.line + 1)
    return doc, walker.problems


class _Walker:
    """Turns composed nodes into plain data, recording lines and refusing duplicates."""

    def __init__(self) -> None:
        self.constructor = SafeConstructor()
        self.lines: dict[Path_, int] = {}
        self.problems: list[YamlProblem] = []
        self.budget = MAX_NODES
        self.active: set[int] = set()
        self.line = 1  # where the walk is, for a problem nobody foresaw
        self.path: Path_ = ()

    def value(self, node: Node, path: Path_) -> Any:
        self.line, self.path = node.start_mark.line + 1, path
        self.budget -= 1
        if self.budget < 0:
            raise _TooBig(f"the YAML expands to more than {MAX_NODES} values (alias bomb?)")
        if len(path) > MAX_DEPTH or id(node) in self.active:
            self._problem(node, path, "YAML is nested too deeply (or an alias refers to itself)")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return [self._item(item, path, i) for i, item in enumerate(node.value)]
            return self._scalar(node, path)
        finally:
            self.active.discard(id(node))

    def _item(self, node: Node, path: Path_, index: int) -> Any:
        item_path = (*path, index)
        self.lines[item_path] = node.start_mark.line + 1
        return self.value(node, item_path)

    def _scalar(self, node: Node, path: Path_) -> Any:
        if keep_text(path) and node.tag != NULL_TAG:
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            self._problem(node, path, f"cannot read value {node.value!r}: {exc}")
            return None

    def _mapping(self, node: MappingNode, path: Path_) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merged.update(self._merge(value_node, path))
        own: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            if not isinstance(key_node, ScalarNode):
                self._problem(key_node, path, "keys must be plain words, not lists or mappings")
                continue
            key = key_node.value
            key_path = (*path, key)
            if key in own:
                first = self.lines[key_path]
                self._problem(key_node, key_path, f"duplicate key {key!r} (first on line {first})")
                continue
            self.lines[key_path] = key_node.start_mark.line + 1
            own[key] = self.value(value_node, key_path)
        merged.update(own)
        return merged

    def _merge(self, node: Node, path: Path_) -> dict[str, Any]:
        """`<<: *a` or `<<: [*a, *b]`; earlier sources win, as in the YAML merge spec."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        result: dict[str, Any] = {}
        for source in reversed(sources):
            if not isinstance(source, MappingNode):
                self._problem(source, path, "'<<' merges only mappings")
                continue
            if id(source) in self.active:
                self._problem(source, path, "'<<' merges a mapping into itself")
                continue
            merged = self.value(source, path)
            if isinstance(merged, dict):
                result.update(merged)
        return result

    def _problem(self, node: Node, path: Path_, message: str) -> None:
        self.problems.append(YamlProblem(node.start_mark.line + 1, path, message))
