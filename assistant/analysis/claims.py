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
from ..text import hashtag_form

_LATIN = re.compile(r"[a-z0-9]")  # word boundaries matter for these only: Chinese terms match anywhere
_ACRONYM = re.compile(r"^[A-Z][A-Z.]+$")


def fold(text: str) -> str:
    """The text frames are scanned in: lower case, hyphens read as spaces (same length, so spans stay put)."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a letter that lower-cases to two would shift spans
        lowered = text
    return lowered.replace("-", " ")


def term_key(term: str) -> str:
    """A term as the scan knows it: folded, with its "*" kept (open-ended and whole-word terms differ)."""
    return fold(term.rstrip("*")).strip() + ("*" if term.endswith("*") else "")


def expand(group: list[str], concepts: dict[str, list[str]]) -> list[str]:
    terms: list[str] = []
    for term in group:
        terms.extend(concepts.get(term[1:], []) if term.startswith("@") else [term])
    return list(dict.fromkeys(terms))


class _Terms:
    """Every term of every frame found in one scan: the literals compiled as one trie (as marker phrases are),
    the longest literal at each position, and the shorter literals it starts with counted with it.

    A Latin term matches whole words, unless it ends in "*"; a term written in capitals ("US") is an acronym and
    must match in capitals, so the pronoun "us" is not it.
    """

    def __init__(self, terms: list[str]):
        self.acronyms: dict[str, str] = {}
        variants: dict[str, set[str]] = {}
        for term in terms:
            key = term_key(term)
            literal = key.rstrip("*")
            if not literal:
                continue
            variants.setdefault(literal, set()).add(key)
            joined = hashtag_form(literal)
            if joined is not None:  # "#ForcedLabour" names the term "forced labo*" (see text.hashtag_form)
                variants.setdefault(joined, set()).add(key)
            if _ACRONYM.match(term.rstrip("*")):
                self.acronyms[key] = term.rstrip("*").replace("-", " ")
        self.variants = variants
        literals = sorted(variants)
        # Each literal with the shorter literals it begins with (any of them may be open-ended or end a word there).
        self.within = {literal: [literal[:cut] for cut in range(1, len(literal) + 1) if literal[:cut] in variants] for literal in literals}
        self.pattern = re.compile(f"(?=({_trie(literals)}))") if literals else None

    def found(self, text: str) -> dict[str, tuple[int, int]]:
        """term key -> its first (start, end) in `text`."""
        out: dict[str, tuple[int, int]] = {}
        if self.pattern is None:
            return out
        folded = fold(text)
        for match in self.pattern.finditer(folded):
            start = match.start(1)
            for literal in self.within.get(match.group(1), ()):
                end = start + len(literal)
                word_goes_on = bool(_LATIN.match(literal[-1])) and end < len(folded) and bool(_LATIN.match(folded[end]))
                for key in self.variants[literal]:
                    if word_goes_on and not key.endswith("*"):
                        continue  # a whole-word term inside a longer word
                    if key in self.acronyms and text[start:end].replace("-", " ") != self.acronyms[key]:
                        continue
                    out.setdefault(key, (start, end))
        return out


def _trie(literals: list[str]) -> str:
    """A pattern for any of the literals, the longest first at a position; Latin-initial ones at a word start."""
    trie: dict = {}
    for literal in literals:
        node = trie
        for char in literal:
            node = node.setdefault(char, {})
        node[""] = {}

    def branches(node: dict) -> str:
        options = [re.escape(char) + branches(child) for char, child in sorted(node.items()) if char]
        if "" in node:
            options.append("")
        return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"

    return "|".join(
        (r"(?<![a-z0-9])" if _LATIN.match(char) else "") + re.escape(char) + branches(child)
        for char, child in sorted(trie.items())
    )


@dataclass(frozen=True)
class FrameHit:
    narrative: int
    spans: tuple[tuple[int, int], ...]  # the terms found, one per group, in the text scanned


class ClaimFrames:
    """Each narrative's frames over one scan of all their terms (see _Terms): a frame holds where each of its
    groups has a term in the text."""

    def __init__(self, cards: list[NarrativeCard], concepts: dict[str, list[str]]):
        self.ids = [card.id for card in cards]
        groups: dict[tuple[str, ...], int] = {}
        self.frames: list[tuple[int, list[int]]] = []  # (narrative, group numbers)
        terms: list[str] = []
        for index, card in enumerate(cards):
            for frame in card.frames:
                numbers = []
                for group in frame:
                    expanded = tuple(sorted(expand(group, concepts)))
                    if not expanded:
                        numbers = []
                        break
                    numbers.append(groups.setdefault(expanded, len(groups)))
                    terms.extend(expanded)
                if numbers:
                    self.frames.append((index, numbers))
        self.terms = _Terms(terms)
        # term literal -> the groups it belongs to
        self.members: dict[str, list[int]] = {}
        for expanded, number in groups.items():
            for term in expanded:
                key = term_key(term)
                if key.rstrip("*") and number not in self.members.setdefault(key, []):
                    self.members[key].append(number)

    def scan(self, text: str) -> list[FrameHit]:
        """Frames whose every group has a term in `text` (normalised), with one found span per group."""
        found = self.terms.found(text)
        if not found:
            return []
        where: dict[int, tuple[int, int]] = {}
        for key, span in found.items():
            for number in self.members.get(key, ()):
                where.setdefault(number, span)
        return [FrameHit(index, tuple(where[n] for n in numbers)) for index, numbers in self.frames if all(n in where for n in numbers)]

    def hits(self, text: str) -> np.ndarray:
        out = np.zeros(len(self.ids), dtype=np.float32)
        for hit in self.scan(text):
            out[hit.narrative] = 1.0
        return out

    def matrix(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.ids)), dtype=np.float32)
        return np.stack([self.hits(text) for text in texts])
