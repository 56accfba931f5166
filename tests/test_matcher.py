"""The matcher's fast paths give the same numbers as the plain computations they replace."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.text import clean, segments

POSTS = [
    "Machine-picked cotton: the so-called forced labour in Xinjiang is a lie invented by sanction-happy politicians.",
    "美国军火商靠战争发财。加沙的孩子在受苦，华盛顿却继续送炸弹！",
    "A quiet afternoon in Kashgar: lamb skewers, fresh naan and tea in the old town.",
    "",
]


def test_lexical_features_equal_sklearns_transform(shipped_assistant):
    matcher = shipped_assistant.analyzer.matcher
    texts = [clean(post) for post in POSTS]
    fast = matcher.lexical(texts).toarray()
    plain = matcher.vectorizer.transform([text.lower() for text in texts]).toarray()
    assert fast.shape == plain.shape and np.allclose(fast, plain)


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


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=300))
def test_lexical_features_match_on_any_text(shipped_assistant, text):
    matcher = shipped_assistant.analyzer.matcher
    fast = matcher.lexical([text]).toarray()
    plain = matcher.vectorizer.transform([text.lower()]).toarray()
    assert np.allclose(fast, plain)
