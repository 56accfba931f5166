"""The front door every surface uses: `Assistant().ask(text)`.

The CLI, the app and the eval runner are thin layers over this class. It wires the parts together from one
`Settings` object (or from parts given to it: `Assistant(settings, embedder=..., store=..., writer=...)`, which
is how tests run on `tests/fakes.py`) and keeps nothing else: fitting lives in `analysis.fitting`, saved
examples in `corpus.user_examples`, answer writing and the citation check in `explain.writing`.
"""

from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from . import offline
from .analysis.analyzer import Analyzer, detect_language
from .analysis.fitting import MATCHER_VERSION, load_or_fit_matcher, technique_model_or_none
from .analysis.matcher import MarkerIndex
from .analysis.models import Analysis
from .analysis.questions import QuestionAnswerer
from .analysis.retrieval import PassageRetriever
from .corpus import Example, KnowledgeBase, TacticSpan, load_knowledge_base, validate
from .corpus.user_examples import save_eval_record, save_example
from .embeddings import Embedder, VectorCache, get_embeddings
from .errors import EmptyPost, InvalidInput, NarrativeLensError
from .explain.answers import Answer, AnswerCandidate, AnswerNarrative, AnswerTactic, FollowUpAnswer
from .explain.llm import LLMWriter, llm_configured
from .explain.writing import AnswerWriter, ChatWriter, Event, Final, final_answer
from .index import BuildReport, IndexStore, Store, StoreUnavailable, corpus_items, document_items, make_client
from .ingest import IngestError, load_document
from .settings import Settings
from .text import normalise, prepare_post


