"""analyze(text) -> Analysis: narratives, tactics, citations and context for one post."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..corpus import KnowledgeBase
from ..embeddings import MultilingualUSEEmbeddings, OpenAICompatibleEmbeddings
from ..settings import MatchingSettings
from ..text import HAN, normalise, segments
from .matcher import PAIR_FEATURES, MarkerIndex, NarrativeMatcher
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
from .tactics import TacticDetector

_LATIN = re.compile(r"[A-Za-z]")
MAX_SEGMENTS = 24
WINDOW_POSTS = 6  # sentences from which a post is long enough to hide a claim in (its core is scored)


def detect_language(text: str) -> str:
    cjk = len(HAN.findall(text))
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


@dataclass
class PostEvidence:
    """What the matcher found in one post, for assembling its analysis."""

    scores: np.ndarray  # per narrative, calibrated (held below the threshold when abstaining)
    closeness: np.ndarray  # per narrative: cosine to its closest example or claim
    markers: np.ndarray
    frames: np.ndarray
    pieces: list[tuple[int, int]]  # clauses of the normalised text
    piece_scores: np.ndarray  # clauses x narratives, from the clauses' own words
    piece_markers: np.ndarray
    piece_frames: np.ndarray
    abstention: str | None


_CLAUSE = re.compile(r"[^,，;；:：—–()（）]+[,，;；:：—–]?")
MIN_CLAUSE_CHARS = 12


def phrase_spans(text: str, sentences: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sentences cut into clauses where they hold several: the spans a highlighted phrase can be.

    A clause shorter than MIN_CLAUSE_CHARS joins its neighbour, so "Wake up, people" stays one phrase.
    """
    if not sentences:
        return [(0, len(text))] if text.strip() else []
    pieces: list[tuple[int, int]] = []
    for start, end in sentences:
        parts = []
        for match in _CLAUSE.finditer(text, start, end):
            s, e = match.span()
            while s < e and text[s].isspace():
                s += 1
            while e > s and (text[e - 1].isspace() or text[e - 1] in ",，;；:：—–"):
                e -= 1
            if e > s:
                parts.append([s, e])
        merged: list[list[int]] = []
        for part in parts:
            if merged and (part[1] - part[0] < MIN_CLAUSE_CHARS or merged[-1][1] - merged[-1][0] < MIN_CLAUSE_CHARS):
                merged[-1][1] = part[1]
            else:
                merged.append(part)
        pieces += [(s, e) for s, e in merged] or [(start, end)]
    return pieces[: MAX_SEGMENTS * 2]


