"""The shipped knowledge base: complete, in its own words, and matching as a journalist needs."""

import re
from collections import Counter

import pytest

from assistant.corpus import load_knowledge_base, validate
from assistant.explain import check_citations
from conftest import REPO

REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base(REPO / "corpus")


def test_validate_passes(kb):
    assert [str(p) for p in validate(kb)] == []


def test_each_narrative_has_enough_english_and_chinese_examples(kb):
    positives, chinese = Counter(), Counter()
    for example in kb.examples:
        for narrative in example.narratives:
            positives[narrative] += 1
            chinese[narrative] += example.lang in ("zh-Hans", "zh-Hant")
    for narrative in kb.narratives:
        assert positives[narrative] >= 15, narrative
        assert chinese[narrative] >= 5, narrative
    total = len(kb.examples)
    assert total >= 300
    assert sum(e.lang != "en" for e in kb.examples) / total >= 0.35
    assert sum(e.benign for e in kb.examples) / total >= 0.25
    assert all(e.constructed for e in kb.examples if e.split != "user")


def test_every_fact_resolves_to_a_source_record(kb):
    for card in kb.narratives.values():
        assert len(card.facts) >= 1
        for fact in card.facts:
            assert fact.source in kb.sources and fact.locator.strip()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.casefold())


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference is not beside this checkout")
def test_no_sentence_of_the_reference_reports_appears_in_the_corpus():
    """No run of 8 words from a report appears anywhere in corpus/ or evals/ (titles excepted)."""
    grams = set()
    for report in REFERENCE.glob("*.txt"):
        lines = report.read_text(encoding="utf-8").splitlines()
        for line in lines[1:]:  # the first line is the report's title, which citations must quote
            words = _words(line)
            grams.update(tuple(words[i : i + 8]) for i in range(len(words) - 7))
    offenders = []
    for path in [*(REPO / "corpus").rglob("*.md"), *(REPO / "corpus").rglob("*.jsonl"), *(REPO / "evals").glob("*.jsonl")]:
        if path.name == "README.md":
            continue
        words = _words(path.read_text(encoding="utf-8"))
        for i in range(len(words) - 7):
            if tuple(words[i : i + 8]) in grams:
                offenders.append(f"{path.relative_to(REPO)}: {' '.join(words[i:i + 8])}")
    assert offenders == []


# -- matching, as a journalist would use it ------------------------------------------

def _resolves(answer):
    ids = {c.id for c in answer.citations}
    check = check_citations(answer.answer, ids)
    return check.total > 0 and check.valid


def test_chinese_post_on_mechanised_cotton_and_sanctions(shipped_assistant):
    answer = shipped_assistant.ask("新疆棉花现在基本都是大型采棉机采摘，根本不存在什么强迫劳动。美国借口人权制裁新疆棉，受害的是当地棉农。")
    assert answer.narratives[0].id == "xinjiang-no-forced-labor"
    assert answer.lang == "zh"
    assert _resolves(answer)
    assert any(item.narrative_id == "xinjiang-no-forced-labor" for item in answer.context)


@pytest.mark.parametrize(
    "post, expected",
    [
        ("Washington pours billions of weapons into Ukraine and Israel because every war is a payday for Lockheed and Raytheon. Peace would ruin their profits.", "us-fuels-wars-for-profit"),
        ("美国为了军火商的利益，一直往乌克兰送武器，故意拖长战争。", "us-fuels-wars-for-profit"),
        ("Fort Detrick closed its lab in 2019 and months later the pandemic began. Why won't the US let the WHO investigate its own biolabs?", "covid-origin-blame-us"),
        ("香港暴徒背後有美國撐腰，這根本是一場顏色革命。", "hong-kong-protests-foreign-plot"),
        ("The so-called genocide in Xinjiang is a lie cooked up by anti-China politicians and paid researchers.", "xinjiang-abuses-are-lies"),
    ],
)
def test_posts_match_their_narrative(shipped_assistant, post, expected):
    answer = shipped_assistant.ask(post)
    assert answer.narratives and answer.narratives[0].id == expected, [n.id for n in answer.narratives]
    assert _resolves(answer)
    assert "not proof" in answer.answer or "不能证明" in answer.answer


@pytest.mark.parametrize(
    "post",
    [
        "WASHINGTON (Reuters) - The State Department approved a possible sale of precision-guided munitions to Israel worth several hundred million dollars, the Pentagon said on Friday. Congress was notified of the proposed sale.",
        "Human Rights Watch today called on governments to press for the release of Uyghurs arbitrarily detained in Xinjiang and to support an independent investigation into reported abuses.",
        "Spent the evening at the Kashgar night market: lamb skewers, fresh naan straight from the tandoor and the sweetest pomegranate juice. Highly recommend the polo with carrots!",
        "喀什老城的夜市真热闹，烤包子和石榴汁都特别好吃，推荐大家去逛逛。",
    ],
)
def test_benign_posts_on_the_same_topics_are_not_flagged(shipped_assistant, post):
    answer = shipped_assistant.ask(post)
    assert answer.narratives == [], [(n.id, n.score) for n in answer.narratives]
    assert answer.verdict == "no known narrative"
    assert "no known narrative" in answer.answer or "未匹配到已知叙事" in answer.answer


def test_homoglyphs_and_zero_width_characters_still_match(shipped_assistant):
    plain = "Xinjiang cotton is picked by machines, there is no forced labour, and US sanctions only hurt the cotton farmers."
    disguised = plain.replace("Xinjiang", "Xіnjіang").replace("cotton", "cоtton").replace("forced", "for\u200bced")
    first = shipped_assistant.ask(plain)
    second = shipped_assistant.ask(disguised)
    assert second.narratives and second.narratives[0].id == first.narratives[0].id == "xinjiang-no-forced-labor"
    for narrative in second.narratives:
        for phrase in narrative.evidence.phrases:
            assert disguised[phrase.start:phrase.end] == phrase.text


REAL_TEXT = REPO.parent / "shared" / "data" / "real-text"


@pytest.mark.skipif(not REAL_TEXT.is_dir(), reason="../shared/data/real-text is not beside this checkout")
def test_no_real_text_is_copied_into_the_project():
    """The real-text sets are measured from their path, never copied: no run of 8 words from them appears in
    corpus/, evals/ or the tests."""
    import json

    grams = set()
    for path in [REAL_TEXT / "dev.jsonl", *sorted((REAL_TEXT / "pool").glob("*.jsonl"))]:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                words = _words(json.loads(line).get("text", ""))
                grams.update(tuple(words[i : i + 8]) for i in range(len(words) - 7))
    offenders = []
    for path in [*(REPO / "corpus").rglob("*.md"), *(REPO / "corpus").rglob("*.jsonl"), *(REPO / "evals").glob("*.jsonl"), *(REPO / "tests").glob("*.py")]:
        words = _words(path.read_text(encoding="utf-8"))
        offenders += [f"{path.relative_to(REPO)}: {' '.join(words[i:i + 8])}" for i in range(len(words) - 7) if tuple(words[i : i + 8]) in grams]
    assert offenders == []
