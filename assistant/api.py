"""The one object every surface uses: `Assistant().ask(text)`.

The CLI, the app and the eval runner are thin layers over this class; it
owns the knowledge base, the index and the analyzer, all built from one
`Settings` object.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import pickle
import re
import threading
from contextlib import contextmanager
from importlib.metadata import version
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from . import offline
import numpy as np

from .analysis.analyzer import Analyzer, ExampleTable, detect_language, example_table, post_frames
from .analysis.claims import ClaimFrames
from .analysis.matcher import MarkerIndex, NarrativeMatcher
from .analysis.models import Analysis, Citation, ContextItem, Evidence, Span
from .analysis.retrieval import PassageRetriever
from .analysis.questions import QuestionAnswerer
from .corpus import Example, KnowledgeBase, TacticSpan, load_knowledge_base, validate
from .cache_files import replace_cache_file
from .embeddings import VectorCache, get_embeddings
from .explain import compose, compose_followup
from .explain.composer import answer_language, closing_block, sources_block, verdict_block
from .explain.llm import (
    LLMUnavailable,
    LLMWriter,
    build_prompt,
    build_rerank_prompt,
    parse_choice,
    build_question_prompt,
    check_sentence,
    llm_configured,
    sentences,
)
from .index import BuildReport, IndexStore, StoreUnavailable, corpus_items, document_items, make_client
from .ingest import IngestError, load_document
from .settings import Settings
from .text import ZERO_WIDTH, clean, normalise


MATCHER_VERSION = "28"  # bump when the matcher's features or model change, to refit cached matchers


class NarrativeLensError(Exception):
    """An error with a message meant for the user (no traceback needed)."""


class EmptyPost(NarrativeLensError):
    pass


class AnswerNarrative(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    score: float
    confidence: str
    evidence: Evidence


class AnswerTactic(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    kind: str
    spans: list[Span]


class AnswerCandidate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    score: float


class Answer(BaseModel):
    """What `ask` returns; `narrative-lens ask --json` prints exactly this."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["offline", "llm"]
    model: str | None = None
    lang: str
    verdict: Literal["match", "no known narrative"]
    narratives: list[AnswerNarrative]
    tactics: list[AnswerTactic]
    citations: list[Citation]
    context: list[ContextItem]
    answer: str
    notices: list[str]
    threshold: float
    abstention: str | None = None
    candidates: list[AnswerCandidate] = []
    llm_choice: str | None = None

    @classmethod
    def offline(cls, analysis: Analysis, markdown: str) -> "Answer":
        return cls(
            mode="offline",
            lang=analysis.lang,
            verdict="match" if analysis.narratives else "no known narrative",
            narratives=[
                AnswerNarrative(id=m.id, title=m.title, score=m.score, confidence=m.confidence, evidence=m.evidence)
                for m in analysis.narratives
            ],
            tactics=[AnswerTactic(id=t.id, name=t.name, kind=t.kind, spans=t.spans) for t in analysis.tactics],
            citations=analysis.citations,
            context=analysis.context,
            answer=markdown,
            notices=analysis.notices,
            threshold=analysis.threshold,
            abstention=analysis.abstention,
            candidates=[AnswerCandidate(id=c.id, title=c.title, score=c.score) for c in analysis.candidates],
        )


