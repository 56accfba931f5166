"""Build the index aside, then swap it in; reuse embeddings of unchanged items.

Each build writes a new *generation* of collections (cards, examples,
passages). Only when all of them are complete does a single manifest record
switch readers over, so a build killed half-way leaves the previous
generation answering. Items are keyed by a hash of their content: an item
already in the current generation keeps its vector and is not re-embedded.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from ..corpus import KnowledgeBase
from ..errors import CorpusError, NarrativeLensError
from .store import IndexWriteError, StoreUnavailable

KINDS = ("cards", "examples", "passages")
MANIFEST_ID = "current"
COSINE = {"hnsw:space": "cosine"}
BATCH = 2000


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    metadata: dict


@dataclass(frozen=True)
class Manifest:
    generation: str
    model: str
    digests: dict[str, str]
    counts: dict[str, int]
    built_at: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


def item_id(kind: str, text: str, metadata: dict) -> str:
    payload = json.dumps([kind, text, metadata], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _item(kind: str, text: str, metadata: dict) -> Item:
    # Chroma metadata values must be scalars or non-empty lists.
    metadata = {key: value for key, value in metadata.items() if value not in (None, [], "")}
    return Item(item_id(kind, text, metadata), text, metadata)


def require_usable(kb: KnowledgeBase, example_splits: tuple[str, ...] = ("train", "user")) -> None:
    """Raises CorpusError when the knowledge base cannot back an index and a matcher: no narrative cards (a wrong
    --corpus-dir, say), or fewer than two labelled examples with a narrative and two benign ones to fit on."""
    if not kb.narratives:
        found = "; ".join(str(problem) for problem in kb.problems[:3])
        raise CorpusError(
            f"no narrative cards in {kb.root}{f' ({found})' if found else ''}: point --corpus-dir or "
            "NARRATIVE_LENS_CORPUS_DIR at the knowledge base folder, and run `narrative-lens validate`"
        )
    examples = [e for e in kb.examples if e.split in example_splits]
    carrying = sum(1 for e in examples if set(e.narratives) & set(kb.narratives))
    benign = len(examples) - carrying
    if carrying < 2 or benign < 2:
        raise CorpusError(
            f"the knowledge base in {kb.root} has {carrying} training example(s) with a known narrative and {benign} "
            "benign one(s); the matcher needs at least two of each: add labelled posts to its examples/*.jsonl"
        )


def corpus_items(kb: KnowledgeBase, example_splits: tuple[str, ...] = ("train", "user")) -> dict[str, list[Item]]:
    """What the knowledge base contributes to each collection; CorpusError when it cannot back the assistant."""
    require_usable(kb, example_splits)
    cards = []
    for card in kb.narratives.values():
        text = "\n".join([card.title, card.summary, *card.claims])
        cards.append(_item("cards", text, {"kind": "narrative", "card_id": card.id, "title": card.title}))
    for tactic in kb.tactics.values():
        cards.append(
            _item("cards", f"{tactic.name}\n{tactic.summary}", {"kind": "tactic", "card_id": tactic.id, "title": tactic.name})
        )
    examples = [
        _item(
            "examples",
            example.text,
            {
                "example_id": example.id,
                "narratives": sorted(example.narratives),
                "lang": example.lang,
                "split": example.split,
                "platform": example.platform,
                "tactics": json.dumps([span.model_dump() for span in example.tactics], ensure_ascii=False),
                "rationale": example.rationale,
            },
        )
        for example in kb.examples
        if example.split in example_splits
    ]
    passages = []
    for source in kb.sources.values():
        for note in source.notes:
            passages.append(
                _item(
                    "passages",
                    note.text,
                    {
                        "source_id": source.id,
                        "title": source.display_title,
                        "publisher": source.publisher,
                        "date": source.date,
                        "url": source.url,
                        "locator": note.locator,
                        "origin": "corpus",
                    },
                )
            )
    return {"cards": cards, "examples": examples, "passages": passages}


def document_items(documents: Iterable[Document]) -> list[Item]:
    return [_item("passages", doc.page_content, dict(doc.metadata)) for doc in documents]


def digest(items: list[Item]) -> str:
    return hashlib.sha256("\n".join(sorted(item.id for item in items)).encode()).hexdigest()


class ReusingEmbeddings(Embeddings):
    """Embeds only texts it has not seen; known vectors come from the previous generation."""

    def __init__(self, inner: Embeddings, known: dict[str, list[float]], progress: Callable[[int], None] | None = None):
        self.inner = inner
        self.known = known
        self.progress = progress
        self.computed = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [text for text in dict.fromkeys(texts) if text not in self.known]
        if missing:
            for vector, text in zip(self.inner.embed_documents(missing), missing):
                self.known[text] = vector
            self.computed += len(missing)
        if self.progress:
            self.progress(len(texts))
        return [self.known[text] for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


@dataclass
class BuildReport:
    generation: str
    counts: dict[str, int]
    embedded: int
    reused: int
    changed: bool
    seconds: float
    removed_generations: list[str] = field(default_factory=list)


class IndexStore:
    """The generations of collections in one Chroma, and the manifest that picks one."""

    def __init__(self, client, embeddings: Embeddings, model_name: str, prefix: str = "narrative-lens"):
        self.client = client
        self.embeddings = embeddings
        self.model_name = model_name
        self.prefix = prefix
        self._open: dict[str, object] = {}  # collection name -> Chroma collection handle, for search

    # -- naming -------------------------------------------------------------
    def collection_name(self, kind: str, generation: str) -> str:
        return f"{self.prefix}-{kind}-{generation}"

    @property
    def manifest_name(self) -> str:
        return f"{self.prefix}-manifest"

    def _call(self, what: str, function, *args, write: bool = False, **kwargs):
        try:
            return function(*args, **kwargs)
        except NarrativeLensError:  # already a message for the user
            raise
        except Exception as error:
            if _is_connection_error(error):
                raise StoreUnavailable(f"the Chroma store is unavailable while {what}: {error}") from None
            if write:
                raise IndexWriteError(f"could not write the index while {what} ({type(error).__name__}: {error})") from None
            raise

    # -- manifest -----------------------------------------------------------
    def manifest(self) -> Manifest | None:
        def read():
            collection = self.client.get_or_create_collection(self.manifest_name, embedding_function=None)
            found = collection.get(ids=[MANIFEST_ID], include=["documents"])
            return found["documents"][0] if found["ids"] else None

        document = self._call("reading the manifest", read)
        if not document:
            return None
        data = json.loads(document)
        return Manifest(**data)

    def _write_manifest(self, manifest: Manifest) -> None:
        collection = self.client.get_or_create_collection(self.manifest_name, embedding_function=None)
        collection.upsert(ids=[MANIFEST_ID], documents=[manifest.to_json()], embeddings=[[1.0]], metadatas=[{"generation": manifest.generation}])

    # -- reading ------------------------------------------------------------
    def vectorstore(self, kind: str, generation: str) -> Chroma:
        return Chroma(
            collection_name=self.collection_name(kind, generation),
            embedding_function=self.embeddings,
            client=self.client,
            collection_metadata=COSINE,
            create_collection_if_not_exists=False,
        )

    def search(self, kind: str, generation: str, vectors: list[list[float]], k: int) -> list[list[tuple[Document, float]]]:
        """The k nearest items of a generation to each vector, with their cosine similarity, from one query (each
        query costs Chroma a fixed 2 ms or more, whatever its size). Chroma's own API: LangChain's wrapper returns
        the cosine *distance* under the name of a relevance score, one vector at a time."""
        if k <= 0 or not vectors:
            return [[] for _ in vectors]
        name = self.collection_name(kind, generation)
        collection = self._open.get(name)
        if collection is None:  # opening costs a lookup in the store: once per collection
            collection = self._open[name] = self._call(f"opening {kind}", self.client.get_collection, name, embedding_function=None)
        results = self._call(
            f"searching {kind}", collection.query, query_embeddings=vectors, n_results=k, include=["documents", "metadatas", "distances"]
        )
        found = []
        for documents, metadatas, ids, distances in zip(results["documents"], results["metadatas"], results["ids"], results["distances"]):
            found.append([
                (Document(page_content=text, metadata=metadata or {}, id=item_id), 1.0 - float(distance))
                for text, metadata, item_id, distance in zip(documents, metadatas, ids, distances) if text is not None
            ])
        return found

    def all_items(self, kind: str, generation: str, with_vectors: bool = True) -> dict:
        collection = self.client.get_collection(self.collection_name(kind, generation), embedding_function=None)
        include = ["documents", "metadatas"] + (["embeddings"] if with_vectors else [])
        return self._call(f"reading {kind}", collection.get, include=include)

    # -- building -----------------------------------------------------------
    def build(
        self,
        items: dict[str, list[Item]],
        *,
        carry_ingested: bool = True,
        force: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> BuildReport:
        """Write a new generation holding `items` (plus previously ingested passages), then swap."""
        started = time.perf_counter()
        current = self.manifest()
        known: dict[str, list[float]] = {}
        items = {kind: list(items.get(kind, [])) for kind in KINDS}
        if current and current.model == self.model_name:
            for kind in KINDS:
                try:
                    stored = self.all_items(kind, current.generation)
                except StoreUnavailable:
                    raise
                except Exception:
                    continue  # a missing collection only means nothing to reuse
                for item_key, text, metadata, vector in zip(
                    stored["ids"], stored["documents"], stored["metadatas"], stored["embeddings"]
                ):
                    known[text] = list(vector)
                    if carry_ingested and kind == "passages" and (metadata or {}).get("origin") == "ingested":
                        items["passages"].append(Item(item_key, text, dict(metadata)))
        for kind in KINDS:
            items[kind] = list({item.id: item for item in items[kind]}.values())
        digests = {kind: digest(items[kind]) for kind in KINDS}
        if not force and current and current.model == self.model_name and current.digests == digests:
            return BuildReport(current.generation, current.counts, 0, 0, False, time.perf_counter() - started)

        generation = f"{time.time_ns():x}"
        reusing = ReusingEmbeddings(self.embeddings, known, progress)
        for kind in KINDS:
            store = Chroma(
                collection_name=self.collection_name(kind, generation),
                embedding_function=reusing,
                client=self.client,
                collection_metadata=COSINE,
            )
            batch = items[kind]
            for offset in range(0, len(batch), BATCH):
                chunk = batch[offset : offset + BATCH]
                self._call(
                    f"writing {kind}",
                    store.add_texts,
                    write=True,
                    texts=[item.text for item in chunk],
                    metadatas=[item.metadata for item in chunk],
                    ids=[item.id for item in chunk],
                )
        manifest = Manifest(
            generation=generation,
            model=self.model_name,
            digests=digests,
            counts={kind: len(items[kind]) for kind in KINDS},
            built_at=time.time(),
        )
        self._call("switching to the new index", self._write_manifest, manifest, write=True)
        removed = self.remove_older_generations(generation)
        total = sum(manifest.counts.values())
        return BuildReport(
            generation, manifest.counts, reusing.computed, total - reusing.computed, True, time.perf_counter() - started, removed
        )

    def generations(self) -> set[str]:
        found = set()
        for collection in self._call("listing collections", self.client.list_collections):
            name = getattr(collection, "name", collection)
            for kind in KINDS:
                head = f"{self.prefix}-{kind}-"
                if name.startswith(head):
                    found.add(name[len(head) :])
        return found

    def remove_older_generations(self, keep: str) -> list[str]:
        """Drop generations older than `keep`, including any left by a crashed build.

        Newer ones are left alone: they may belong to a build still running in
        another process that shares the same Chroma server.
        """
        removed = []
        for generation in sorted(self.generations()):
            if len(generation) == len(keep) and generation < keep or len(generation) < len(keep):
                for kind in KINDS:
                    try:
                        self.client.delete_collection(self.collection_name(kind, generation))
                    except Exception:
                        pass  # already gone
                removed.append(generation)
        return removed


def _is_connection_error(error: Exception) -> bool:
    names = {type(error).__name__, *(type(e).__name__ for e in _causes(error))}
    text = str(error).lower()
    return bool(
        names & {"ConnectError", "ConnectionError", "ConnectTimeout", "ReadTimeout", "RemoteProtocolError", "ConnectionRefusedError"}
        or "connection refused" in text
        or "could not connect" in text
    )


def _causes(error: BaseException):
    seen = 0
    while error.__cause__ or error.__context__:
        error = error.__cause__ or error.__context__
        seen += 1
        if seen > 10:
            break
        yield error
