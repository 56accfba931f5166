"""A second campaign, in another language, added from files alone (issue 14, item 8).

The code names no campaign: the scope caveat, the languages cards and examples may use and the words that would
attribute a post to the campaign's actor come from corpus/campaign.yaml. These tests write a small Russian-language
campaign into a temporary corpus and ask about it end to end.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO, citations_resolve, write_corpus, write_mini_corpus

from assistant.analysis import detect_language
from assistant.corpus import load_knowledge_base, validate
from assistant.explain.composer import answer_language, closing_block
from assistant.explain.llm import check_sentence

CAMPAIGN = """\
id: test-doppelganger
name:
  en: "Test Doppelganger"
  zh: "Test Doppelganger"
aliases: ["Test Clone"]
languages: [ru]
attribution: [russian, kremlin, кремлёвская]
"""

SOURCE = """---
id: ru-test-report
title: "A test report on Russian-language narratives"
publisher: "Test Lab"
author: "B. Author"
date: "2024-05-01"
kind: report
notes:
  - text: "The report found posts claiming that sanctions hurt Europe more than Russia."
    locator: "Section 1"
  - text: "The report found posts claiming that Western aid is stolen and resold."
    locator: "Section 2"
---
A report made up for the tests.
"""

NARRATIVES = {
    "sanctions-hurt-europe": """---
id: sanctions-hurt-europe
campaign: test-doppelganger
title: "Sanctions hurt Europe, not Russia"
summary: "Claims that sanctions ruin European households while Russia's economy grows."
claims: ["Sanctions hurt Europe more than Russia.", "Europeans will freeze this winter."]
markers:
  en: ["sanctions backfire"]
  ru: ["санкции бьют по Европе", "европейцы замёрзнут"]
tactics: [whataboutism]
facts:
  - text: "The test report describes claims that sanctions hurt Europe more than Russia."
    source: ru-test-report
    locator: "Section 1"
sources: [ru-test-report]
---
""",
    "aid-is-stolen": """---
id: aid-is-stolen
campaign: test-doppelganger
title: "Western aid is stolen"
summary: "Claims that weapons and money sent as aid are stolen and sold on."
claims: ["The aid is stolen.", "The weapons are sold on the black market."]
markers:
  ru: ["помощь разворовывают", "оружие продают на чёрном рынке"]
tactics: []
facts:
  - text: "The test report describes claims that Western aid is stolen and resold."
    source: ru-test-report
    locator: "Section 2"
sources: [ru-test-report]
---
""",
}

TACTIC = """---
id: whataboutism
name: "Whataboutism"
kind: rhetorical
summary: "Deflects criticism by pointing at the critic's own faults."
cues:
  en: ['\\bwhat about\\b']
