"""Retrieves report passages for a post and turns sources into citations."""

from __future__ import annotations

import re

from langchain_chroma import Chroma
from langchain_core.documents import Document

from ..corpus import KnowledgeBase, SourceRecord


class PassageRetriever:
    """Report passages near a post, scored by cosine similarity (the index is built in cosine space)."""

    def __init__(self, store: Chroma):
        self.store = store

    def search(self, vector: list[float], k: int, min_similarity: float) -> list[tuple[Document, float]]:
        return self.search_many([vector], k, min_similarity)[0]

    def search_many(self, vectors: list[list[float]], k: int, min_similarity: float) -> list[list[tuple[Document, float]]]:
        """One store query for many posts: each query costs Chroma a fixed 2 ms or more, whatever its size.

        LangChain's single-vector search returns Chroma's cosine *distance* under the name of a relevance score,
        so the collection is asked directly and the distance turned into a similarity here."""
        if k <= 0 or not vectors:
            return [[] for _ in vectors]
        results = self.store._collection.query(
            query_embeddings=vectors, n_results=k, include=["documents", "metadatas", "distances"]
        )
        found = []
        for documents, metadatas, ids, distances in zip(
            results["documents"], results["metadatas"], results["ids"], results["distances"]
        ):
            hits = []
            for text, metadata, passage_id, distance in zip(documents, metadatas, ids, distances):
                similarity = 1.0 - float(distance)
                if text is not None and similarity >= min_similarity:
                    hits.append((Document(page_content=text, metadata=metadata or {}, id=passage_id), similarity))
            found.append(hits)
        return found


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
