"""Which Chroma to talk to: the embedded store in the data directory, or a server."""

from __future__ import annotations

from urllib.parse import urlparse

import chromadb
from chromadb.config import Settings as ChromaSettings

from ..errors import IndexWriteError, StoreUnavailable
from ..settings import Settings

__all__ = ["IndexWriteError", "StoreUnavailable", "describe", "make_client"]


def _chroma_settings() -> ChromaSettings:
    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def make_client(settings: Settings) -> chromadb.ClientAPI:
    """A Chroma client: HTTP when a server URL is configured, embedded otherwise."""
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise StoreUnavailable(f"NARRATIVE_LENS_CHROMA_URL must look like http://host:port, got {settings.chroma_url!r}")
        try:
            return chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=_chroma_settings(),
            )
        except Exception as error:  # chromadb raises ValueError or connection errors here
            raise StoreUnavailable(f"cannot reach the Chroma server at {settings.chroma_url}: {error}") from None
    path = settings.data_dir / "chroma"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
    except Exception as error:
        raise StoreUnavailable(f"cannot open the index at {path}: {error}") from None


def describe(settings: Settings) -> str:
    return f"Chroma server {settings.chroma_url}" if settings.chroma_url else f"embedded Chroma in {settings.data_dir / 'chroma'}"
