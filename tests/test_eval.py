"""The eval suite: dataset errors, the --json shape, reports, cross-validation, the regression gate."""

import os
import json
import subprocess

import pytest

from assistant.evaluation import DatasetError, evaluate, load_dataset
from conftest import REPO, VENV_BIN

SHARED = REPO.parent / "shared" / "data" / "semeval2021-task6"


def run(*args, corpus=None, data=None):
    command = [str(VENV_BIN / "narrative-lens")]
    if data:
        command += ["--data-dir", str(data)]
    if corpus:
        command += ["--corpus-dir", str(corpus)]
    return subprocess.run([*command, *args], capture_output=True, timeout=600)


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows))
    return path


def test_malformed_lines_and_unknown_ids_are_all_reported(tmp_path):
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"id": "a", "text": "ok", "narratives": ["nope-one"]},
            "{broken",
            {"id": "c", "narratives": []},
            {"id": "d", "text": "x", "narratives": ["nope-two"]},
        ],
    )
    with pytest.raises(DatasetError) as caught:
        load_dataset(path, {"real-one"})
    message = str(caught.value)
    assert f"{path}:2: invalid JSON" in message
    assert f"{path}:3: text: Field required" in message
    assert "unknown narrative id(s): nope-one, nope-two" in message
    result = run("eval", str(path))
    assert result.returncode == 2 and b"Traceback" not in result.stderr and b"bad.jsonl:2" in result.stderr


def test_json_output_has_the_documented_shape(mini_corpus, tmp_path):
    dataset = write_jsonl(
        tmp_path / "set.jsonl",
        [
            {"id": "p1", "text": "Harvesters pick the cotton now, forced labour claims are a lie.", "narratives": ["cotton-is-machine-picked"], "tactics": [], "lang": "en"},
            {"id": "p2", "text": "新疆人民载歌载舞，幸福生活就在这里。", "narratives": ["region-is-happy"], "lang": "zh"},
            {"id": "b1", "text": "The bus timetable changes on Monday.", "narratives": [], "extra": "ignored"},
        ],
    )
    result = run("eval", str(dataset), "--json", corpus=mini_corpus, data=tmp_path / "data")
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    assert data["n"] == 3
    assert set(data["narratives"]) >= {"micro_f1", "macro_f1", "precision", "recall", "top1_accuracy"}
    assert set(data["abstention"]) >= {"benign_n", "false_positive_rate"} and data["abstention"]["benign_n"] == 1
    assert set(data["tactics"]) >= {"micro_f1"} and data["tactics"]["micro_f1"] is None  # no gold tactic to score
    assert set(data["citations"]) >= {"valid_rate"} and data["citations"]["valid_rate"] == 1.0
    assert set(data["latency_ms"]) >= {"p50", "p95"} and data["latency_ms"]["p50"] > 0
    rows = {row["id"]: row for row in data["per_example"]}
    assert set(rows["p1"]) >= {"id", "gold", "predicted", "top1_correct"}
    assert rows["b1"]["top1_correct"] is None
    assert rows["p1"]["top1_correct"] == (rows["p1"]["predicted"][:1] == ["cotton-is-machine-picked"])


