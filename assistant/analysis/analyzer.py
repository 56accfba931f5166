"""analyze(text) -> Analysis: narratives, tactics, citations and context for one post."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..corpus import KnowledgeBase
from ..embeddings import MultilingualUSEEmbeddings, OpenAICompatibleEmbeddings
from ..settings import MatchingSettings
from ..text import normalise, segments
from .matcher import MarkerIndex, NarrativeMatcher
from .models import (
    Analysis,
    Citation,
    ContextItem,
    Evidence,
    ExampleEvidence,
    NarrativeMatch,
    PhraseEvidence,
    Span,
    TacticHit,
)
from .retrieval import PassageRetriever, documentation_locator, note_for, note_locator
from .tactics import TacticDetector, TacticModel

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
MAX_SEGMENTS = 24


def detect_language(text: str) -> str:
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN.findall(text))
    if cjk == 0 and latin == 0:
        return "other"
    if cjk and latin and min(cjk * 3, latin) / max(cjk * 3, latin) > 0.35:
        return "mixed"
    return "zh" if cjk * 3 >= latin else "en"


def confidence(score: float) -> str:
    return "high" if score >= 0.8 else "moderate" if score >= 0.6 else "low"


@dataclass
class ExampleTable:
    """The indexed examples held in memory for nearest-neighbour evidence."""

    ids: list[str]
    texts: list[str]
    narratives: list[list[str]]
    langs: list[str]
    rationales: list[str]
    vectors: np.ndarray


class CitationBook:
    """Numbers citations in order of first use, one number per (source, locator, text)."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb
        self.items: list[Citation] = []
        self._keys: dict[tuple, int] = {}

    def cite(self, source_id: str, locator: str, text: str, **extra) -> int | None:
        record = self.kb.sources.get(source_id)
        if record is None and "title" not in extra:
            return None
        key = (source_id, locator, text)
        if key in self._keys:
            return self._keys[key]
        number = len(self.items) + 1
        self.items.append(
            Citation(
                id=number,
                source_id=source_id,
                title=extra.get("title") or record.display_title,
                source=extra.get("publisher") if "publisher" in extra else record.publisher,
                author=extra.get("author", record.author if record else ""),
                date=extra.get("date") if "date" in extra else record.date,
                locator=locator,
                url=extra.get("url") if "url" in extra else record.url,
                text=text,
                origin=extra.get("origin", "corpus"),
            )
        )
        self._keys[key] = number
        return number

    def cite_tactic(self, card) -> int | None:
        """A technique's definition, cited to DISARM or SemEval (or the card's first source)."""
        for source_id in card.sources:
            if source_id not in self.kb.sources:
                continue
            if source_id.startswith("disarm") and card.disarm:
                locator = f"technique {card.disarm[0]}"
            elif card.semeval:
                locator = f"technique '{card.semeval}'"
            else:
                locator = note_locator(self.kb.sources[source_id])
            return self.cite(source_id, locator, card.summary)
        return None

    def cite_passage(self, doc) -> int | None:
        """A retrieved passage: a corpus source note, or a passage of an ingested document."""
        meta = doc.metadata
        source_id = meta.get("source_id", "")
        extra = {}
        if meta.get("origin") == "ingested" or source_id not in self.kb.sources:
            extra = {
                "title": meta.get("title", source_id),
                "publisher": meta.get("publisher", ""),
                "date": meta.get("date", ""),
                "url": meta.get("url", ""),
                "origin": "ingested" if meta.get("origin") == "ingested" else "corpus",
            }
        return self.cite(source_id, meta.get("locator", ""), doc.page_content, **extra)


