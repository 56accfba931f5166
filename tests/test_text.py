import pytest
from hypothesis import given
from hypothesis import strategies as st

from assistant.text import clean, hashtag_form, normalise, segments

pytestmark = pytest.mark.unit  # no encoder, Chroma or server: part of the fast tier


def test_zero_width_and_homoglyphs_are_folded():
    post = "Xіnjіang\u200b cоtton"  # Cyrillic і and о, a zero-width space
    normal = normalise(post)
    assert normal.text == "Xinjiang cotton"


def test_fullwidth_text_is_nfkc_normalised():
    assert normalise("ＵＳＡ　ｗａｒ").text == "USA war"


def test_spans_map_back_to_the_original_post():
    post = "A\u200bB cоtton pickers"
    normal = normalise(post)
    start = normal.text.index("cotton")
    o_start, o_end = normal.original_span(start, start + len("cotton"))
    assert post[o_start:o_end] == "cоtton"


def test_segments_split_english_and_chinese_sentences():
    text = "First claim here. 第二句话在这里。Third one!"
    spans = segments(text)
    assert [text[s:e] for s, e in spans] == ["First claim here.", "第二句话在这里。", "Third one!"]


@given(st.text())
def test_original_span_always_lands_inside_the_post(text):
    normal = normalise(text)
    assert len(normal.origin) == len(normal.text)
    if normal.text:
        start, end = normal.original_span(0, len(normal.text))
        assert 0 <= start < end <= len(text)


def test_look_alikes_fold_only_where_they_disguise_latin():
    # A Russian text keeps its words; a Latin word disguised with Cyrillic letters inside it is still folded.
    assert clean("Санкции против России") == "Санкции против России"
    assert clean("Санкции и Хіnјіаng") == "Санкции и Xinjiang"
    # A text written with look-alike letters only (no genuine Cyrillic) is folded throughout.
    assert clean("Хіnјіаng соttоn") == "Xinjiang cotton"


def test_hashtag_form_joins_only_long_latin_phrases():
    assert hashtag_form("adrian zenz") == "adrianzenz"
    assert hashtag_form("forced-labo") == "forcedlabo"
    assert hashtag_form("us lab") is None  # too short: a joined short phrase turns up inside other words
    assert hashtag_form("detrick") is None  # one word is already its own tag
    assert hashtag_form("德特里克堡") is None


def test_card_phrases_are_found_in_hashtags():
    from assistant.analysis.claims import ClaimFrames
    from assistant.analysis.matcher import MarkerIndex
    from assistant.corpus.models import NarrativeCard

    card = NarrativeCard.model_validate({
        "id": "labour-denial", "campaign": "test", "title": "t", "summary": "s", "claims": ["c"],
        "markers": {"en": ["adrian zenz"]}, "frames": [[["forced labo*"], ["smear*"]]],
        "tactics": [], "facts": [{"text": "f", "source": "src", "locator": "p. 1"}], "sources": ["src"],
    })
    markers, frames = MarkerIndex([card]), ClaimFrames([card], {})
    post = "The #US #ForcedLabour smears all come from #AdrianZenz"  # constructed
    assert markers.hits(post)[0] == 1 and frames.hits(post)[0] == 1
    plain = "The US says forced labour; smears come from Zenz"  # constructed: no joined tag, no full marker
    assert markers.hits(plain)[0] == 0 and frames.hits(plain)[0] == 1
    assert markers.hits("#AdrianZenzFan club")[0] == 0  # a tag that goes on is another word


def test_evasions_are_undone_before_matching():
    # Constructed lines, each hiding "Fort Detrick" or a Xinjiang phrase the way keyword-filter evasion does.
    assert normalise("The virus came from F o r t D e t r i c k").text == "The virus came from FortDetrick"
    assert normalise("新 疆 棉 花 是 机器采摘的").text == "新疆棉花是机器采摘的"
    assert normalise("\u202ekcirteD troF morf emac suriv ehT\u202c").text == "The virus came from Fort Detrick"
    assert normalise("x1nj1ang c0tt0n, f0rc3d lab0ur").text == "xinjiang cotton, forced labour"
    assert normalise("COVID19, 5G, the G7, 2nd wave, me@home").text == "COVID19, 5G, the G7, 2nd wave, me@home"
    assert normalise("Fort Detrick " + "😀🔥" * 150).text == "Fort Detrick 😀🔥😀"
    assert normalise("Plan A B C").text == "Plan A B C"  # three single letters are a list, not a spaced word
    hidden = normalise("Look: \u202ekcirteD troF\u202c!")
    start = hidden.text.index("Fort")
    assert hidden.original[slice(*hidden.original_span(start, start + len("Fort Detrick")))] == "kcirteD troF"
