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
    available: int = 0  # sources the answer was given to cite

    @property
    def resolves(self) -> bool | None:
        """True: the answer cites, and every marker names a source it was given. False: a marker names none of them,
        or the answer was given sources and cites none (its claims are unsourced). None: nothing to check (no
        sources and no markers, as in a "no known narrative" answer)."""
        if self.unresolved:
            return False
        if self.total:
            return True
        return False if self.available else None

    @property
    def valid(self) -> bool:
        """No citation problem: every marker resolves, and an answer given sources cites them."""
        return self.resolves is not False

    @property
    def valid_rate(self) -> float | None:
        return None if self.total == 0 else (self.total - len(self.unresolved)) / self.total


def check_citations(answer: str, citation_ids: set[int]) -> CitationCheck:
    found = markers(answer)
    return CitationCheck(total=len(found), unresolved=[n for n in found if n not in citation_ids], available=len(citation_ids))