class Assistant:
    def __init__(self, settings: Settings | None = None, *, kb: KnowledgeBase | None = None, embedder: Embedder | None = None,
                 store: Store | None = None, writer: ChatWriter | None = None, **overrides):
        """`kb`, `embedder`, `store` and `writer` replace the parts the settings would build (the shipped corpus, the
        configured embedding model, Chroma, the configured LLM endpoint)."""
        offline.prepare()
        self.settings = settings or Settings(**overrides)
        self._lock = threading.RLock()
        self._kb, self._embedder, self._store, self._writer = kb, embedder, store, writer
        self._given_writer = writer is not None
        self._analyzer: Analyzer | None = None
        self._questions: QuestionAnswerer | None = None
        self._technique_model: object | None = None
        self._technique_model_loaded = False

    # -- parts --------------------------------------------------------------
    @property
    def kb(self) -> KnowledgeBase:
        if self._kb is None:
            self._kb = load_knowledge_base(self.settings.corpus_dir, (self.settings.user_examples_path,))
        return self._kb

    @property
    def embeddings(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embeddings(self.settings.embeddings)
        return self._embedder

    @property
    def model_name(self) -> str:
        return self.embeddings.name

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = IndexStore(make_client(self.settings), self.embeddings, self.model_name, self.settings.index.collection_prefix)
        return self._store

    @property
    def writer(self) -> ChatWriter:
        if self._writer is None:
            self._writer = LLMWriter(self.settings.llm)
        return self._writer

    @writer.setter
    def writer(self, writer: ChatWriter | None) -> None:
        """Use this writer for LLM answers from now on (None: the configured endpoint, when there is one)."""
        self._writer, self._given_writer = writer, writer is not None

    def problems(self):
        return validate(self.kb)

    def _forget(self, *, kb: bool = False) -> None:
        """Drop what was built from the knowledge base and the index; it is rebuilt on next use."""
        with self._lock:
            if kb:
                self._kb = None
                self._technique_model, self._technique_model_loaded = None, False
            self._analyzer = self._questions = None

    # -- index --------------------------------------------------------------
    @contextmanager
    def _build_lock(self):
        """One build at a time per data directory (processes and threads)."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock, FileLock(self.settings.data_dir / ".build.lock"):
            yield

    def build_index(self, *, force: bool = False, documents=(), progress=None) -> BuildReport:
        items = corpus_items(self.kb)
        items["passages"] = items["passages"] + document_items(documents)
        with self._build_lock():
            report = self.store.build(items, force=force, progress=progress)
        self._forget()
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
    @property
    def analyzer(self) -> Analyzer:
        return self.prepare()._analyzer

    def prepare(self) -> "Assistant":
        """Build the index and fit the models now, if not done yet (the first answer otherwise waits for them)."""
        with self._lock:
            if self._analyzer is None:
                self.ensure_index()
                manifest = self.store.manifest()
                markers = MarkerIndex(list(self.kb.narratives.values()))
                matcher, table = load_or_fit_matcher(
                    self.kb, self.store, self.embeddings, manifest, markers, self.settings.matching, self.settings.data_dir / "cache"
                )
                retriever = PassageRetriever(self.store, manifest.generation)
                self._analyzer = Analyzer(
                    self.kb, self.embeddings, matcher, markers, table, retriever, self.settings.matching, self.technique_model
                )
        return self

    @property
    def technique_model(self):
        """The technique model fitted on SemEval-2021 Task 6's training split and the annotated examples (cached in
        the data directory); None when either is missing, and techniques then come from the cards' cue patterns."""
        if not self._technique_model_loaded:
            self._technique_model = technique_model_or_none(
                self.kb, self.embeddings, self.settings.techniques.semeval_dir, self.settings.data_dir / "cache", self.model_name
            )
            self._technique_model_loaded = True
        return self._technique_model

    @property
    def questions(self) -> QuestionAnswerer:
        with self._lock:
            if self._questions is None:
                analyzer = self.analyzer
                vectors = VectorCache(self.settings.data_dir / "cache", "knowledge", self.embeddings, self.model_name)
                self._questions = QuestionAnswerer(self.kb, self.embeddings, analyzer.retriever, analyzer.markers, encode=vectors.encode)
            return self._questions

    def analyze(self, text: str) -> Analysis:
        text, notices = prepare_post(text, self.settings.app.max_post_chars)
        return self.analyzer.analyze(text, notices)

    def add_example(self, text: str, narratives: list[str], tactics: list[str], *, for_eval: bool = False) -> Example:
        """Save an analyst's labelled post; it joins the index at once (and an eval set if asked)."""
        text, _ = prepare_post(text, self.settings.app.max_post_chars)
        unknown = sorted(set(narratives) - set(self.kb.narratives)) + sorted(set(tactics) - set(self.kb.tactics))
        if unknown:
            raise InvalidInput(f"unknown id(s): {', '.join(unknown)}; pick narratives and tactics the knowledge base has")
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
        with self._lock:
            save_example(self.settings.user_examples_path, example)
            if for_eval:
                save_eval_record(self.settings.data_dir / "user-eval.jsonl", example, tactics)
            self._forget(kb=True)
            self.prepare()  # rebuild the index with the new example and refit the matcher
        return example

    # -- answers ------------------------------------------------------------
    @property
    def answers(self) -> AnswerWriter:
        return AnswerWriter(self.kb, self.settings.llm, rerank=self.settings.matching.llm_rerank)

    def use_llm(self, mode: str | None) -> tuple[ChatWriter | None, list[str]]:
        """The writer to ask (None: answer offline), and a notice when one was asked for but none is configured."""
        mode = mode or self.settings.llm.mode
        if mode == "offline":
            return None, []
        configured = self._given_writer or llm_configured()
        if mode == "llm" and not configured:
            return None, ["No LLM endpoint is configured (set OPENAI_API_KEY or OPENAI_BASE_URL); this is the offline answer."]
        return (self.writer if configured else None), []

    def ask_stream(self, text: str, mode: str | None = None):
        """`Partial` events (the checked answer so far) while an LLM writes, then one `Final` with the Answer."""
        analysis = self.analyze(text)
        writer, notices = self.use_llm(mode)
        yield from self.answers.answer(analysis, writer, notices)

    def ask(self, text: str, mode: str | None = None) -> Answer:
        """Analyse a post and explain it: offline, or written by the LLM when one is configured."""
        return final_answer(self.ask_stream(text, mode))

    def ask_many(self, texts: list[str]) -> list[Answer]:
        """Offline answers for many posts at once (batch evals): one embedding and one matcher pass."""
        prepared = [prepare_post(text, self.settings.app.max_post_chars) for text in texts]
        analyses = self.analyzer.analyze_many([t for t, _ in prepared], [n for _, n in prepared])
        return [self.answers.offline(analysis) for analysis in analyses]

    def follow_up_stream(self, question: str, focus: list[str] | None = None, mode: str | None = None):
        """A question about narratives, techniques or evidence, answered from the knowledge base, as events."""
        question, notices = prepare_post(question, self.settings.app.max_post_chars)
        found = self.questions.answer(question, focus)
        writer, extra = self.use_llm(mode)
        yield from self.answers.follow_up(question, found, writer, notices + extra)

    def follow_up(self, question: str, focus: list[str] | None = None, mode: str | None = None) -> FollowUpAnswer:
        return final_answer(self.follow_up_stream(question, focus, mode))


__all__ = [
    "Answer", "AnswerCandidate", "AnswerNarrative", "AnswerTactic", "Assistant", "EmptyPost", "Event", "Final",
    "FollowUpAnswer", "IngestError", "MATCHER_VERSION", "NarrativeLensError", "StoreUnavailable", "prepare_post",
]
