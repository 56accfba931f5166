"""Finds persuasion techniques and campaign tactics in a post with each card's cue patterns."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..corpus import TacticCard

MAX_SPANS_PER_TACTIC = 5


@dataclass(frozen=True)
class TacticSpanHit:
    tactic_id: str
    start: int
    end: int


class TacticDetector:
    def __init__(self, cards: list[TacticCard]):
        self.cards = {card.id: card for card in cards}
        self.patterns: dict[str, list[re.Pattern]] = {}
        for card in cards:
            compiled = []
            for cue in card.cues.all():
                try:
                    compiled.append(re.compile(cue, re.IGNORECASE))
                except re.error:
                    continue  # validate reports it; a bad cue must not stop analysis
            if compiled:
                self.patterns[card.id] = compiled

    def find(self, text: str) -> dict[str, list[tuple[int, int]]]:
        """Tactic id -> merged [start, end) spans in `text` (normalised text)."""
        found: dict[str, list[tuple[int, int]]] = {}
        for tactic_id, patterns in self.patterns.items():
            spans = []
            for pattern in patterns:
                for match in pattern.finditer(text):
                    if match.end() > match.start():
                        spans.append(match.span())
            if spans:
                found[tactic_id] = _merge(spans)[:MAX_SPANS_PER_TACTIC]
        return found


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]
