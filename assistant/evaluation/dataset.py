"""Labelled posts for evaluation (JSON Lines), read with line-numbered errors."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import DatasetError

__all__ = ["DatasetError", "EvalExample", "load_dataset"]


class EvalExample(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    text: str
    narratives: list[str] = []
    tactics: list[str] | None = None
    lang: str | None = None
    source: str | None = None  # optional: where the post came from, for the report's breakdowns

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, value):
        # "owner/repo@commit:path" names the repository: the breakdown is by repository.
        return str(value).split("@", 1)[0] if value else None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value):
        return str(value) if isinstance(value, int) else value

    @field_validator("tactics", mode="before")
    @classmethod
    def _tactics(cls, value):
        # Annotated corpus examples carry spans ({"id": ..., "start": ...}); eval sets may carry bare ids.
        if value is None:
            return None
        return sorted({item["id"] if isinstance(item, dict) else item for item in value})

    @property
    def benign(self) -> bool:
        return not self.narratives


def load_dataset(path: Path, known_narratives: set[str] | None = None) -> list[EvalExample]:
    """Examples in file order; raises DatasetError naming each bad line and every unknown id."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"cannot read {path}: {error.strerror or error}") from None
    examples: list[EvalExample] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            problems.append(f"{path}:{number}: line is not valid UTF-8")
            continue
        except json.JSONDecodeError as error:
            problems.append(f"{path}:{number}: invalid JSON ({error.msg}, column {error.colno})")
            continue
        if not isinstance(data, dict):
            problems.append(f"{path}:{number}: each line must be a JSON object")
            continue
        try:
            example = EvalExample.model_validate(data)
        except ValidationError as error:
            details = "; ".join(
                f"{'.'.join(str(p) for p in item['loc']) or 'record'}: {item['msg']}" for item in error.errors()
            )
            problems.append(f"{path}:{number}: {details}")
            continue
        if example.id in seen:
            problems.append(f"{path}:{number}: duplicate id '{example.id}'")
        seen.add(example.id)
        examples.append(example)
    if known_narratives is not None:
        unknown = sorted({n for example in examples for n in example.narratives} - known_narratives)
        if unknown:
            problems.append(
                f"{path}: unknown narrative id(s): {', '.join(unknown)} (known: {', '.join(sorted(known_narratives))})"
            )
    if problems:
        raise DatasetError("\n".join(problems))
    if not examples:
        raise DatasetError(f"{path}: no examples")
    return examples
