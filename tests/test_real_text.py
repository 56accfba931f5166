"""How the matcher behaves on text written the way real posts, headlines and reports are.

Every sentence here was written for this test (the issue's examples among them); none is taken from the
real-text sets, which are only measured, never copied. A careful reader's verdict is the expected one.
"""

from __future__ import annotations

import pytest

from assistant.analysis.stance import stance_cues

# Short claims in their plainest form: one line, often without a marker phrase.
SHORT_CLAIMS = [
    ("The protests in Hong Kong are funded by America", "hong-kong-protests-foreign-plot"),
    ("Covid-19 came from Fort Detrick, not Wuhan. The US lab leak is being covered up.", "covid-origin-blame-us"),
    ("The coronavirus was cooked up in an American military laboratory", "covid-origin-blame-us"),
    ("新疆的棉花都是机器采摘的，哪来的强迫劳动？这是美国编造的世纪谎言。", "xinjiang-no-forced-labor"),
    ("The US keeps sending bombs to Israel so its arms makers can profit.", "us-fuels-wars-for-profit"),
]

# Disinformation outside the knowledge base's narratives: "no known narrative", not a near miss.
OUTSIDE = [
    "The Baltic states are run by fascists",
    "The referendum in Donetsk reflected the will of the people",
    "Aliens brought the coronavirus on a comet",
    "Vaccines contain microchips that track you through 5G towers",
    "NATO is secretly preparing to invade Belarus next spring",
]

# Reporting on, quoting in order to criticise, or refuting a narrative is not carrying it.
STANCE = [
    "Chinese state media keep claiming the camps were vocational schools. The evidence says otherwise.",
    "新疆的“职业技能教育培训中心”实际上是关押维吾尔人的拘留营。",
    "Beijing blamed the US army for Covid without a shred of evidence",
    "Fact check: the claim that Xinjiang cotton is all machine-picked, so forced labour is impossible, is misleading; researchers documented state labour transfers.",
    "Researchers say Spamouflage accounts pushed the claim that the virus came from Fort Detrick, with little engagement.",
    pytest.param(
        "China's government detains Uyghurs in camps and calls it counter-terrorism. It is a crime against humanity.",
        marks=pytest.mark.xfail(strict=True, reason="known miss: scored 0.19 for west-plots-to-contain-china, above the "
                                "0.13 threshold; China-critical posts with no stance cue still lean on topic"),
    ),
]

# On the same topics, written as newsrooms, NGOs and travellers write: never flagged.
BENIGN = [
    "WASHINGTON (Reuters) - The State Department approved a possible $1.1 billion sale of missiles and radar to Taiwan, the Pentagon said on Friday.",
    "Human Rights Watch urged the UN Human Rights Council to open an inquiry into detention and forced labour in Xinjiang.",
    "Two days in Kashgar: the old town at dawn, hand-pulled noodles and a night market that runs past midnight. Highly recommend! #travel https://t.co/k2Qw8Lm1Zp",
    "@AP Great thread on how Hong Kong's tram network survived a century of change #HongKong https://t.co/Pz71qWm0Rb",
    "RT @WHO: New guidance on COVID-19 booster doses for older adults is out today. Read it here: https://t.co/Wb3Nq7sKd2",
]

TOO_LITTLE = ["🇺🇸🇺🇸🇺🇸", "lol", "Priorities!", "https://t.co/Xy12AbCd", "😀😀😀", "#Xinjiang"]


@pytest.fixture(scope="module")
def analyse(shipped_assistant):
    return shipped_assistant.analyze


@pytest.mark.parametrize("text,narrative", SHORT_CLAIMS)
def test_short_canonical_claims_are_found(analyse, text, narrative):
    analysis = analyse(text)
    assert analysis.narratives and analysis.narratives[0].id == narrative, (text, analysis.candidates)
    phrases = analysis.narratives[0].evidence.phrases
    assert phrases, "a match must show the words that carry it"


NOT_CARRYING = (
    [pytest.param("outside", text, id=f"outside-{i}") for i, text in enumerate(OUTSIDE)]
    + [pytest.param("stance", *item.values, marks=item.marks, id=f"stance-{i}") if hasattr(item, "values") else pytest.param("stance", item, id=f"stance-{i}")
       for i, item in enumerate(STANCE)]
    + [pytest.param("benign", text, id=f"benign-{i}") for i, text in enumerate(BENIGN)]
)