def test_report_files(shipped_assistant, tmp_path):
    result = run(
        "eval", str(REPO / "evals" / "dev.jsonl"), "--out", str(tmp_path / "report"),
        corpus=REPO / "corpus", data=shipped_assistant.settings.data_dir,
    )
    assert result.returncode == 0, result.stderr.decode()
    report = tmp_path / "report"
    html = (report / "report.html").read_text()
    markdown = (report / "report.md").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<script" not in html  # confusion, scores, reliability
    assert "## Per narrative" in markdown and "## Worst errors" in markdown
    assert "## Top-1 against false positives" in markdown and "## Where the top scores fall" in markdown
    assert "expected calibration error" in markdown and "## By length" in markdown
    assert (report / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert (report / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert (report / "scores.png").read_bytes()[:4] == b"\x89PNG"
    assert "top-1 accuracy" in result.stdout.decode()


def test_cross_validation_on_a_teams_own_taxonomy(tmp_path):
    rows = []
    topics = {
        "rigged-election": ["The election was stolen by the machines", "Millions of fake ballots decided the vote", "Voting machines flipped the results overnight", "Dead people voted in the election again", "The count was rigged by officials in secret", "Ballot dumps at 3am stole the election"],
        "vaccine-scare": ["The vaccine alters your DNA forever", "Vaccines contain microchips to track you", "The jab causes sudden deaths everywhere", "They hide the vaccine injuries from you", "Vaccinated people shed toxins onto others", "The shots were never tested at all"],
    }
    for label, texts in topics.items():
        rows += [{"id": f"{label}-{i}", "text": t, "narratives": [label]} for i, t in enumerate(texts)]
    rows += [{"id": f"b{i}", "text": t, "narratives": []} for i, t in enumerate(
        ["Lovely weather for a walk today", "My cat learned to open the fridge", "New bakery opened on the corner", "The train was on time this morning", "Reading a great novel this week", "Tomatoes are ripening in the garden"])]
    dataset = write_jsonl(tmp_path / "own.jsonl", rows)
    result = run("eval", str(dataset), "--cv", "3", "--json", data=tmp_path / "data")
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    assert data["cv_folds"] == 3 and data["n"] == 18
    assert set(data["narratives"]["per_narrative"]) == {"rigged-election", "vaccine-scare"}
    assert data["narratives"]["top1_accuracy"] is not None


BASELINE = json.loads((REPO / "evals" / "baseline.json").read_text())


@pytest.mark.parametrize("gate", BASELINE["datasets"], ids=[g["dataset"] for g in BASELINE["datasets"]])
def test_regression_gate(shipped_assistant, gate):
    """Headline metrics may not fall below the committed baseline by more than its tolerance: on the constructed
    dev split, and on the real-text dev set where ../shared is beside the checkout."""
    path = (REPO / gate["dataset"]).resolve()
    if not path.is_file():
        pytest.skip(f"{gate['dataset']} is not here (the real-text set lives in ../shared beside the checkout)")
    examples = load_dataset(path, set(shipped_assistant.kb.narratives))
    summary, _ = evaluate(shipped_assistant, examples, sorted(shipped_assistant.kb.narratives))
    tolerance = BASELINE["tolerance"]
    assert summary["narratives"]["top1_accuracy"] >= gate["top1_accuracy"] - tolerance
    assert summary["narratives"]["micro_f1"] >= gate["micro_f1"] - tolerance
    assert summary["abstention"]["false_positive_rate"] <= gate["false_positive_rate"] + tolerance
    if "ece" in gate:
        assert summary["calibration"]["ece"] <= gate["ece"] + tolerance
    assert summary["citations"]["valid_rate"] == 1.0


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside this checkout")
def test_technique_benchmark_on_semeval_2021(tmp_path):
    result = run("eval-techniques", str(SHARED / "dev_set_task1.txt"), "--json")
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    assert data["n"] == 63 and 0 <= data["micro_f1"] <= 1 and len(data["per_technique"]) == 20
    base = data["baselines"]
    # Beside the field: above the random and the most-frequent-labels baselines computed on the same file.
    assert data["micro_f1"] > base["random"]["micro_f1_mean"]
    assert data["micro_f1"] > base["most_frequent"]["best"]["micro_f1"]
    assert data["micro_f1"] >= 0.55


@pytest.mark.server
def test_batch_eval_spread_over_processes_sharing_a_chroma_server(chroma_server, tmp_path):
    """The newsroom set-up: one Chroma server, several processes answering from it."""
    env = {**os.environ, "NARRATIVE_LENS_CHROMA_URL": chroma_server["url"], "NARRATIVE_LENS_INDEX__COLLECTION_PREFIX": "nl-shared"}
    command = [str(VENV_BIN / "narrative-lens"), "--data-dir", str(tmp_path / "data"), "eval", str(REPO / "evals" / "dev.jsonl"), "--json"]
    single = subprocess.run(command, capture_output=True, timeout=900, env=env)
    assert single.returncode == 0, single.stderr.decode()
    spread = subprocess.run([*command, "--workers", "2"], capture_output=True, timeout=900, env={**env, "NARRATIVE_LENS_DATA_DIR": str(tmp_path / "other")})
    assert spread.returncode == 0, spread.stderr.decode()
    one, two = json.loads(single.stdout), json.loads(spread.stdout)
    assert two["workers"] == 2 and two["n"] == one["n"]
    assert [r["predicted"] for r in two["per_example"]] == [r["predicted"] for r in one["per_example"]]


def test_calibration_tradeoff_and_breakdowns_are_computed_as_defined():
    from assistant.evaluation.calibration import breakdowns, calibration, score_distribution, tradeoff
    from assistant.evaluation.metrics import Prediction

    def p(i, gold, candidate, score, source, predicted=None):
        return Prediction(f"x{i}", gold, predicted if predicted is not None else ([candidate] if score >= 0.5 else []), score,
                          None, [], 0, 0, 1.0, candidate=candidate, candidate_score=score, source=source, lang="en", length=30 + i)

    rows = [
        p(0, ["a"], "a", 0.9, "s1"), p(1, ["a"], "b", 0.8, "s1"), p(2, [], "a", 0.2, "s2"), p(3, [], "b", 0.6, "s2"),
        p(4, ["b"], "b", 0.15, "s2"),
    ]
    result = calibration(rows, bins=10)
    # Bins: 0.15 (right), 0.2 (wrong), 0.6 (wrong), 0.8 (wrong), 0.9 (right): |0.15-1|+0.2+0.6+0.8+|0.9-1|, over 5.
    assert result["ece"] == round((0.85 + 0.2 + 0.6 + 0.8 + 0.1) / 5, 4)
    curve = {c["threshold"]: c for c in tradeoff(rows)}
    assert curve[0.5]["benign_fpr"] == 0.5 and curve[0.5]["top1"] == round(1 / 3, 4)
    assert curve[0.0]["benign_fpr"] == 1.0 and curve[0.0]["top1"] == round(2 / 3, 4)
    assert sum(score_distribution(rows)["benign"]) == 2 and sum(score_distribution(rows)["narrative"]) == 3
    by_source = breakdowns(rows, 0.5)["source"]
    assert by_source["s1"]["top1"] == 0.5 and by_source["s2"]["benign_fpr"] == 0.5
