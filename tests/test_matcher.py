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


def test_phrase_scores_come_from_the_phrases_own_words(shipped_assistant):
    """A clause scores the same whatever post it sits in: the post's match never lends it a score."""
    analyzer = shipped_assistant.analyzer
    matcher = analyzer.matcher
    clause = clean("Washington keeps shipping bombs to Israel so that Lockheed can book record profits")
    alone = matcher.score_phrases(matcher.inputs([clause]))
    inside = [analyzer.analyze(f"{clause}. {other}") for other in (POSTS[2], "Priorities!")]
    assert alone.shape == (1, len(matcher.ids))
    for analysis in inside:
        for match in analysis.narratives:
            for phrase in match.evidence.phrases:
                assert "Priorities" not in phrase.text and "naan" not in phrase.text
    # Scoring is a function of the text alone: the same clause twice gives the same numbers.
    assert np.allclose(alone, matcher.score_phrases(matcher.inputs([clause, POSTS[2]]))[:1])


def test_tree_ensemble_scores_as_sklearn_does():
    from sklearn.ensemble import HistGradientBoostingClassifier

    from assistant.analysis.trees import TreeEnsemble

    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 6))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(0, 0.3, 600) > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=9, early_stopping=False).fit(x, y)
    ensemble = TreeEnsemble.from_sklearn(model)
    probe = rng.normal(size=(200, 6)) * 2
    assert np.allclose(ensemble.decision(probe), model.decision_function(probe))
    again = TreeEnsemble.from_arrays(ensemble.arrays())
    assert np.allclose(again.decision(probe), model.decision_function(probe))
    assert ensemble.decision(np.zeros((0, 6))).shape == (0,)


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


def test_claim_frames_scan_terms_as_written():
    """Whole words for Latin terms, "*" for any ending, capitals for acronyms, Chinese anywhere, "-" as a space."""
    from assistant.analysis.claims import ClaimFrames
    from assistant.corpus.models import Fact, NarrativeCard

    card = NarrativeCard(
        id="origin", campaign="test", title="t", summary="s", claims=["c"],
        facts=[Fact(text="f", source="src", locator="l")], sources=["src"],
        frames=[[["@virus"], ["@us", "army lab*"], ["made", "leak*", "制造"]]],
    )
    frames = ClaimFrames([card], {"virus": ["virus", "病毒"], "us": ["US", "america", "美国"]})
    assert frames.hits("The virus was made in America")[0] == 1
    assert frames.hits("The virus leaked from an army laboratory")[0] == 1  # army lab* goes on: laboratory
    assert frames.hits("病毒是美国制造的")[0] == 1
    assert frames.hits("Join us: the virus was made somewhere")[0] == 0  # "us" is not the US
    assert frames.hits("The virus was made in the US")[0] == 1
    assert frames.hits("The viruses were remade in americana")[0] == 0  # whole words only
    assert frames.hits("The virus leak-proof suit made in America")[0] == 1
    hit = frames.scan("virus made in America")[0]
    assert [("virus made in America")[s:e] for s, e in hit.spans] == ["virus", "America", "made"]


def test_averaged_tree_ensembles_score_the_mean():
    from sklearn.ensemble import HistGradientBoostingClassifier

    from assistant.analysis.trees import TreeEnsemble

    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] - x[:, 3] > 0).astype(int)
    models = [HistGradientBoostingClassifier(max_iter=20, random_state=s, early_stopping=False).fit(x[s::2], y[s::2]) for s in (0, 1)]
    averaged = TreeEnsemble.average([TreeEnsemble.from_sklearn(m) for m in models])
    probe = rng.normal(size=(50, 4))
    assert np.allclose(averaged.decision(probe), np.mean([m.decision_function(probe) for m in models], axis=0))