@pytest.mark.parametrize("kind,text", NOT_CARRYING)
def test_no_known_narrative_for_what_does_not_carry_one(analyse, kind, text):
    """Disinformation outside the narratives, reports and debunks of a narrative, news, NGO and travel posts."""
    analysis = analyse(text)
    assert not analysis.narratives, (kind, text, [(m.id, m.score) for m in analysis.narratives])


@pytest.mark.parametrize("text", TOO_LITTLE)
def test_too_little_text_abstains_with_that_reason(analyse, text):
    analysis = analyse(text)
    assert not analysis.narratives and analysis.abstention == "too little text"
    assert not analysis.tactics


def test_abstention_reasons_reach_the_answer(shipped_assistant):
    answer = shipped_assistant.ask("🇺🇸🇺🇸🇺🇸")
    assert answer.verdict == "no known narrative" and answer.abstention == "too little text"
    assert "too little text to judge" in answer.answer
    assert shipped_assistant.ask("The coronavirus was cooked up in an American military laboratory").abstention is None


def test_high_confidence_needs_close_evidence(shipped_assistant):
    """High confidence only with a marker, a claim-shaped clause, or an example or claim as near as typical."""
    matcher = shipped_assistant.analyzer.matcher
    posts = [text for text, _ in SHORT_CLAIMS] + [
        "Wake up! Everything the West says about China is a lie, every single word of it.",
        "America bad. China good. That's all you need to know.",
        "Another day, another lie from the Western media about my country.",
    ]
    for text in posts:
        for match in shipped_assistant.analyze(text).narratives:
            if match.confidence == "high":
                close = any(p.reason in ("marker", "frame") for p in match.evidence.phrases) or (
                    match.evidence.examples and match.evidence.examples[0].similarity >= matcher.near
                )
                assert close and match.score >= 0.8, (text, match)


def test_scores_spread_instead_of_sitting_at_one(shipped_assistant):
    scores = [m.score for text, _ in SHORT_CLAIMS for m in shipped_assistant.analyze(text).narratives]
    assert scores and max(scores) < 0.999
    assert all(0 <= s <= 1 for s in scores)


def test_phrases_are_shorter_than_the_post_and_each_has_its_own_score(analyse):
    text = ("Honestly I have lived here ten years and love the food, the people, all of it, "
            "but the so-called forced labour in Xinjiang is a lie, because the cotton is machine-picked, "
            "and anyone who says otherwise is paid by Washington.")
    analysis = analyse(text)
    assert analysis.narratives
    phrases = analysis.narratives[0].evidence.phrases
    assert phrases and all(len(p.text) < len(text) for p in phrases)
    assert all(p.text == text[p.start:p.end] for p in phrases)
    assert not any("love the food" in p.text for p in phrases)
    assert len({p.score for p in phrases}) == len(phrases) or len(phrases) == 1 or any(p.reason == "marker" for p in phrases)


def test_surface_features_alone_do_not_flag(analyse):
    """Hashtags, @mentions and links appear in benign posts all the time."""
    for text in [
        "@CGTNOfficial lovely footage of the lantern festival in Pingyao #ChineseNewYear #travel https://t.co/Lm3kQ8wZ1x",
        "RT @business: China's exports rose 4.1% in October from a year earlier, beating forecasts https://t.co/Gq72LpZx0e #markets",
    ]:
        assert not analyse(text).narratives, text


def test_stance_cues_tell_reporting_and_refuting_apart():
    assert stance_cues("State media claim the camps were schools")[0] >= 1
    assert stance_cues("Fact check: this is false and there is no evidence")[1] >= 1
    assert stance_cues("网传美国制造病毒，事实查核显示不实")[1] >= 1
    assert not stance_cues("The virus came from an American lab").any()


def test_rejecting_the_critics_is_not_mistaken_for_a_debunk(analyse):
    """Narrative posts reject their critics' accusations; only attributing a claim to the narrative's own side
    (state media, officials) and rejecting it reads as a report or a debunk."""
    for text in ["The accusations of forced labour in Xinjiang are false: the cotton is picked by machines.",
                 "Western allegations about Xinjiang camps are baseless lies."]:
        assert analyse(text).abstention != "reports or refutes the claim", text
    assert analyse("Chinese officials claimed the virus came from an American lab, without any evidence.").abstention == "reports or refutes the claim"
