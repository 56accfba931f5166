"""Read the knowledge base from disk and say precisely what is wrong with it.

Every problem is reported with its file and line; a broken record is left
out rather than stopping the load, so one bad card never takes the whole
assistant down. `validate` (in validation.py) adds the cross-record checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .models import Campaign, Example, NarrativeCard, SourceRecord, TacticCard

T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class KnowledgeBase:
    root: Path
    narratives: dict[str, NarrativeCard] = field(default_factory=dict)
    tactics: dict[str, TacticCard] = field(default_factory=dict)
    sources: dict[str, SourceRecord] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)
    # Named term groups that claim frames refer to as "@name" (corpus/concepts.yaml)
    concepts: dict[str, list[str]] = field(default_factory=dict)
    # What the knowledge base covers: names, languages, attribution words (corpus/campaign.yaml; neutral if absent)
    campaign: Campaign = field(default_factory=Campaign)
    problems: list[Problem] = field(default_factory=list)
    # Where each record came from, for error messages: (kind, id) -> (file, line)
    origins: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    # Line of each field inside a card's front matter: (kind, id) -> {key path: line}
    field_lines: dict[tuple[str, str], dict[tuple, int]] = field(default_factory=dict)
    # (file, line) of each example, parallel to `examples`
    example_origins: list[tuple[str, int]] = field(default_factory=list)

    def examples_in(self, *splits: str) -> list[Example]:
        return [example for example in self.examples if example.split in splits]


# libyaml's parser when PyYAML was built with it: the pure-Python one takes seconds on the shipped corpus.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _key_lines(node: yaml.Node, prefix: tuple = ()) -> dict[tuple, int]:
    """Map each key path of a YAML node tree to its 1-based line."""
    lines: dict[tuple, int] = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, key.value)
            lines[path] = key.start_mark.line + 1
            lines.update({k: v for k, v in _key_lines(value, path).items() if k != path})
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_key_lines(item, (*prefix, index)))
    return lines


def _line_for(loc: tuple, lines: dict[tuple, int], offset: int) -> int:
    loc = tuple(loc)
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, 1) + offset


def _validation_problems(error: ValidationError, file: str, lines: dict[tuple, int], offset: int) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        where = ".".join(str(part) for part in loc) or "record"
        kind = item["type"]
        message = f"missing field '{where}'" if kind == "missing" else f"{where}: {item['msg']}"
        problems.append(Problem(file, _line_for(loc, lines, offset), message))
    return problems


def split_front_matter(text: str) -> tuple[str, str, int] | None:
    """(yaml, body, line of the first yaml line) or None when there is no front matter."""
    if not text.startswith("---"):
        return None
    lines = text.splitlines(keepends=True)
    for index in range(1, len(lines)):
        if lines[index].rstrip() == "---":
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), 2
    return None


def load_card(path: Path, model: type[T], display: str, lines_out: dict | None = None) -> tuple[T | None, list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return None, [Problem(display, 1, f"cannot read file: {error}")]
    parts = split_front_matter(text)
    if parts is None:
        return None, [Problem(display, 1, "no YAML front matter (the file must start with a '---' line and close it with another)")]
    front, body, first_line = parts
    try:
        node = yaml.compose(front, Loader=SAFE_LOADER)
        data = yaml.load(front, Loader=SAFE_LOADER)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = (mark.line + first_line) if mark else first_line
        return None, [Problem(display, line, f"invalid YAML: {getattr(error, 'problem', error)}")]
    if not isinstance(data, dict):
        return None, [Problem(display, first_line, "front matter must be a mapping of fields")]
    lines = _key_lines(node) if node is not None else {}
    if lines_out is not None:
        lines_out.update({key: line + first_line - 1 for key, line in lines.items()})
    data = {**data, "body": body.strip()}
    try:
        record = model.model_validate(data)
    except ValidationError as error:
        return None, _validation_problems(error, display, lines, first_line - 1)
    expected = path.stem
    if record.id != expected:  # type: ignore[attr-defined]
        return record, [Problem(display, _line_for(("id",), lines, first_line - 1), f"id '{record.id}' does not match the file name '{expected}'")]  # type: ignore[attr-defined]
    return record, []


def load_examples(path: Path, display: str, split: str | None = None) -> tuple[list[tuple[Example, int]], list[Problem]]:
    """Examples with their line numbers; `split` overrides a missing split field."""
    examples: list[tuple[Example, int]] = []
    problems: list[Problem] = []
    try:
        raw = path.read_bytes()
    except OSError as error:
        return [], [Problem(display, 1, f"cannot read file: {error}")]
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data: Any = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            problems.append(Problem(display, number, "line is not valid UTF-8"))
            continue
        except json.JSONDecodeError as error:
            problems.append(Problem(display, number, f"invalid JSON: {error.msg} (column {error.colno})"))
            continue
        if not isinstance(data, dict):
            problems.append(Problem(display, number, "each line must be a JSON object"))
            continue
        if split and "split" not in data:
            data["split"] = split
        try:
            examples.append((Example.model_validate(data), number))
        except ValidationError as error:
            for item in error.errors():
                where = ".".join(str(part) for part in item["loc"]) or "record"
                message = f"missing field '{where}'" if item["type"] == "missing" else f"{where}: {item['msg']}"
                problems.append(Problem(display, number, message))
    return examples, problems


def load_campaign(path: Path, display: str) -> tuple[Campaign | None, list[Problem]]:
    """corpus/campaign.yaml: a plain YAML mapping (no front matter)."""
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=SAFE_LOADER)
        data = yaml.load(text, Loader=SAFE_LOADER)
    except (OSError, UnicodeDecodeError) as error:
        return None, [Problem(display, 1, f"cannot read file: {error}")]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        return None, [Problem(display, (mark.line + 1) if mark else 1, f"invalid YAML: {getattr(error, 'problem', error)}")]
    if data is None:
        return Campaign(), []
    if not isinstance(data, dict):
        return None, [Problem(display, 1, "expected a mapping of fields")]
    lines = _key_lines(node) if node is not None else {}
    try:
        return Campaign.model_validate(data), []
    except ValidationError as error:
        return None, _validation_problems(error, display, lines, 0)


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.parent))
    except ValueError:
        return str(path)


def load_knowledge_base(corpus_dir: Path, extra_example_files: tuple[Path, ...] = ()) -> KnowledgeBase:
    """Load cards, sources and examples; also the dev/test splits kept in ../evals."""
    corpus_dir = Path(corpus_dir)
    kb = KnowledgeBase(root=corpus_dir)
    if not corpus_dir.is_dir():
        kb.problems.append(Problem(str(corpus_dir), 1, "corpus directory not found"))
        return kb
    kinds: list[tuple[str, type[BaseModel], dict]] = [
        ("narratives", NarrativeCard, kb.narratives),
        ("tactics", TacticCard, kb.tactics),
        ("sources", SourceRecord, kb.sources),
    ]
    for folder, model, target in kinds:
        for path in sorted((corpus_dir / folder).glob("*.md")):
            display = _display(path, corpus_dir)
            lines: dict[tuple, int] = {}
            record, problems = load_card(path, model, display, lines)
            kb.problems.extend(problems)
            if record is None:
                continue
            if record.id in target:  # type: ignore[attr-defined]
                kb.problems.append(Problem(display, 1, f"duplicate {folder[:-1]} id '{record.id}'"))  # type: ignore[attr-defined]
                continue
            target[record.id] = record  # type: ignore[attr-defined]
            kb.origins[(folder, record.id)] = (display, 1)  # type: ignore[attr-defined]
            kb.field_lines[(folder, record.id)] = lines  # type: ignore[attr-defined]
    concepts = corpus_dir / "concepts.yaml"
    if concepts.is_file():
        try:
            data = yaml.load(concepts.read_text(encoding="utf-8"), Loader=SAFE_LOADER) or {}
        except yaml.YAMLError as error:
            data = None
            mark = getattr(error, "problem_mark", None)
            kb.problems.append(Problem("concepts.yaml", (mark.line + 1) if mark else 1, f"invalid YAML: {error}"))
        if data is not None:
            if not isinstance(data, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) and x.strip() for x in v) for k, v in data.items()
            ):
                kb.problems.append(Problem("concepts.yaml", 1, "expected a mapping of names to lists of terms"))
            else:
                kb.concepts = {k: list(v) for k, v in data.items()}
    campaign_file = corpus_dir / "campaign.yaml"
    if campaign_file.is_file():
        campaign, problems = load_campaign(campaign_file, _display(campaign_file, corpus_dir))
        kb.problems.extend(problems)
        if campaign is not None:
            kb.campaign = campaign
    example_files = [(path, "train") for path in sorted((corpus_dir / "examples").glob("*.jsonl"))]
    evals_dir = corpus_dir.parent / "evals"
    for split in ("dev", "test"):
        if (evals_dir / f"{split}.jsonl").is_file():
            example_files.append((evals_dir / f"{split}.jsonl", split))
    example_files.extend((Path(path), "user") for path in extra_example_files if Path(path).is_file())
    for path, split in example_files:
        display = _display(path, corpus_dir)
        loaded, problems = load_examples(path, display, split)
        kb.problems.extend(problems)
        for example, line in loaded:
            kb.examples.append(example)
            kb.example_origins.append((display, line))
    return kb
