"""The matcher's fast paths give the same numbers as the plain computations they replace."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn.feature_extraction.text import CountVectorizer

from assistant.analysis.matcher import MarkerIndex, char_ngrams
from assistant.analysis.tactics import TacticDetector
from assistant.corpus import load_knowledge_base
from assistant.text import clean, segments
from conftest import REPO

POSTS = [
    "Machine-picked cotton: the so-called forced labour in Xinjiang is a lie invented by sanction-happy politicians.",
    "美国军火商靠战争发财。加沙的孩子在受苦，华盛顿却继续送炸弹！",
    "A quiet afternoon in Kashgar: lamb skewers, fresh naan and tea in the old town.",
    "",
]


def sklearn_tfidf(matcher, texts: list[str]) -> np.ndarray:
    """TF-IDF as sklearn's TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True) computes it."""
    counts = CountVectorizer(analyzer="char_wb", ngram_range=(2, 4), vocabulary=matcher.vocabulary).transform(texts).toarray()
    weights = np.where(counts > 0, 1.0 + np.log(np.maximum(counts, 1)), 0.0) * matcher.idf
    norms = np.linalg.norm(weights, axis=1, keepdims=True)
    return weights / np.where(norms == 0, 1.0, norms)


def test_lexical_features_equal_sklearns_tfidf(shipped_assistant):
    matcher = shipped_assistant.analyzer.matcher
    texts = [clean(post) for post in POSTS]
    fast = matcher.lexical(texts).toarray()
    assert fast.shape == (len(texts), len(matcher.vocabulary)) and np.allclose(fast, sklearn_tfidf(matcher, texts))
    assert fast[0].any() and not fast[-1].any()


def test_marker_hits_within_sentences_equal_scanning_each_sentence(shipped_assistant):
    markers = shipped_assistant.analyzer.matcher.markers
    for post in POSTS[:3]:
        text = clean(post)
        spans = segments(text)
        whole, within = markers.hits_within(text, spans)
        assert np.array_equal(whole, markers.hits(text))
        assert np.array_equal(within, markers.matrix([text[s:e] for s, e in spans]))
    assert markers.hits_within(clean(POSTS[0]), [])[0].any()


def test_sentence_rows_share_the_posts_embedding_and_keep_their_own_wording(shipped_assistant):
    analyzer = shipped_assistant.analyzer
    matcher = analyzer.matcher
    text = clean(POSTS[0] + " " + POSTS[2])
    spans = segments(text)
    sentences = [text[s:e] for s, e in spans]
    vectors = shipped_assistant.embeddings.encode([text], normalised=True)
    post = matcher.features([text], vectors)
    rows = matcher.sentence_features(sentences, post, [0] * len(sentences))
    width = vectors.shape[1]
    assert np.allclose(rows.dense[:, :width], post.dense[0, :width])
    assert np.array_equal(rows.dense[:, width : width + len(matcher.ids)], matcher.markers.matrix(sentences))
    assert np.allclose(rows.dense[:, width + len(matcher.ids) :], post.dense[0, width + len(matcher.ids) :])
    assert np.allclose(rows.lexical.toarray(), matcher.lexical(sentences).toarray())
    # The two-block product equals the product with the joined matrix.
    weights = np.random.default_rng(0).normal(size=(rows.matrix().shape[1], 3))
    assert np.allclose(rows.dot(weights), rows.matrix() @ weights)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_character_ngrams_equal_sklearns_char_wb_analyzer(text):
    assert char_ngrams(text) == CountVectorizer(analyzer="char_wb", ngram_range=(2, 4)).build_analyzer()(text)


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=300))
def test_lexical_features_match_on_any_text(shipped_assistant, text):
    matcher = shipped_assistant.analyzer.matcher
    assert np.allclose(matcher.lexical([text]).toarray(), sklearn_tfidf(matcher, [text]))


# -- marker phrases and technique cues: the fast scans find what the plain patterns find ------------------------

@pytest.fixture(scope="module")
def shipped_kb():
    return load_knowledge_base(REPO / "corpus")


def _alternation(phrases: list[str]) -> re.Pattern:
    """A narrative's markers as a plain alternation, longest first: what the trie replaces."""
    parts = []
    for phrase in sorted(phrases, key=lambda p: (-len(p), p)):
        pattern = re.escape(phrase)
        if re.match(r"\w", phrase, re.ASCII):
            pattern = r"\b" + pattern
        if re.search(r"\w$", phrase, re.ASCII):
            pattern += r"\b"
        parts.append(pattern)
    return re.compile("|".join(parts), re.IGNORECASE)


def _shuffled_case(draw, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.swapcase() if flip else c for c, flip in zip(text, flips))


@st.composite
def posts_with_phrases(draw, phrases: list[str]):
    pieces = draw(st.lists(st.one_of(
        st.sampled_from(phrases).flatmap(lambda p: st.just(p)),
        st.sampled_from(["", " ", ", ", "s", "ing", "-", "的", "#", "\n", "x"]),
        st.text(max_size=6),
    ), max_size=12))
    return _shuffled_case(draw, "".join(pieces))


def test_marker_trie_finds_what_plain_alternations_find(shipped_kb):
    cards = list(shipped_kb.narratives.values())
    markers = MarkerIndex(cards)
    plain = [_alternation(sorted({p.strip() for p in card.markers.all() if p.strip()})) for card in cards]
    phrases = sorted({p.strip() for card in cards for p in card.markers.all() if p.strip()})

    @settings(max_examples=300, deadline=None)
    @given(posts_with_phrases(phrases))
    def check(text):
        hits = markers.hits(text)
        for index, pattern in enumerate(plain):
            assert markers.spans(index, text) == [m.span() for m in pattern.finditer(text)]
            assert bool(hits[index]) == bool(pattern.search(text)), (cards[index].id, text)

    check()
    hits = markers.hits("They BAN XINJIANG COTTON while American-made bombs fall")
    assert hits[[c.id for c in cards].index("xinjiang-no-forced-labor")] and hits[[c.id for c in cards].index("us-complicit-in-gaza-suffering")]


def test_technique_cues_over_lower_cased_posts_find_what_the_ignorecase_flag_finds(shipped_kb):
    cards = list(shipped_kb.tactics.values())
    fast, reference = TacticDetector(cards), TacticDetector(cards, fold_case=False)
    words = sorted({w for example in shipped_kb.examples for w in re.findall(r"\w+|\W", example.text)})[:4000]

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.one_of(st.sampled_from(words), st.sampled_from([" ", "İ", "ß", "K", "!!", "#"]), st.text(max_size=4)), max_size=40))
    def check(pieces):
        text = " ".join(pieces)
        for variant in (text, text.upper(), text.title()):
            assert fast.find(variant) == reference.find(variant)

    check()
    for example in shipped_kb.examples[:400]:
        assert fast.find(example.text) == reference.find(example.text)