def frame_hits(frames, text: str, sentences: list[tuple[int, int]], pieces: list[tuple[int, int]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Claim-frame hits of a post (any clause's, and the whole text's when it is one sentence) and of each clause."""
    per_piece = [frames.hits(text[start:end]) for start, end in pieces]
    found = np.max(np.vstack(per_piece), axis=0) if per_piece else np.zeros(len(frames.ids), dtype=np.float32)
    if len(sentences) <= 1:
        found = np.maximum(found, frames.hits(text))
    return found, per_piece


def post_frames(frames, text: str) -> np.ndarray:
    """A post's claim-frame hits, as analysis finds them (fitting uses this for the training posts)."""
    sentences = segments(text)[:MAX_SEGMENTS]
    return frame_hits(frames, text, sentences, phrase_spans(text, sentences))[0]


class CitationBook:
    """Numbers citations in order of first use, one number per (source, locator)."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb
        self.items: list[Citation] = []
        self._keys: dict[tuple, int] = {}

    def cite(self, source_id: str, locator: str, text: str, **extra) -> int | None:
        record = self.kb.sources.get(source_id)
        if record is None and "title" not in extra:
            return None
        # One number per place in a source: two notes from the same page are one citation holding both, so a reader
        # never sees the same source and locator under two numbers.
        key = (source_id, locator)
        if key in self._keys:
            number = self._keys[key]
            held = self.items[number - 1]
            if text and text not in held.text:
                self.items[number - 1] = held.model_copy(update={"text": f"{held.text}\n\n{text}" if held.text else text})
            return number
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
        technique_model=None,
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
        # Campaign tactics (coordinated amplification, AI imagery...) describe accounts, not wording: a single post's
        # text never claims them, so only the rhetorical cards' cues are scanned.
        self.tactics = TacticDetector([card for card in kb.tactics.values() if card.kind == "rhetorical"])
        self.technique_model = technique_model
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

        Only whole posts are embedded. Sentences and clauses are scored from their own words by the matcher's
        phrase model (see NarrativeMatcher.score_phrases), which picks the phrases that carry a match.
        """
        notices = notices or [[] for _ in texts]
        prepared, posts, post_markers, post_found, post_sentences = [], [], [], [], []
        phrase_texts, phrase_markers, phrase_frames = [], [], []
        frames = self.matcher.frames
        for text in texts:
            normal = normalise(text)
            spans = segments(normal.text)[:MAX_SEGMENTS]
            post_sentences.append(spans)
            pieces = phrase_spans(normal.text, spans)
            whole, within = self.matcher.markers.hits_within(normal.text, pieces)
            if frames is not None:
                found, per_piece = frame_hits(frames, normal.text, spans, pieces)
            else:
                found, per_piece = np.zeros(len(self.matcher.ids), dtype=np.float32), [np.zeros(len(self.matcher.ids), dtype=np.float32)] * len(pieces)
            prepared.append((text, normal, pieces, len(phrase_texts)))
            posts.append(normal.text)
            post_markers.append(whole)
            post_found.append(found)
            phrase_texts += [normal.text[s:e] for s, e in pieces]
            phrase_markers += list(within)
            phrase_frames += per_piece
        vectors = self.embeddings.encode(posts, normalised=True)
        inputs = self.matcher.inputs(posts, np.vstack(post_markers), np.vstack(post_found))
        # The examples table holds the matcher's reference examples: one product serves the features and the
        # nearest-example evidence.
        semantic = np.asarray(vectors, dtype=np.float32) @ self.examples.vectors.T if len(self.examples.ids) else None
        post_scores, post_features = self.matcher.score(vectors, inputs, semantic if semantic is not None and semantic.shape[1] == self.matcher.reference.shape[0] else None)
        closeness = self.matcher.closeness(post_features)
        if phrase_texts:
            phrase_inputs = self.matcher.inputs(phrase_texts, np.vstack(phrase_markers), np.vstack(phrase_frames))
            phrase_scores = self.matcher.score_phrases(phrase_inputs)
        else:
            phrase_scores = np.zeros((0, len(self.matcher.ids)))
        self._score_cores(post_sentences, prepared, inputs, post_scores, closeness)
        abstentions = [
            self._abstention(inputs.length[i], closeness[i], inputs.markers[i], inputs.frames[i], inputs.stance[i]) for i in range(len(posts))
        ]
        gated = post_scores.copy()
        for i, reason in enumerate(abstentions):
            if reason is not None:
                gated[i] = np.minimum(gated[i], self.matcher.threshold * 0.999)
        passages = self._passages(vectors, gated)
        results = []
        for index, ((text, normal, pieces, start), post_notices) in enumerate(zip(prepared, notices)):
            rows = slice(start, start + len(pieces))
            evidence = PostEvidence(
                scores=gated[index], closeness=closeness[index], markers=inputs.markers[index], frames=inputs.frames[index],
                pieces=pieces, piece_scores=phrase_scores[rows],
                piece_markers=np.vstack(phrase_markers[rows]) if pieces else np.zeros((0, len(self.matcher.ids))),
                piece_frames=np.vstack(phrase_frames[rows]) if pieces else np.zeros((0, len(self.matcher.ids))),
                abstention=abstentions[index],
            )
            similarities = semantic[index] if semantic is not None else np.zeros(0)
            results.append(self._assemble(text, normal, vectors[index], similarities, evidence, post_notices, passages[index]))
        return results

    def _score_cores(self, sentences, prepared, inputs, post_scores: np.ndarray, closeness: np.ndarray) -> None:
        """For a long post, scores its core: the sentences nearer to some narrative's examples or claims than to
        the benign ones, or naming a marker or a frame. The post's score is raised (in place) to the core's.

        Benign filler around a claim dilutes the whole post's embedding until the claim no longer counts: ten
        everyday sentences after a narrative post cut its matches by half. The core keeps the post's own stance
        cues, so a report that quotes a claim in one sentence and rejects it in the next is still a report. Only
        posts of WINDOW_POSTS sentences or more pay for the extra embeddings.
        """
        owners, texts = [], []
        for i, spans in enumerate(sentences):
            if len(spans) >= WINDOW_POSTS:
                text = prepared[i][1].text
                owners += [i] * len(spans)
                texts += [text[a:b] for a, b in spans]
        if not texts:
            return
        vectors = self.embeddings.encode(texts, normalised=True)
        sentence_inputs = self.matcher.inputs(texts)
        _, features = self.matcher.score(vectors, sentence_inputs, self._semantic(vectors))
        near = self.matcher.closeness(features).max(axis=1)
        benign = features[:, 0, PAIR_FEATURES.index("benign_1")]
        keep = (near > benign) | sentence_inputs.markers.any(axis=1) | sentence_inputs.frames.any(axis=1)
        cores, core_owners = [], []
        for i in sorted(set(owners)):
            rows = [row for row, owner in enumerate(owners) if owner == i]
            kept = [texts[row] for row in rows if keep[row]]
            if kept and len(kept) < len(rows):
                cores.append(" ".join(kept))
                core_owners.append(i)
        if not cores:
            return
        core_vectors = self.embeddings.encode(cores, normalised=True)
        core_inputs = self.matcher.inputs(cores)
        core_inputs.stance = inputs.stance[np.array(core_owners)]
        scores, core_features = self.matcher.score(core_vectors, core_inputs, self._semantic(core_vectors))
        core_near = self.matcher.closeness(core_features)
        for row, i in enumerate(core_owners):
            post_scores[i] = np.maximum(post_scores[i], scores[row])
            closeness[i] = np.maximum(closeness[i], core_near[row])

    def _semantic(self, vectors) -> np.ndarray | None:
        """Cosine similarity to the matcher's reference examples, from the examples table (one product)."""
        if not len(self.examples.ids):
            return None
        semantic = np.asarray(vectors, dtype=np.float32) @ self.examples.vectors.T
        return semantic if semantic.shape[1] == self.matcher.reference.shape[0] else None

    def _abstention(self, letters: float, closeness: np.ndarray, markers: np.ndarray, frames: np.ndarray, stance: np.ndarray) -> str | None:
        """A reason to abstain whatever the score: too little text, a text that attributes a claim to others and
        rejects it, or nothing the knowledge base knows is near."""
        if letters < self.matcher.short_letters and not markers.any():
            return "too little text"
        # Attributing a claim to the narrative's side ("state media claim", "Beijing blamed", its phrase in quotes)
        # and rejecting it ("no evidence", "fact check") in one text is how reports and debunks are written.
        if stance[2] > 0 and stance[1] > 0:
            return "reports or refutes the claim"
        if closeness.max() < self.matcher.far and not markers.any() and not frames.any():
            return "far from the knowledge base"
        return None

    def _assemble(self, text, normal, vector, similarities, evidence: "PostEvidence", notices, passages) -> Analysis:
        """One post's analysis; `passages` are its retrieved report passages, or None when the store was unreachable."""
        lang = detect_language(normal.text)
        post_scores = evidence.scores
        order = np.argsort(-post_scores)
        top = float(post_scores[order[0]]) if len(order) else 0.0
        chosen: list[int] = []
        if top >= self.matcher.threshold:
            for j in order[: self.settings.max_narratives]:
                score = float(post_scores[j])
                if score >= self.matcher.threshold and score >= self.settings.secondary_ratio * top:
                    chosen.append(int(j))
        abstention = None if chosen else (evidence.abstention or "below the threshold")

        book = CitationBook(self.kb)
        matches = [self._narrative(j, float(post_scores[j]), normal, evidence, similarities, book) for j in chosen]
        candidates = [
            self._narrative(int(j), float(post_scores[j]), normal, evidence, similarities, None)
            for j in order[:3]
            if int(j) not in chosen and float(post_scores[j]) >= 0.05 and evidence.abstention is None
        ]
        context = [item for j in chosen for item in self._context(self.matcher.ids[j], book)]
        tactics = self._tactics(normal, vector, book) if evidence.abstention != "too little text" else []
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
            abstention=abstention,  # type: ignore[arg-type]
            notices=notices,
        )

    # -- pieces -------------------------------------------------------------
    def _confidence(self, j: int, score: float, evidence: "PostEvidence") -> str:
        """High needs close evidence as well as a high score: a near example or claim, a marker or a claim frame."""
        close = evidence.closeness[j] >= self.matcher.near or evidence.markers[j] > 0 or evidence.frames[j] > 0
        if score >= 0.8 and close:
            return "high"
        return "moderate" if score >= 0.5 else "low"

    def _narrative(self, j, score, normal, evidence: "PostEvidence", similarities, book) -> NarrativeMatch:
        narrative_id = self.matcher.ids[j]
        card = self.kb.narratives[narrative_id]
        phrases: list[PhraseEvidence] = []
        for start, end in self.markers.spans(j, normal.text):
            o_start, o_end = normal.original_span(start, end)
            own = self._piece_score(evidence, start, end, j)
            phrases.append(PhraseEvidence(start=o_start, end=o_end, text=normal.original[o_start:o_end], score=round(own, 4), reason="marker"))
        # A clause is shown when its own words carry the narrative: its own score passes the threshold, or it
        # holds the claim's shape (a frame); never because the post as a whole matched.
        ranked = sorted(range(len(evidence.pieces)), key=lambda i: -evidence.piece_scores[i, j])
        for i in ranked[:3]:
            own = float(evidence.piece_scores[i, j])
            if own < self.matcher.threshold and not evidence.piece_frames[i, j]:
                continue
            o_start, o_end = normal.original_span(*evidence.pieces[i])
            if any(p.start <= o_start and o_end <= p.end or o_start <= p.start and p.end <= o_end for p in phrases):
                continue
            phrases.append(
                PhraseEvidence(start=o_start, end=o_end, text=normal.original[o_start:o_end], score=round(own, 4),
                               reason="frame" if evidence.piece_frames[i, j] else "similar")
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
            confidence=self._confidence(j, score, evidence),  # type: ignore[arg-type]
            summary=card.summary,
            evidence=Evidence(phrases=phrases[:6], examples=examples),
            citations=citations,
        )

    @staticmethod
    def _piece_score(evidence: "PostEvidence", start: int, end: int, j: int) -> float:
        """The own score of the clause that holds [start, end)."""
        for i, (s, e) in enumerate(evidence.pieces):
            if s <= start and end <= e:
                return float(evidence.piece_scores[i, j])
        return 0.0

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

    def _tactics(self, normal, vector, book: CitationBook) -> list[TacticHit]:
        """The technique model's hits, each with its own score and phrase-level spans; without a fitted model (no
        SemEval training data here), the rhetorical cards' cue patterns alone."""
        cues = self.tactics.find(normal.text)
        scores: dict[str, float] = {}
        if self.technique_model is None:
            found = cues
        else:
            found = {}
            for hit in self.technique_model.predict(normal.text, vector, cues=cues):
                if hit.id in self.kb.tactics:
                    found[hit.id] = [tuple(span) for span in hit.spans]
                    scores[hit.id] = hit.score
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
                    score=scores.get(tactic_id),
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


def example_table(stored: dict, dimension: int) -> ExampleTable:
    metadatas = stored.get("metadatas") or []
    vectors = stored.get("embeddings")
    return ExampleTable(
        ids=[m.get("example_id", "") for m in metadatas],
        texts=list(stored.get("documents") or []),
        narratives=[list(m.get("narratives") or []) for m in metadatas],
        langs=[m.get("lang", "") for m in metadatas],
        rationales=[m.get("rationale", "") for m in metadatas],
        vectors=np.asarray(vectors, dtype=np.float32) if vectors is not None and len(vectors) else np.zeros((0, dimension), np.float32),
    )