sources: [ru-test-report]
---
"""

SANCTIONS = [
    "Санкции бьют по Европе, а не по России: цены на газ у них выросли втрое.",
    "Европейцы замёрзнут этой зимой, а Россия спокойно продаёт газ в Азию.",
    "Немецкие заводы закрываются из-за санкций, российская экономика растёт.",
    "Санкции против России обернулись против самой Европы, счета за отопление огромные.",
    "Брюссель ввёл санкции и теперь европейцы платят за свет больше всех.",
    "Европа сама себя наказала санкциями, а наш рубль только окреп.",
    "Этой зимой европейцы замёрзнут без российского газа, сами виноваты.",
    "Из-за санкций в Европе закрываются фабрики, а у нас всё хорошо.",
    "Санкции бьют по Европе: инфляция, безработица и холодные дома.",
    "Французы и немцы расплачиваются за санкции своих политиков.",
]
AID = [
    "Западную помощь разворовывают чиновники, деньги налогоплательщиков уходят в карманы.",
    "Оружие продают на чёрном рынке, его уже находят в Африке.",
    "Помощь разворовывают ещё до того, как она доходит до фронта.",
    "Американские деньги воруют, а оружие перепродают бандитам.",
    "Половину присланных ракет уже продали на чёрном рынке.",
    "Западное оружие оказывается у преступников по всему миру, его перепродают.",
    "Миллиарды помощи исчезли без следа, их просто украли.",
    "Оружие продают на чёрном рынке через соседние страны.",
    "Гуманитарную помощь разворовывают и продают на рынках.",
    "Танки и снаряды с Запада перепродаются торговцами оружием.",
]
BENIGN = [
    "В субботу в городском парке пройдёт концерт классической музыки.",
    "Сегодня я испекла пирог с яблоками, рецепт в комментариях.",
    "Футбольный матч закончился вничью после дополнительного времени.",
    "Библиотека продлевает часы работы во время сессии.",
    "Завтра ожидается дождь, не забудьте зонт.",
    "Учёные опубликовали новые данные о миграции птиц.",
    "Музей открывает выставку, посвящённую истории Шёлкового пути.",
    "Наш поход в горы был долгим, но виды того стоили.",
    "Городской совет утвердил бюджет на ремонт дорог.",
    "В кинотеатре начался показ нового мультфильма для детей.",
    "Мой кот научился открывать дверь холодильника.",
    "Осенью в лесу много грибов, мы собрали целую корзину.",
]


def write_russian_campaign(root: Path) -> Path:
    rows = [
        {"id": f"{prefix}-{number:03d}", "text": text, "lang": "ru", "platform": "telegram", "narratives": labels}
        for prefix, texts, labels in (("san", SANCTIONS, ["sanctions-hurt-europe"]), ("aid", AID, ["aid-is-stolen"]), ("ben", BENIGN, []))
        for number, text in enumerate(texts, start=1)
    ]
    cards = {"sources": {"ru-test-report": SOURCE}, "tactics": {"whataboutism": TACTIC}, "narratives": NARRATIVES}
    return write_corpus(root, cards, {"ru": rows}, campaign=CAMPAIGN)


@pytest.fixture
def russian_corpus(tmp_path) -> Path:
    return write_russian_campaign(tmp_path)


def _no_match():
    return SimpleNamespace(narratives=[], citations=[])


def test_campaign_file_is_loaded_and_valid(russian_corpus):
    kb = load_knowledge_base(russian_corpus)
    assert validate(kb) == []
    assert kb.campaign.id == "test-doppelganger" and kb.campaign.name.get("en") == "Test Doppelganger"
    assert kb.campaign.languages == ["ru"] and kb.narratives["aid-is-stolen"].markers.other() == {"ru": [
        "помощь разворовывают", "оружие продают на чёрном рынке"]}
    assert "помощь разворовывают" in kb.narratives["aid-is-stolen"].markers.all()


def test_unlisted_language_and_wrong_campaign_are_reported(russian_corpus):
    (russian_corpus / "campaign.yaml").write_text(CAMPAIGN.replace("languages: [ru]", "languages: []"), encoding="utf-8")
    card = russian_corpus / "narratives" / "aid-is-stolen.md"
    card.write_text(card.read_text(encoding="utf-8").replace("campaign: test-doppelganger", "campaign: other"), encoding="utf-8")
    found = [str(p) for p in validate(load_knowledge_base(russian_corpus))]
    assert any("ru.jsonl:1" in p and "language 'ru'" in p for p in found)
    assert any("aid-is-stolen.md" in p and "markers in 'ru'" in p for p in found)
    assert any("aid-is-stolen.md:3" in p and "campaign 'other'" in p for p in found)


def test_broken_campaign_file_is_reported_with_its_line(russian_corpus):
    (russian_corpus / "campaign.yaml").write_text(CAMPAIGN.replace("languages: [ru]", "languages: [Russian!]"), encoding="utf-8")
    found = [str(p) for p in validate(load_knowledge_base(russian_corpus))]
    assert any(p.startswith("corpus/campaign.yaml:6:") and "languages" in p for p in found), found


def test_caveat_names_the_campaign_of_the_knowledge_base(russian_corpus, tmp_path):
    russian = load_knowledge_base(russian_corpus)
    shipped = load_knowledge_base(REPO / "corpus")
    unnamed = load_knowledge_base(write_mini_corpus(tmp_path / "mini"))  # no campaign.yaml: a neutral default
    assert unnamed.campaign.id == "" and unnamed.campaign.languages == []
    for lang in ("en", "zh"):
        assert "Test Doppelganger" in closing_block(_no_match(), lang, russian)[1]
        assert "Spamouflage" not in closing_block(_no_match(), lang, russian)[1]
        assert "Spamouflage" in closing_block(_no_match(), lang, shipped)[1]
    assert closing_block(_no_match(), "en", unnamed)[1].endswith("The knowledge base covers only the narratives it holds._")
    assert closing_block(_no_match(), "en")[1] == closing_block(_no_match(), "en", unnamed)[1]
    # A language without templates gets the English ones.
    assert closing_block(_no_match(), "ru", russian) == closing_block(_no_match(), "en", russian)


def test_russian_text_is_neither_chinese_nor_a_crash():
    assert detect_language("Санкции бьют по Европе, а не по России.") == "other"
    assert answer_language(SimpleNamespace(lang="other")) == "en"
    assert answer_language(SimpleNamespace(lang="zh"), "ru") == "en"


def test_attribution_words_come_from_the_campaign_file(russian_corpus):
    russian = load_knowledge_base(russian_corpus)
    shipped = load_knowledge_base(REPO / "corpus")
    allowed = {1}
    assert check_sentence("This post is Kremlin propaganda [1].", allowed, russian, set()) == "attributes the post"
    assert check_sentence("The author is a bot [1].", allowed, russian, set()) == "attributes the post"
    assert check_sentence("The author is Chinese state propaganda [1].", allowed, shipped, set()) == "attributes the post"
    assert check_sentence("这条帖子是中国国家宣传[1]。", allowed, shipped, set()) == "attributes the post"
    assert check_sentence("This post is Kremlin propaganda [1].", allowed, shipped, set()) is None
    assert check_sentence("The report describes sanctions claims [1].", allowed, russian, set()) is None


def test_russian_campaign_end_to_end(russian_corpus, tmp_path):
    from assistant import Assistant, Settings

    assistant = Assistant(Settings(data_dir=tmp_path / "data", corpus_dir=russian_corpus))
    assert assistant.problems() == []

    answer = assistant.ask("Санкции бьют по Европе сильнее, чем по России: европейцы замёрзнут без газа.")
    assert answer.verdict == "match" and answer.narratives[0].id == "sanctions-hurt-europe", answer.answer
    assert answer.lang != "zh" and citations_resolve(answer)  # Russian gets the English templates
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)}
    cited = {c.source_id for c in answer.citations if c.id in markers}
    assert "ru-test-report" in cited
    assert "Spamouflage" not in answer.answer

    other = assistant.ask("В воскресенье в парке будет ярмарка мёда и концерт местного хора.")
    assert other.verdict == "no known narrative" and other.narratives == [], other.answer
    assert "no known narrative" in other.answer
    assert "Test Doppelganger" in other.answer and "Spamouflage" not in other.answer
