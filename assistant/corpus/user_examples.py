"""Labelled posts saved by analysts: `user-examples.jsonl` (joins the index) and `user-eval.jsonl` (scored only).

Each save is one line written with a single append, and flushed to disk before it counts as saved. A file
whose last line was cut short (a full disk, a crash) gets a newline first, so the broken line stays one bad
line that validation reports, and the new line is not merged into it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .models import Example


def append_line(path: Path, line: str) -> None:
    """Appends one JSON line; on an error nothing is left half-written by this call."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = line.rstrip("\n").encode("utf-8") + b"\n"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"only {written} of {len(data)} bytes were written to {path}")
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)  # roll back a partial line
            raise
    finally:
        os.close(fd)


def save_example(path: Path, example: Example) -> None:
    append_line(path, example.model_dump_json())


def save_eval_record(path: Path, example: Example, tactic_ids: list[str]) -> None:
    record = {"id": example.id, "text": example.text, "narratives": example.narratives, "tactics": tactic_ids, "lang": example.lang}
    append_line(path, json.dumps(record, ensure_ascii=False))
