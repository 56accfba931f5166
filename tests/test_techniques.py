"""The technique model (assistant/analysis/techniques.py) and its SemEval-2021 Task 6 scoring.

Fast tests run on small texts written here. Tests that fit the real model need SemEval-2021 Task 6's training
split at ../shared/data/semeval2021-task6 (outside the repository) and skip, saying so, when it is absent; they
fit once per session (about 15 s on two cores).
"""

from __future__ import annotations

import json


import numpy as np
import pytest

from assistant.analysis.techniques import (
    VERSION,
    Annotated,
    TechniqueModel,
    clauses,
    embedding_text,
    tokens,
)
from assistant.corpus import load_knowledge_base
from assistant.evaluation.techniques import (
    MAPPING,
    baselines,
    load_mapping,
    random_labels,
    set_scores,
    span_prf,
)
from assistant.settings import REPO_ROOT

SEMEVAL = REPO_ROOT.parent / "shared" / "data" / "semeval2021-task6"
needs_semeval = pytest.mark.skipif(
    not (SEMEVAL / "training_set_task1.txt").exists(),
    reason=f"SemEval-2021 Task 6 data not found at {SEMEVAL} (the shared data folder beside the repository)",
)

NEUTRAL = [
    "😀😀😀",
    "lol",
    "ok",
    "Hello",
    "<b>b</b>",
    "!!!",
    "据新华社报道，今年新疆棉花产量比去年有所增长，机械采摘的比例继续提高。",
    "新华社北京3月5日电 全国人大会议5日上午在人民大会堂开幕。",
    "Shares of the retailer rose 3% in early trading on Tuesday after it reported quarterly revenue that beat "
    "analysts' expectations, the company said in a statement.",
    "The Federal Reserve left interest rates unchanged on Wednesday and said it would watch inflation data.",
    "Fact check: the video does not show cotton picking in Xinjiang; it was filmed in Texas in 2019, "
    "according to the original uploader.",
    "Interfaith leaders stood side by side at the evening vigil and prayed for the victims.",
]


@pytest.fixture(scope="session")
def kb():
    return load_knowledge_base(REPO_ROOT / "corpus")


# -- the mapping ---------------------------------------------------------------------------------------------------
def test_mapping_is_explicit_and_every_id_exists(kb):
    mapping = load_mapping()
    names = [
        "Appeal to authority", "Appeal to fear/prejudice", "Black-and-white Fallacy/Dictatorship",
        "Causal Oversimplification", "Doubt", "Exaggeration/Minimisation", "Flag-waving",
        "Glittering generalities (Virtue)", "Loaded Language", "Misrepresentation of Someone's Position (Straw Man)",
        "Name calling/Labeling", "Obfuscation, Intentional vagueness, Confusion",
        "Presenting Irrelevant Data (Red Herring)", "Reductio ad hitlerum", "Repetition", "Slogans", "Smears",
        "Thought-terminating cliché", "Whataboutism", "Bandwagon",
    ]
    assert sorted(mapping) == sorted(names)  # all 20 of the task's techniques, each once
    assert len(set(mapping.values())) == 20  # one-to-one
    for name, ours in mapping.items():
        assert ours in kb.tactics, f"{name} maps to {ours}, which has no card"
        assert kb.tactics[ours].kind == "rhetorical", f"{name} maps to a campaign tactic"
    assert mapping["Smears"] == "questioning-the-reputation"
    assert mapping["Reductio ad hitlerum"] == "guilt-by-association"
    assert mapping["Bandwagon"] == "appeal-to-popularity"
    raw = json.loads(MAPPING.read_text(encoding="utf-8"))
    assert all(k.startswith("_") or k in mapping for k in raw)


