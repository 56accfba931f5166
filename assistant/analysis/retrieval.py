"""Retrieves report passages for a post and turns sources into citations."""

from __future__ import annotations

import re

from langchain_core.documents import Document

from ..corpus import KnowledgeBase, SourceRecord


class PassageRetriever:
    """Report passages near a post, from one generation of the index, scored by cosine similarity."""

    def __init__(self, store, generation: str, kind: str = "passages"):
        """`store`: anything with IndexStore's `search(kind, generation, vectors, k)` (tests: an in-memory one)."""
        self.store, self.generation, self.kind = store, generation, kind

    def search(self, vector: list[float], k: int, min_similarity: float) -> list[tuple[Document, float]]:
        return self.search_many([vector], k, min_similarity)[0]

    def search_many(self, vectors: list[list[float]], k: int, min_similarity: float) -> list[list[tuple[Document, float]]]:
        """One store query for many posts."""
        found = self.store.search(self.kind, self.generation, vectors, k)
        return [[(doc, similarity) for doc, similarity in hits if similarity >= min_similarity] for hits in found]


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.casefold()))


def note_for(source: SourceRecord, locator: str, claim: str) -> str:
    """The source note that backs a claim: same locator first, then the most overlapping note."""
    if not source.notes:
        return ""
    same = [note for note in source.notes if note.locator.strip().casefold() == locator.strip().casefold()]
    candidates = same or source.notes
    claim_words = _words(claim)
    best = max(candidates, key=lambda note: len(claim_words & _words(note.text)))
    if not same and not claim_words & _words(best.text):
        return ""
    return best.text


def documentation_locator(kb: KnowledgeBase, narrative_id: str) -> tuple[str, str] | None:
    """Where a narrative is documented: the card's first source, at its first cited locator."""
    card = kb.narratives[narrative_id]
    for source_id in card.sources:
        if source_id not in kb.sources:
            continue
        for fact in card.facts:
            if fact.source == source_id:
                return source_id, fact.locator
        record = kb.sources[source_id]
        if record.notes:
            return source_id, record.notes[0].locator
    return None


def note_locator(source: SourceRecord) -> str:
    return source.notes[0].locator if source.notes else "whole document"
