"""Claim frames: does a sentence have the shape of one of a narrative's claims?

A frame is a list of term groups written on the card (for example: a virus word, a US word and an
origin word). A sentence that names a term of every group has the claim's shape, whatever else it
says, so a one-line headline such as "the virus was made in an American lab" is found although it
shares no marker phrase and few words with any example. Frames say nothing about stance: a fact-check
of the same claim has the same shape. The matcher weighs frame hits with stance cues and the
nearest examples; frames alone never decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..corpus import NarrativeCard

_LATIN_EDGE = re.compile(r"[A-Za-z0-9]")


def term_pattern(term: str) -> str:
    """A case-insensitive pattern for one term: Latin terms at word boundaries, "*" at the end for any ending."""
    prefix = term.endswith("*")
    body = term[:-1] if prefix else term
    pattern = re.escape(body.lower()).replace(r"\ ", r"[\s\-]+")
    if _LATIN_EDGE.match(body[:1]):
        pattern = r"(?<![\w])" + pattern
    if prefix:
        pattern += r"\w*"
    elif _LATIN_EDGE.match(body[-1:]):
        pattern += r"(?![\w])"
    return pattern


def expand(group: list[str], concepts: dict[str, list[str]]) -> list[str]:
    terms: list[str] = []
    for term in group:
        terms.extend(concepts.get(term[1:], []) if term.startswith("@") else [term])
    return list(dict.fromkeys(terms))


@dataclass(frozen=True)
class FrameHit:
    narrative: int
    spans: tuple[tuple[int, int], ...]  # the terms found, one per group, in the text scanned


class ClaimFrames:
    """Each narrative's frames compiled as one pattern per term group; groups shared between frames are scanned once."""

    def __init__(self, cards: list[NarrativeCard], concepts: dict[str, list[str]]):
        self.ids = [card.id for card in cards]
        self._patterns: dict[tuple[str, ...], re.Pattern] = {}
        self.frames: list[list[tuple[int, list[tuple[str, ...]]]]] = []
        for index, card in enumerate(cards):
            compiled = []
            for frame in card.frames:
                keys = []
                for group in frame:
                    terms = tuple(sorted(expand(group, concepts), key=lambda t: (-len(t), t)))
                    if terms and terms not in self._patterns:
                        self._patterns[terms] = re.compile("|".join(term_pattern(t) for t in terms))
                    keys.append(terms)
                if keys and all(keys):
                    compiled.append((index, keys))
            self.frames.append(compiled)

    def scan(self, text: str) -> list[FrameHit]:
        """Frames whose every group has a term in `text` (normalised), with one found span per group."""
        lowered = text.lower()
        if len(lowered) != len(text):
            lowered = text  # a letter that lower-cases to two would shift spans; the patterns then see the text as is
        found: dict[tuple[str, ...], tuple[int, int] | None] = {}
        hits = []
        for frames in self.frames:
            for index, keys in frames:
                spans = []
                for key in keys:
                    if key not in found:
                        match = self._patterns[key].search(lowered)
                        found[key] = match.span() if match else None
                    if found[key] is None:
                        break
                    spans.append(found[key])
                else:
                    hits.append(FrameHit(index, tuple(spans)))
        return hits

    def hits(self, text: str) -> np.ndarray:
        out = np.zeros(len(self.ids), dtype=np.float32)
        for hit in self.scan(text):
            out[hit.narrative] = 1.0
        return out

    def matrix(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.ids)), dtype=np.float32)
        return np.stack([self.hits(text) for text in texts])
