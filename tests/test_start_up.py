"""What a start reads from disk instead of recomputing: the unpacked encoder, the fitted models with the
examples they were fitted on, and the knowledge base's embeddings. A cache can cost time, never a wrong answer."""

import pickle

import numpy as np
import pytest

from assistant import Assistant, Settings
from assistant.embeddings import MultilingualUSEEmbeddings

TEXTS = ["Machines pick all the cotton in Xinjiang.", "美国为了军火商的利益不断给乌克兰送武器。", "Kashgar night market food tour"]


def test_nothing_in_the_cache_directory_is_a_pickle(mini_corpus, tmp_path):
    """Every cached file (DATA_DIR/cache) is arrays or JSON read without pickle: a file planted there can cost a refit, never
    run code. (The bundled encoder is loaded afresh each start, about 0.4 s, for that reason.)"""
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=mini_corpus)
    Assistant(settings).ask("Cotton is machine-picked, the forced labor lie is over.")
    files = [path for path in settings.data_dir.rglob("*") if path.is_file() and "cache" in path.relative_to(settings.data_dir).parts]
    assert files
    for path in files:
        assert path.suffix in {".npz", ".npy", ".json"}, path
        if path.suffix in {".npz", ".npy"}:
            loaded = np.load(path, allow_pickle=False)  # raises for an object array
            if hasattr(loaded, "close"):
                loaded.close()
    assert np.allclose(MultilingualUSEEmbeddings(threads=1).encode(TEXTS), MultilingualUSEEmbeddings(threads=1).encode(TEXTS))


def test_a_warm_start_reads_no_examples_from_the_store_and_embeds_no_knowledge(mini_corpus, tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=mini_corpus)
    post = "Cotton is machine-picked, the forced labor lie is over."
    cold = Assistant(settings)
    first = cold.ask(post)
    first_follow_up = cold.follow_up("What is the evidence on cotton picking?")

    warm = Assistant(settings)

    def no_store_reads(*args, **kwargs):
        raise AssertionError("a warm start read the examples from the store")

    monkeypatch.setattr(warm.store, "all_items", no_store_reads)
    encoded: list[int] = []
    original = warm.embeddings.encode
    monkeypatch.setattr(warm.embeddings, "encode", lambda texts, **kw: encoded.append(len(texts)) or original(texts, **kw))
    again = warm.ask(post)
    follow_up = warm.follow_up("What is the evidence on cotton picking?")
    assert encoded == [1, 1]  # the post and the question, nothing of the knowledge base
    assert again.answer == first.answer and again.narratives == first.narratives
    assert follow_up.answer == first_follow_up.answer


def test_the_matcher_cache_holds_no_pickle_and_a_planted_one_is_never_read(mini_corpus, tmp_path):
    """The fitted matcher is stored as arrays and JSON (read with allow_pickle=False); a pickle planted in the
    cache directory under the old name runs nothing, and a damaged file is refitted, not trusted."""
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=mini_corpus)
    post = "Cotton is machine-picked, the forced labor lie is over."
    first = Assistant(settings).ask(post)
    cache = settings.data_dir / "cache"
    (saved,) = cache.glob("matcher-*.npz")
    with np.load(saved, allow_pickle=False) as arrays:  # raises if any entry needs a pickle
        assert "meta" in arrays.files and all(arrays[key].dtype != object for key in arrays.files)

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (cache / f"{saved.stem}.pkl").write_bytes(pickle.dumps(Payload()))
    assert Assistant(settings).ask(post).narratives == first.narratives
    assert not marker.exists()

    saved.write_bytes(b"PK\x03\x04 damaged")
    again = Assistant(settings).ask(post)
    assert again.narratives == first.narratives and not marker.exists()
    with np.load(next(cache.glob("matcher-*.npz")), allow_pickle=False) as arrays:
        assert "meta" in arrays.files  # refitted and rewritten
