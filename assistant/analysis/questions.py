"""Follow-up questions ("what is the evidence on cotton mechanisation?", "explain whataboutism")
answered from the knowledge base alone, every statement tied to a citation."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel

from ..corpus import KnowledgeBase
from .analyzer import CitationBook, detect_language
from .models import Citation
from ..text import clean
from .retrieval import PassageRetriever, note_for

QUESTION = re.compile(
    r"(\?|？|^\s*(what|why|how|who|when|where|which|is|are|does|do|can|could|explain|tell me|show me|define)\b"
    r"|什么|为什么|為什麼|怎么|怎麼|如何|解释|解釋|是否|吗|嗎|哪些|证据|證據)",
    re.IGNORECASE,
)


def looks_like_question(text: str) -> bool:
    """A short message phrased as a question; long pastes are treated as posts to analyse."""
    return len(text) <= 300 and bool(QUESTION.search(text.strip()))


class AnswerItem(BaseModel):
    heading: str
    text: str
    citation: int | None = None


class KnowledgeAnswer(BaseModel):
    question: str
    lang: str
    items: list[AnswerItem]
    citations: list[Citation]


class QuestionAnswerer:
    """Finds the tactic cards, narrative facts and report passages closest to a question."""

    def __init__(
        self,
        kb: KnowledgeBase,
        embeddings,
        retriever: PassageRetriever | None,
        markers=None,
        min_similarity: float = 0.3,
        encode: Callable[[list[str]], np.ndarray] | None = None,
    ):
        """`encode`: how the searched texts are embedded, when not by `embeddings` itself (a cache)."""
        self.kb = kb
        self.markers = markers
        self.embeddings = embeddings
        self.retriever = retriever
        self.min_similarity = min_similarity
        self.facts = [
            (card.id, fact) for card in kb.narratives.values() for fact in card.facts if fact.source in kb.sources
        ]
        self.tactics = list(kb.tactics.values())
        self.narratives = list(kb.narratives.values())
        texts = self.texts()
        vectors = (encode or embeddings.encode)(texts) if texts else np.zeros((0, embeddings.dimension), np.float32)
        self.fact_vectors = vectors[: len(self.facts)]
        self.tactic_vectors = vectors[len(self.facts) : len(self.facts) + len(self.tactics)]
        self.narrative_vectors = vectors[len(self.facts) + len(self.tactics) :]

    def texts(self) -> list[str]:
        """What is searched: the facts, then the techniques, then the narratives."""
        return (
            [fact.text for _, fact in self.facts]
            + [f"{t.name}. {t.summary}" for t in self.tactics]
            + [f"{n.title}. {n.summary}" for n in self.narratives]
        )

    def _named_narratives(self, question: str) -> set[str]:
        if self.markers is None:
            return set()
        hits = self.markers.hits(clean(question))
        return {narrative_id for narrative_id, hit in zip(self.markers.ids, hits) if hit}

    def _named_tactics(self, question: str) -> list[int]:
        lowered = question.casefold()
        found = []
        for index, tactic in enumerate(self.tactics):
            names = {tactic.id, tactic.id.replace("-", " "), tactic.name.casefold(), tactic.semeval.casefold().replace("_", " ")}
            if any(name and name.casefold() in lowered for name in names):
                found.append(index)
        return found

    def answer(self, question: str, focus: list[str] | None = None) -> KnowledgeAnswer:
        """`focus`: narrative ids of the post under discussion, preferred when relevant."""
        book = CitationBook(self.kb)
        items: list[AnswerItem] = []
        vector = self.embeddings.encode([question])[0]

        tactic_hits = self._named_tactics(question)
        if not tactic_hits and len(self.tactic_vectors):
            best = int(np.argmax(self.tactic_vectors @ vector))
            if float(self.tactic_vectors[best] @ vector) >= 0.45:
                tactic_hits = [best]
        for index in tactic_hits[:2]:
            tactic = self.tactics[index]
            number = book.cite_tactic(tactic)
            items.append(AnswerItem(heading=tactic.name, text=tactic.summary.strip(), citation=number))
            if tactic.how_to_spot.en:
                items.append(AnswerItem(heading="How to spot it", text=tactic.how_to_spot.en.strip(), citation=number))
            if tactic.why_it_works:
                items.append(AnswerItem(heading="Why it works", text=tactic.why_it_works.strip(), citation=number))
            if tactic.example:
                items.append(AnswerItem(heading="Constructed example", text=tactic.example.strip(), citation=None))

        if len(self.fact_vectors):
            similarity = self.fact_vectors @ vector
            # A narrative named by one of its marker phrases ("Fort Detrick", "机采棉") is what the question is about.
            named = set(focus or []) | self._named_narratives(question)
            if named:
                similarity = similarity + np.array([0.15 if nid in named else 0.0 for nid, _ in self.facts])
            chosen = [int(i) for i in np.argsort(-similarity) if similarity[i] >= self.min_similarity][:4]
            for narrative_id in named:
                own = [i for i in np.argsort(-similarity) if self.facts[i][0] == narrative_id][:2]
                chosen += [int(i) for i in own if int(i) not in chosen]
            for index in chosen[:5]:
                narrative_id, fact = self.facts[index]
                note = note_for(self.kb.sources[fact.source], fact.locator, fact.text) or fact.text
                number = book.cite(fact.source, fact.locator, note)
                items.append(AnswerItem(heading=self.kb.narratives[narrative_id].title, text=fact.text.strip(), citation=number))

        if self.retriever is not None:
            for doc, _ in self.retriever.search(vector.tolist(), 3, self.min_similarity):
                number = book.cite_passage(doc)
                if number and not any(item.citation == number for item in items):
                    items.append(AnswerItem(heading="Report passage", text=doc.page_content.strip(), citation=number))

        if not items and len(self.narrative_vectors):
            best = int(np.argmax(self.narrative_vectors @ vector))
            card = self.narratives[best]
            if float(self.narrative_vectors[best] @ vector) >= self.min_similarity and card.facts:
                fact = card.facts[0]
                number = book.cite(fact.source, fact.locator, note_for(self.kb.sources[fact.source], fact.locator, fact.text) or fact.text)
                items.append(AnswerItem(heading=card.title, text=card.summary.strip(), citation=number))
        return KnowledgeAnswer(question=question, lang=detect_language(question), items=items, citations=book.items)
