"""Citation markers in an answer, and whether each one resolves."""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER = re.compile(r"\[(\d{1,3})\]")


def markers(answer: str) -> list[int]:
    return [int(number) for number in MARKER.findall(answer)]


@dataclass(frozen=True)
class CitationCheck:
    total: int
    unresolved: list[int]

    @property
    def valid(self) -> bool:
        return not self.unresolved

    @property
    def valid_rate(self) -> float | None:
        return None if self.total == 0 else (self.total - len(self.unresolved)) / self.total


def check_citations(answer: str, citation_ids: set[int]) -> CitationCheck:
    found = markers(answer)
    return CitationCheck(total=len(found), unresolved=[n for n in found if n not in citation_ids])