class Analyzer:
    def __init__(
        self,
        kb: KnowledgeBase,
        embeddings: MultilingualUSEEmbeddings | OpenAICompatibleEmbeddings,
        matcher: NarrativeMatcher,
        markers: MarkerIndex,
        examples: ExampleTable,
        retriever: PassageRetriever | None,
        settings: MatchingSettings,
        tactic_model: TacticModel | None = None,
    ):
        self.kb = kb
        self.embeddings = embeddings
        self.matcher = matcher
        self.markers = markers
        self.examples = examples
        self._members = {
            narrative_id: np.array([i for i, labels in enumerate(examples.narratives) if narrative_id in labels], dtype=np.int64)
            for narrative_id in kb.narratives
        }
        self.retriever = retriever
        self.settings = settings
        self.tactics = TacticDetector(list(kb.tactics.values()))
        self.tactic_model = tactic_model
        self._fact_notes = {
            (card.id, index): note_for(kb.sources[fact.source], fact.locator, fact.text)
            for card in kb.narratives.values()
            for index, fact in enumerate(card.facts)
            if fact.source in kb.sources
        }

    # -- the pipeline -------------------------------------------------------
    def analyze(self, text: str, notices: list[str] | None = None) -> Analysis:
        return self.analyze_many([text], [notices or []])[0]

    def analyze_many(self, texts: list[str], notices: list[list[str]] | None = None) -> list[Analysis]:
        """Analyses several posts with one embedding call and one matcher call (batch evals).

        Only whole posts are embedded; a post's sentences share its embedding and differ by their wording
        (see NarrativeMatcher.sentence_features), which is enough to pick the phrases that carry a match.
        """
        notices = notices or [[] for _ in texts]
        prepared = []
        posts: list[str] = []
        post_hits, sentences, sentence_hits, parents = [], [], [], []
        for index, text in enumerate(texts):
            normal = normalise(text)
            spans = segments(normal.text)[:MAX_SEGMENTS]
            own = [normal.text[s:e] for s, e in spans] if len(spans) > 1 else []
            prepared.append((text, normal, spans, len(sentences), len(own)))
            posts.append(normal.text)
            whole, within = self.matcher.markers.hits_within(normal.text, spans if own else [])
            post_hits.append(whole)
            sentence_hits.append(within)
            sentences += own
            parents += [index] * len(own)
        vectors = self.embeddings.encode(posts, normalised=True)
        post_x = self.matcher.features(posts, vectors, np.vstack(post_hits) if post_hits else None)
        _, post_scores = self.matcher.predict_features(post_x)
        if sentences:
            sentence_x = self.matcher.sentence_features(sentences, post_x, parents, np.vstack(sentence_hits))
            _, sentence_scores = self.matcher.predict_features(sentence_x)
        passages = self._passages(vectors, post_scores)
        results = []
        for index, ((text, normal, spans, start, count), post_notices) in enumerate(zip(prepared, notices)):
            if count:
                rows = slice(start, start + count)
                segment_scores, segment_x = sentence_scores[rows], sentence_x[rows]
            else:
                segment_scores, segment_x = post_scores[index : index + 1], post_x[index : index + 1]
            results.append(
                self._assemble(
                    text, normal, spans, vectors[index], post_scores[index], segment_scores, segment_x, post_notices,
                    passages[index],
                )
            )
        return results

    def _assemble(self, text, normal, spans, vector, post_scores, segment_scores, segment_features, notices, passages) -> Analysis:
        """One post's analysis; `passages` are its retrieved report passages, or None when the store was unreachable."""
        lang = detect_language(normal.text)
        segment_spans = spans if len(spans) > 1 else ([(0, len(normal.text))] if normal.text else [])

        order = np.argsort(-post_scores)
        top = float(post_scores[order[0]]) if len(order) else 0.0
        chosen: list[int] = []
        if top >= self.matcher.threshold:
            for j in order[: self.settings.max_narratives]:
                score = float(post_scores[j])
                if score >= self.matcher.threshold and score >= self.settings.secondary_ratio * top:
                    chosen.append(int(j))

        book = CitationBook(self.kb)
        similarities = self.examples.vectors @ vector if len(self.examples.ids) else np.zeros(0)
        matches = [
            self._narrative(j, float(post_scores[j]), normal, segment_spans, segment_scores, similarities, book)
            for j in chosen
        ]
        candidates = [
            self._narrative(int(j), float(post_scores[j]), normal, segment_spans, segment_scores, similarities, None)
            for j in order[:3]
            if int(j) not in chosen and float(post_scores[j]) >= 0.05
        ]
        context = [item for j in chosen for item in self._context(self.matcher.ids[j], book)]
        learned = self.tactic_model.predict(segment_features) if self.tactic_model and segment_spans else {}
        tactics = self._tactics(normal, book, learned, segment_spans)
        notices = list(notices or [])
        if passages is None:
            notices.append("Report passages could not be retrieved (the index store is unreachable); the answer uses the cards only.")
        elif matches:  # passages only for posts that matched, to stay on topic
            for doc, _ in passages:
                book.cite_passage(doc)
        return Analysis(
            text=text,
            lang=lang,  # type: ignore[arg-type]
            narratives=matches,
            candidates=candidates,
            tactics=tactics,
            citations=book.items,
            context=context,
            threshold=round(self.matcher.threshold, 4),
            notices=notices,
        )

    # -- pieces -------------------------------------------------------------
    def _narrative(self, j, score, normal, segment_spans, segment_scores, similarities, book) -> NarrativeMatch:
        narrative_id = self.matcher.ids[j]
        card = self.kb.narratives[narrative_id]
        phrases: list[PhraseEvidence] = []
        for start, end in self.markers.spans(j, normal.text):
            o_start, o_end = normal.original_span(start, end)
            phrases.append(PhraseEvidence(start=o_start, end=o_end, text=normal.original[o_start:o_end], score=1.0, reason="marker"))
        ranked = sorted(range(len(segment_spans)), key=lambda i: -segment_scores[i, j])
        for i in ranked[:3]:
            seg_score = float(segment_scores[i, j])
            if seg_score < 0.5 * score and i != ranked[0]:
                continue
            o_start, o_end = normal.original_span(*segment_spans[i])
            if any(p.start <= o_start and o_end <= p.end for p in phrases):
                continue
            phrases.append(
                PhraseEvidence(start=o_start, end=o_end, text=normal.original[o_start:o_end], score=round(seg_score, 4))
            )
        phrases.sort(key=lambda p: (p.reason != "marker", -p.score, p.start))
        examples = []
        if len(similarities) and self.settings.evidence_examples:
            members = self._members.get(narrative_id, np.zeros(0, dtype=np.int64))
            nearest = members[np.argsort(-similarities[members], kind="stable")[: self.settings.evidence_examples]]
            for i in nearest.tolist():
                examples.append(
                    ExampleEvidence(
                        id=self.examples.ids[i],
                        text=self.examples.texts[i],
                        similarity=round(float(similarities[i]), 4),
                        lang=self.examples.langs[i],
                        rationale=self.examples.rationales[i],
                    )
                )
        citations = []
        if book is not None:
            where = documentation_locator(self.kb, narrative_id)
            if where:
                source_id, locator = where
                note = note_for(self.kb.sources[source_id], locator, card.summary) or card.summary
                number = book.cite(source_id, locator, note)
                if number:
                    citations.append(number)
        return NarrativeMatch(
            id=narrative_id,
            title=card.title,
            score=round(min(max(score, 0.0), 1.0), 4),
            confidence=confidence(score),  # type: ignore[arg-type]
            summary=card.summary,
            evidence=Evidence(phrases=phrases[:6], examples=examples),
            citations=citations,
        )

    def _context(self, narrative_id: str, book: CitationBook) -> list[ContextItem]:
        card = self.kb.narratives[narrative_id]
        items = []
        for index, fact in enumerate(card.facts):
            if fact.source not in self.kb.sources:
                continue
            note = self._fact_notes.get((narrative_id, index)) or fact.text
            number = book.cite(fact.source, fact.locator, note)
            if number:
                items.append(ContextItem(narrative_id=narrative_id, text=fact.text, citation=number))
        return items

    def _tactics(self, normal, book: CitationBook, learned: dict[str, list[int]], segment_spans) -> list[TacticHit]:
        """Cue-pattern spans first; sentences the learned model flags add spans the cues missed."""
        found = self.tactics.find(normal.text)
        for tactic_id, indexes in learned.items():
            if tactic_id not in self.kb.tactics:
                continue
            spans = found.setdefault(tactic_id, [])
            for index in indexes:
                start, end = segment_spans[index]
                if not any(s < end and e > start for s, e in spans):
                    spans.append((start, end))
            spans.sort()
        hits = []
        for tactic_id, spans in found.items():
            card = self.kb.tactics[tactic_id]
            mapped = []
            for start, end in spans:
                o_start, o_end = normal.original_span(start, end)
                mapped.append(Span(start=o_start, end=o_end, text=normal.original[o_start:o_end]))
            hits.append(
                TacticHit(
                    id=tactic_id,
                    name=card.name,
                    kind=card.kind,
                    summary=card.summary,
                    spans=mapped,
                    citations=[n for n in [book.cite_tactic(card)] if n],
                )
            )
        hits.sort(key=lambda hit: (hit.kind != "rhetorical", hit.spans[0].start if hit.spans else 0))
        return hits

    def _passages(self, vectors: np.ndarray, post_scores: np.ndarray) -> list[list | None]:
        """Report passages close to each post that can match, from one store query; None for those posts when the
        store is unreachable (their answers then come from the cards alone, with a notice)."""
        wanted = [i for i in range(len(vectors)) if len(post_scores[i]) and post_scores[i].max() >= self.matcher.threshold]
        found: list[list | None] = [[] for _ in range(len(vectors))]
        if self.retriever is None or not wanted:
            return found
        try:
            hits = self.retriever.search_many(
                [vectors[i].tolist() for i in wanted], self.settings.passages, self.settings.min_passage_similarity
            )
        except Exception:  # the store went away mid-session
            return [None if i in wanted else [] for i in range(len(vectors))]
        for i, post_hits in zip(wanted, hits):
            found[i] = post_hits
        return found


def example_table(stored: dict) -> ExampleTable:
    metadatas = stored.get("metadatas") or []
    vectors = stored.get("embeddings")
    return ExampleTable(
        ids=[m.get("example_id", "") for m in metadatas],
        texts=list(stored.get("documents") or []),
        narratives=[list(m.get("narratives") or []) for m in metadatas],
        langs=[m.get("lang", "") for m in metadatas],
        rationales=[m.get("rationale", "") for m in metadatas],
        vectors=np.asarray(vectors, dtype=np.float32) if vectors is not None and len(vectors) else np.zeros((0, 512), np.float32),
    )