class FollowUpAnswer(BaseModel):
    """A follow-up question answered from the knowledge base."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["offline", "llm"]
    model: str | None = None
    lang: str
    answer: str
    citations: list[Citation]
    notices: list[str] = []


# Anything but whitespace, control and zero-width characters: the same test as text.clean, without its cost.
VISIBLE = re.compile("[^\\s\\x00-\\x1f\\x7f" + "".join(re.escape(c) for c in sorted(ZERO_WIDTH)) + "]")


def _split_complete(text: str) -> list[str]:
    """Complete sentences so far, then the unfinished rest (the last item).

    A sentence counts as complete once the next one has begun, so citation
    markers arriving just after its full stop still join it.
    """
    parts = sentences(text)
    if len(parts) < 2 or parts[-1].startswith("["):
        return [text]
    rest_start = text.rfind(parts[-1])
    return [*parts[:-1], text[rest_start:]]


def prepare_post(text: str, max_chars: int) -> tuple[str, list[str]]:
    """Checks and trims a pasted post; returns the text to analyse and any notices."""
    if text is None or not VISIBLE.search(text):
        raise EmptyPost("the post is empty: paste the text of a post to analyse")
    notices = []
    if len(text) > max_chars:
        notices.append(
            f"The post is {len(text):,} characters long; only the first {max_chars:,} characters were analysed."
        )
        text = text[:max_chars]
    return text, notices


class Assistant:
    def __init__(self, settings: Settings | None = None, *, kb: KnowledgeBase | None = None, **overrides):
        offline.prepare()
        self.settings = settings or Settings(**overrides)
        self._lock = threading.RLock()
        if kb is not None:
            self.kb = kb  # fills the cached property: an in-memory knowledge base (cross-validation, tests)

    # -- components ---------------------------------------------------------
    @cached_property
    def kb(self) -> KnowledgeBase:
        return load_knowledge_base(self.settings.corpus_dir, (self.settings.user_examples_path,))

    @cached_property
    def embeddings(self):
        return get_embeddings(self.settings.embeddings, cache_dir=self.settings.cache_dir)

    @property
    def model_name(self) -> str:
        s = self.settings.embeddings
        return "use-m3" if s.provider == "use-m3" else f"openai:{s.model}"

    @cached_property
    def store(self) -> IndexStore:
        return IndexStore(make_client(self.settings), self.embeddings, self.model_name, self.settings.index.collection_prefix)

    def problems(self):
        return validate(self.kb)

    # -- index --------------------------------------------------------------
    @contextmanager
    def _build_lock(self):
        """One build at a time per data directory (processes and threads)."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.settings.data_dir / ".build.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def build_index(self, *, force: bool = False, documents=(), progress=None) -> BuildReport:
        items = corpus_items(self.kb)
        items["passages"] = items["passages"] + document_items(documents)
        with self._build_lock():
            report = self.store.build(items, force=force, progress=progress)
        self.__dict__.pop("analyzer", None)
        return report

    def ensure_index(self) -> None:
        manifest = self.store.manifest()
        if manifest is None or manifest.model != self.model_name:
            self.build_index()
            return
        from .index.builder import digest

        items = corpus_items(self.kb)
        if any(manifest.digests.get(kind) != digest(items[kind]) for kind in ("cards", "examples")):
            self.build_index()

    def ingest(self, paths: list[Path], *, source_id: str | None = None, title: str | None = None, progress=None) -> BuildReport:
        """Adds report files to the index. All files are read first: one bad file changes nothing."""
        documents = []
        for path in paths:
            record = self.kb.sources.get(source_id) if source_id else None
            documents += load_document(
                Path(path),
                self.settings.index,
                source_id=source_id,
                title=title or (record.title if record else None),
                publisher=record.publisher if record else "",
                date=record.date if record else "",
                url=record.url if record else "",
            )
        return self.build_index(documents=documents, progress=progress)

    # -- analysis -----------------------------------------------------------
    @cached_property
    def analyzer(self) -> Analyzer:
        with self._lock:
            self.ensure_index()
            manifest = self.store.manifest()
            cards = list(self.kb.narratives.values())
            markers = MarkerIndex(cards)
            matcher, table = self._fitted_models(manifest, markers, [c.id for c in cards])
            retriever = PassageRetriever(self.store.vectorstore("passages", manifest.generation))
            return Analyzer(
                self.kb, self.embeddings, matcher, markers, table, retriever, self.settings.matching, self.technique_model
            )

    @cached_property
    def technique_model(self):
        """The technique model fitted on SemEval-2021 Task 6's training split and the annotated examples (cached in
        the data directory); None when either is missing, and techniques then come from the cards' cue patterns."""
        from .analysis.techniques import project_training_examples
        from .evaluation.techniques import load_or_fit_model

        semeval_dir = self.settings.techniques.semeval_dir
        if not (semeval_dir / "training_set_task1.txt").is_file() or not project_training_examples(self.kb):
            return None  # no training data here, or a knowledge base without technique annotations (a team's own taxonomy)
        return load_or_fit_model(self.kb, self.embeddings, semeval_dir, self.settings.data_dir / "cache", self.model_name)

    def _fitted_models(self, manifest, markers, ids) -> tuple[NarrativeMatcher, ExampleTable]:
        """Fit once per set of indexed examples (an ingested document does not change them); later starts load the
        fitted models, and the examples they were fitted on, from disk instead of the store."""
        examples_digest = manifest.digests.get("examples", manifest.generation)
        key_source = "|".join(
            [examples_digest, ",".join(ids), str(self.settings.matching.target_benign_fpr), str(self.settings.matching.prior),
             version("scikit-learn"), self.model_name, MATCHER_VERSION, json.dumps(self.kb.concepts, sort_keys=True)]
            + [card.model_dump_json() for card in self.kb.narratives.values()]
            + [m.pattern if m is not None else "" for m in markers.patterns]
        )
        key = hashlib.sha256(key_source.encode()).hexdigest()[:20]
        cache = self.settings.data_dir / "cache" / f"matcher-{key}.pkl"
        if cache.is_file():
            try:
                with open(cache, "rb") as handle:
                    matcher, table = pickle.load(handle)
                return matcher, table
            except Exception:
                pass  # a damaged or older cache is refitted below
        table = example_table(self.store.all_items("examples", manifest.generation))
        cards = [self.kb.narratives[narrative_id] for narrative_id in ids]
        frames = ClaimFrames(cards, self.kb.concepts)
        claim_texts = [(clean(text), card.id) for card in cards for text in [card.title, *card.claims]]
        claim_vectors = self.embeddings.encode([text for text, _ in claim_texts])
        claims = [(text, vector, label) for (text, label), vector in zip(claim_texts, claim_vectors)]
        texts = [clean(text) for text in table.texts]
        matcher = NarrativeMatcher(ids, markers, frames, prior=self.settings.matching.prior).fit(
            texts,
            table.vectors,
            table.narratives,
            self.settings.matching.target_benign_fpr,
            claims=claims,
            frame_hits=np.stack([post_frames(frames, text) for text in texts]) if texts else None,
        )
        # Files fitted for an older index or settings are stale; with no room (a full disk) the next start refits.
        replace_cache_file(cache, lambda handle: pickle.dump((matcher, table), handle), stale="matcher-*.pkl")
        return matcher, table

    @cached_property
    def questions(self) -> QuestionAnswerer:
        analyzer = self.analyzer
        vectors = VectorCache(self.settings.data_dir / "cache", "knowledge", self.embeddings, self.model_name)
        return QuestionAnswerer(self.kb, self.embeddings, analyzer.retriever, analyzer.markers, encode=vectors.encode)

    def follow_up(self, question: str, focus: list[str] | None = None, mode: str | None = None) -> FollowUpAnswer:
        """Answer a question about narratives, techniques or evidence from the knowledge base."""
        question, notices = prepare_post(question, self.settings.app.max_post_chars)
        found = self.questions.answer(question, focus)
        offline_answer = FollowUpAnswer(
            mode="offline", lang=found.lang, answer=compose_followup(found), citations=found.citations, notices=notices
        )
        wanted, extra = self.use_llm(mode)
        if not wanted or not found.citations:
            return offline_answer.model_copy(update={"notices": notices + extra})
        prompt = build_question_prompt(question, found.citations, found.lang, self.settings.llm)
        try:
            written = "".join(self.writer.stream(prompt.messages))
        except LLMUnavailable as error:
            return offline_answer.model_copy(update={"notices": notices + [f"The LLM answer was not available ({error}); this is the offline answer."]})
        kept = [s for s in sentences(written) if check_sentence(s, prompt.source_ids, self.kb, set()) is None]
        if len(kept) < self.settings.llm.min_kept_sentences:
            return offline_answer.model_copy(
                update={"notices": notices + ["The LLM's answer did not cite its sources well enough; this is the offline answer."]}
            )
        sources = "\n".join(sources_block(found.citations, "zh" if found.lang == "zh" else "en"))
        return FollowUpAnswer(
            mode="llm", model=self.writer.model_name, lang=found.lang, answer=" ".join(kept) + "\n" + sources + "\n",
            citations=found.citations, notices=notices,
        )

    def add_example(self, text: str, narratives: list[str], tactics: list[str], *, for_eval: bool = False) -> Example:
        """Save an analyst's labelled post; it joins the index at once (and an eval set if asked)."""
        text, _ = prepare_post(text, self.settings.app.max_post_chars)
        unknown = sorted(set(narratives) - set(self.kb.narratives)) + sorted(set(tactics) - set(self.kb.tactics))
        if unknown:
            raise NarrativeLensError(f"unknown id(s): {', '.join(unknown)}")
        normal = normalise(text)
        found = self.analyzer.tactics.find(normal.text)
        spans = []
        for tactic_id in tactics:
            for start, end in found.get(tactic_id, [])[:1]:
                o_start, o_end = normal.original_span(start, end)
                spans.append(TacticSpan(id=tactic_id, start=o_start, end=o_end, text=text[o_start:o_end]))
        example = Example(
            id=f"user-{hashlib.sha256(text.encode()).hexdigest()[:12]}",
            text=text,
            lang={"zh": "zh-Hans", "mixed": "mixed"}.get(detect_language(normal.text), "en"),
            platform="other",
            narratives=list(dict.fromkeys(narratives)),
            tactics=spans,
            rationale="Labelled by an analyst in the app.",
            constructed=False,
            split="user",
        )
        target = self.settings.user_examples_path
        target.parent.mkdir(parents=True, exist_ok=True)
        line = example.model_dump_json() + "\n"
        with self._lock:
            with open(target, "a", encoding="utf-8") as handle:
                handle.write(line)
            if for_eval:
                record = {"id": example.id, "text": text, "narratives": example.narratives, "tactics": tactics, "lang": example.lang}
                with open(self.settings.data_dir / "user-eval.jsonl", "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            for name in ("kb", "analyzer", "questions"):
                self.__dict__.pop(name, None)
            self.analyzer  # rebuild the index with the new example and refit the matcher
        return example

    def analyze(self, text: str) -> Analysis:
        text, notices = prepare_post(text, self.settings.app.max_post_chars)
        return self.analyzer.analyze(text, notices)

    def ask_many(self, texts: list[str]) -> list[Answer]:
        """Offline answers for many posts at once (batch evals): one embedding and one matcher pass."""
        prepared = [prepare_post(text, self.settings.app.max_post_chars) for text in texts]
        analyses = self.analyzer.analyze_many([t for t, _ in prepared], [n for _, n in prepared])
        return [Answer.offline(analysis, compose(analysis, self.kb)) for analysis in analyses]

    # -- answers ------------------------------------------------------------
    @cached_property
    def writer(self) -> LLMWriter:
        return LLMWriter(self.settings.llm)

    def use_llm(self, mode: str | None) -> tuple[bool, list[str]]:
        """Whether to ask the LLM, and a notice when it was asked for but none is configured."""
        mode = mode or self.settings.llm.mode
        if mode == "offline":
            return False, []
        configured = llm_configured() or self.__dict__.get("writer") is not None and self.writer._chat_model is not None
        if mode == "llm" and not configured:
            return False, ["No LLM endpoint is configured (set OPENAI_API_KEY or OPENAI_BASE_URL); this is the offline answer."]
        return configured, []

    def ask(self, text: str, mode: str | None = None) -> Answer:
        """Analyse a post and explain it: offline, or written by the LLM when one is configured."""
        answer = None
        for event, value in self.ask_stream(text, mode):
            if event == "final":
                answer = value
        return answer

    def ask_stream(self, text: str, mode: str | None = None):
        """("partial", markdown so far) events while an LLM writes, then ("final", Answer)."""
        analysis = self.analyze(text)
        wanted, notices = self.use_llm(mode)
        if not wanted:
            analysis = analysis.model_copy(update={"notices": analysis.notices + notices})
            yield "final", Answer.offline(analysis, compose(analysis, self.kb))
            return
        lang = answer_language(analysis)
        matched = {m.id for m in analysis.narratives}
        prompt = build_prompt(analysis, self.kb, self.settings.llm)
        head = "\n".join(verdict_block(analysis, lang)) + "\n\n"
        tail = "\n".join(closing_block(analysis, lang)) + "\n"
        written, kept, dropped = "", [], []
        try:
            for piece in self.writer.stream(prompt.messages):
                written += piece
                *complete, written = _split_complete(written)
                for sentence in complete:
                    reason = check_sentence(sentence, prompt.source_ids, self.kb, matched)
                    (dropped if reason else kept).append(sentence)
                    if not reason:
                        yield "partial", head + " ".join(kept)
        except LLMUnavailable as error:
            yield "final", self._fallback(analysis, f"The LLM answer was not available ({error}); this is the offline answer.")
            return
        for sentence in sentences(written):
            reason = check_sentence(sentence, prompt.source_ids, self.kb, matched)
            (dropped if reason else kept).append(sentence)
        if len(kept) < self.settings.llm.min_kept_sentences:
            yield "final", self._fallback(
                analysis,
                f"The LLM's answer did not cite its sources well enough ({len(dropped)} of {len(kept) + len(dropped)} "
                "sentences failed the citation check); this is the offline answer.",
            )
            return
        notices = list(analysis.notices)
        if dropped:
            notices.append(f"{len(dropped)} sentence(s) of the LLM's answer without a valid citation were removed.")
        markdown = head + " ".join(kept) + "\n" + tail
        answer = Answer.offline(analysis.model_copy(update={"notices": notices}), markdown)
        yield "final", answer.model_copy(
            update={"mode": "llm", "model": self.writer.model_name, "llm_choice": self.llm_choice(analysis)}
        )

    def llm_choice(self, analysis: Analysis) -> str | None:
        """LLM-assisted matching: which of the matched and runner-up narratives the LLM picks (if asked to)."""
        if not self.settings.matching.llm_rerank or not analysis.narratives:
            return None
        candidates = [*analysis.narratives, *analysis.candidates][:4]
        messages = build_rerank_prompt(analysis.text, [(c.id, c.title, c.summary) for c in candidates])
        try:
            reply = "".join(self.writer.stream(messages))
        except LLMUnavailable:
            return None
        return parse_choice(reply, [c.id for c in candidates])

    def _fallback(self, analysis: Analysis, notice: str) -> Answer:
        analysis = analysis.model_copy(update={"notices": analysis.notices + [notice]})
        return Answer.offline(analysis, compose(analysis, self.kb))


__all__ = ["Answer", "FollowUpAnswer", "Assistant", "EmptyPost", "IngestError", "NarrativeLensError", "StoreUnavailable"]