# -- metrics -------------------------------------------------------------------------------------------------------
def test_macro_f1_is_sklearns_with_zero_division_1():
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    classes = ["A", "B", "C", "D", "E"]
    gold = [{"A", "B"}, {"A"}, set(), {"C"}, {"A", "C"}]
    pred = [{"A"}, {"B"}, {"E"}, {"C"}, set()]  # D: neither gold nor predicted; E: predicted, never gold
    ours = set_scores(gold, pred, classes)
    mlb = MultiLabelBinarizer().fit([classes])
    g, p = mlb.transform([sorted(x) for x in gold]), mlb.transform([sorted(x) for x in pred])
    assert ours["macro_f1"] == pytest.approx(f1_score(g, p, average="macro", zero_division=1))
    assert ours["micro_f1"] == pytest.approx(f1_score(g, p, average="micro", zero_division=1))
    assert ours["per_technique"]["D"]["f1"] == 1.0 and ours["per_technique"]["E"]["f1"] == 0.0
    # The average over present techniques only is what the old command printed; it differs here.
    assert ours["macro_f1_present"] != pytest.approx(ours["macro_f1"])


def test_baselines_are_computed_on_the_file():
    classes = ["A", "B", "C", "D"]
    gold = [{"A"}, {"A", "B"}, {"A"}, {"C"}]
    first = baselines(gold, classes, train_labels=[{"A"}, {"A", "B"}, {"B"}, {"A"}])
    best = first["most_frequent"]["best"]
    assert best["labels"][:1] == ["A"]
    # "A" on every text: tp 3, fp 1, fn 2 -> 6 / 9
    assert first["most_frequent"]["by_k"][0]["micro_f1"] == pytest.approx(round(6 / 9, 4))
    other = baselines([{"D"}] * 4, classes, train_labels=None)
    assert other["most_frequent"]["by_k"][0]["labels"] == ["D"]  # counted on the file itself
    assert other["random"]["micro_f1_mean"] != first["random"]["micro_f1_mean"]
    assert random_labels(10, classes, 42) == random_labels(10, classes, 42)  # seeded
    assert random_labels(50, classes, 1) != random_labels(50, classes, 2)


def test_span_f1_follows_the_task_2_scorer():
    gold = [[(0, 10, "X"), (20, 30, "Y")]]
    # half of the X span, exactly; a Y prediction twice as long as its gold span; a wrong technique
    pred = [[(0, 5, "X"), (20, 40, "Y"), (0, 10, "Y")]]
    r = span_prf(gold, pred)
    precision = (5 / 5 + 10 / 20 + 0) / 3
    recall = (5 / 10 + 10 / 10) / 2
    assert r["precision"] == pytest.approx(precision)
    assert r["recall"] == pytest.approx(recall)
    assert r["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert span_prf([[]], [[]])["f1"] == 1.0
    # our own overlapping spans of one technique count once
    assert span_prf(gold, [[(0, 6, "X"), (4, 10, "X")]])["precision"] == pytest.approx(1.0)


# -- text pieces ---------------------------------------------------------------------------------------------------
def test_tokens_clauses_and_embedding_text():
    assert [t[2] for t in tokens("I HATE it!! 新疆")] == ["I", "HATE", "it", "!!", "新", "疆"]
    text = "They lie. They always lie, and the media, which they own, repeats every word of it without a single question asked"
    pieces = [text[s:e] for s, e in clauses(text)]
    assert pieces[0] == "They lie."
    assert len(pieces) > 2 and all(len(tokens(p)) <= 14 for p in pieces[1:])
    assert embedding_text("STOP THE STEAL NOW") == "stop the steal now"
    assert embedding_text("Stop the steal") == "Stop the steal"


# -- a small model, fitted on sentences written here ---------------------------------------------------------------
def _toy_model() -> TechniqueModel:
    rng = np.random.default_rng(0)
    loaded = ["disgusting", "shameless", "vile", "evil", "corrupt"]
    labels_ = ["traitors", "puppets", "thugs", "clowns", "liars"]
    topics = ["the senator", "the council", "the mayor", "the board", "the agency"]
    sem_texts, sem_spans, sem_labels = [], [], []
    for i in range(60):
        topic = topics[i % 5]
        if i % 3 == 0:
            word = loaded[i % 5]
            text = f"{topic.upper()} IS {word.upper()} AND EVERYONE KNOWS IT"
            start = text.index(word.upper())
            sem_texts.append(text)
            sem_spans.append([(start, start + len(word), "Loaded Language")])
            sem_labels.append({"Loaded Language"})
        elif i % 3 == 1:
            word = labels_[i % 5]
            text = f"{topic} and their {word} again"
            start = text.index(word)
            sem_texts.append(text)
            sem_spans.append([(start, start + len(word), "Name calling/Labeling")])
            sem_labels.append({"Name calling/Labeling"})
        else:
            sem_texts.append(f"{topic} met on tuesday to discuss the budget")
            sem_spans.append([])
            sem_labels.append(set())
    post_texts, post_spans, post_labels, neutral = [], [], [], []
    for i in range(60):
        if i % 2:
            word = loaded[i % 5]
            text = f"Washington is {word}, and its wars never end. What about their own crimes?"
            start = text.index(word)
            post_texts.append(text)
            post_spans.append([(start, start + len(word), "loaded-language")])
            post_labels.append({"loaded-language"})
            neutral.append(False)
        else:
            post_texts.append(f"The city council approved the {i}th budget on Monday after a short debate.")
            post_spans.append([])
            post_labels.append(set())
            neutral.append(True)

    def vectors(texts):
        v = rng.normal(size=(len(texts), 512)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    mapping = {"Loaded Language": "loaded-language", "Name calling/Labeling": "name-calling-labeling"}
    return TechniqueModel(folds=3).fit(
        Annotated(sem_texts, sem_spans, sem_labels),
        vectors(sem_texts),
        Annotated(post_texts, post_spans, post_labels, neutral),
        vectors(post_texts),
        mapping=mapping,
        post_ids=["loaded-language", "name-calling-labeling"],
    )


@pytest.fixture(scope="module")
def toy():
    return _toy_model()


def test_save_and_load_give_identical_predictions(toy, tmp_path):
    toy.save(tmp_path / "model")
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert files == ["technique-model.json", "technique-model.npz"]  # arrays and JSON, no pickle
    meta = json.loads((tmp_path / "model" / "technique-model.json").read_text())
    assert meta["version"] == VERSION and meta["format"] == "narrative-lens-technique-model"
    assert "research use" in meta["data"]["semeval"]["licence"]
    with np.load(tmp_path / "model" / "technique-model.npz", allow_pickle=False) as arrays:
        assert all(arrays[k].dtype != object for k in arrays.files)
    loaded = TechniqueModel.load(tmp_path / "model")
    rng = np.random.default_rng(5)
    for text in ["THE MAYOR IS VILE AND EVERYONE KNOWS IT", "the board and their clowns again", "lol", "新疆"]:
        v = rng.normal(size=512).astype(np.float32)
        v /= np.linalg.norm(v)
        assert toy.predict(text, v) == loaded.predict(text, v)


def test_toy_model_finds_words_and_not_neutral_text(toy):
    v = np.zeros(512, np.float32)
    v[0] = 1.0
    text = "THE SENATOR IS SHAMELESS AND EVERYONE KNOWS IT"
    hits = {h.semeval: h for h in toy.predict(text, v)} if toy.register(v)[0] == "semeval" else {}
    for hit in toy.predict(text, v):
        assert hit.score >= hit.threshold and hit.spans
    if hits.get("Loaded Language"):
        assert hits["Loaded Language"].texts(text) == ["SHAMELESS"]
    assert toy.predict("😀😀😀", v) == []
    assert toy.predict("!!!", v) == []


# -- the fitted model (needs the SemEval data) ---------------------------------------------------------------------
@pytest.fixture(scope="session")
def fitted(kb):
    if not (SEMEVAL / "training_set_task1.txt").exists():
        pytest.skip(f"SemEval-2021 Task 6 data not found at {SEMEVAL}")
    from assistant.analysis.techniques import cue_finder, fit_from_knowledge_base
    from assistant.embeddings import get_embeddings
    from assistant.settings import Settings

    settings = Settings()
    embeddings = get_embeddings(settings.embeddings)
    encode = lambda texts: embeddings.encode(texts, normalised=True)  # noqa: E731
    model = fit_from_knowledge_base(kb, SEMEVAL, encode)
    cues = cue_finder(kb)

    def predict(text: str):
        from assistant.text import normalise

        normal = normalise(text).text
        return normal, model.predict(normal, encode([embedding_text(normal) or " "])[0], cues=cues(normal))

    return model, predict


@needs_semeval
@pytest.mark.parametrize("text", NEUTRAL)
def test_neutral_text_gets_no_technique(fitted, text):
    _, predict = fitted
    normal, hits = predict(text)
    assert hits == [], f"{text!r} -> {[(h.id, h.score, h.texts(normal)) for h in hits]}"


@needs_semeval
def test_campaign_tactics_are_never_predicted(fitted, kb):
    model, predict = fitted
    campaign = {c.id for c in kb.tactics.values() if c.kind == "campaign"}
    assert not campaign & set(model.columns["post"])
    assert not campaign & set(model.mapping.values())
    for text in [
        "Reposted by 200 accounts in one minute: the same words, the same picture. #StandWithChina",
        "[AI narrator] Tonight we reveal the truth the Western media hides. Subscribe for more.",
        "lol",
        "😀😀😀",
    ]:
        assert not campaign & {h.id for h in predict(text)[1]}


@needs_semeval
def test_spans_are_phrases_for_words_and_clauses_for_the_rest(fitted):
    _, predict = fitted
    text = "These shameless warmongers in Washington will never stop lying to you. Wake up, America!"
    normal, hits = predict(text)
    found = {h.id: h for h in hits}
    assert "loaded-language" in found
    for hit in hits:
        for s, e in hit.spans:
            piece = normal[s:e]
            assert piece.strip() == piece and piece
            assert len(tokens(piece)) <= 14, (hit.id, piece)
        if hit.id in ("loaded-language", "name-calling-labeling"):
            assert all(len(tokens(t)) <= 6 for t in hit.texts(normal)), hit.texts(normal)
    assert any("shameless" in t for t in found["loaded-language"].texts(normal))
    # a clause, not the whole two-sentence post
    assert all(e - s < len(normal) for h in hits for s, e in h.spans)


@needs_semeval
def test_fitted_model_reads_chinese_and_round_trips(fitted, tmp_path):
    model, predict = fitted
    normal, hits = predict("这些所谓专家拿着美国的钱，到处给新疆编故事，说白了就是反华势力的马前卒。")
    assert hits, "a Chinese post full of labels got no technique"
    assert all(e - s <= 8 for h in hits if h.id == "name-calling-labeling" for s, e in h.spans)
    model.save(tmp_path / "m")
    again = TechniqueModel.load(tmp_path / "m")
    rng = np.random.default_rng(1)
    for text in ["I HATE TRUMP\n\nMOST TERRORIST DO", normal, "MAKE AMERICA GREAT AGAIN"]:
        v = rng.normal(size=512).astype(np.float32)
        v /= np.linalg.norm(v)
        assert [(h.id, h.spans) for h in model.predict(text, v)] == [(h.id, h.spans) for h in again.predict(text, v)]
    report = model.metadata["report"]["registers"]
    assert report["post"]["cv_neutral_given_any_technique"] <= model.params["max_benign_fpr"]
    for register in ("semeval", "post"):
        cuts = report[register]["threshold"]
        shared = report[register]["shared_threshold"]
        # one cut per technique, each within the grid and near the shared one
        assert set(cuts) == set(model.columns[register])
        assert all(0.1 <= c <= 0.7 and abs(c - shared) <= TechniqueModel.MAX_MOVE + 1e-9 for c in cuts.values())
        assert report[register]["cv_micro_f1"] >= report[register]["shared_threshold_cv_micro_f1"]


@needs_semeval
def test_score_techniques_with_a_function_and_baselines_on_the_file():
    from assistant.evaluation.techniques import score_techniques

    dev = SEMEVAL / "dev_set_task1.txt"
    constant = score_techniques(lambda text: ["Loaded Language", "Name calling/Labeling", "Smears"], dev)
    top3 = constant["baselines"]["most_frequent"]["by_k"][2]
    assert top3["labels"] == ["Loaded Language", "Name calling/Labeling", "Smears"]
    assert constant["micro_f1"] == pytest.approx(top3["micro_f1"], abs=1e-4)
    assert 0 < constant["baselines"]["random"]["micro_f1_mean"] < 0.2
