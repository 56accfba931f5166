"""One error tree: every user-facing error derives from NarrativeLensError, every surface reports it as one line,
and the eval runner counts such errors apart from its scores while bugs propagate."""

import ast
import subprocess

import pytest
from typer.testing import CliRunner

from assistant import errors
from assistant.analysis.models import Evidence
from assistant.api import Answer, AnswerNarrative
from assistant.cli import app
from assistant.errors import EmptyPost, InvalidInput, NarrativeLensError
from assistant.evaluation import evaluate
from assistant.evaluation.dataset import EvalExample
from assistant.evaluation.report import markdown_report, metric_rows, worst_errors
from conftest import REPO, VENV_BIN

pytestmark = pytest.mark.unit  # no encoder, Chroma or server: part of the fast tier

runner = CliRunner()


def test_every_public_error_derives_from_the_root_and_says_what_to_do():
    classes = [getattr(errors, name) for name in errors.__all__]
    assert errors.NarrativeLensError in classes and len(classes) >= 8
    for cls in classes:
        assert issubclass(cls, NarrativeLensError), cls
        assert cls.__doc__ and len(cls.__doc__.split()) >= 6, cls
        assert cls.exit_code in (1, 2)


def test_old_import_locations_are_the_same_classes():
    from assistant import EmptyPost as top_empty, NarrativeLensError as top_root
    from assistant.api import EmptyPost as api_empty, NarrativeLensError as api_root
    from assistant.evaluation import DatasetError
    from assistant.explain.llm import LLMUnavailable
    from assistant.index import IndexWriteError, StoreUnavailable
    from assistant.index.store import StoreUnavailable as store_unavailable
    from assistant.ingest import IngestError

    assert top_root is api_root is errors.NarrativeLensError and top_empty is api_empty is errors.EmptyPost
    assert StoreUnavailable is store_unavailable is errors.StoreUnavailable and IndexWriteError is errors.IndexWriteError
    assert IngestError is errors.IngestError and DatasetError is errors.DatasetError and LLMUnavailable is errors.LLMUnavailable


def test_the_errors_module_imports_nothing_from_the_package():
    tree = ast.parse((REPO / "assistant" / "errors.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("assistant"), ast.dump(node)
            assert node.module == "__future__"
        assert not isinstance(node, ast.Import)


# -- the CLI: one line on stderr, a non-zero status, no traceback --------------------------------------


def _invoke(args, corpus, data):
    result = runner.invoke(app, ["--data-dir", str(data), "--corpus-dir", str(corpus), *args])
    # A handled error ends in typer.Exit (SystemExit); anything else would be an escaped exception.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return result, lines[0]


def test_cli_unreachable_chroma_server(mini_corpus, tmp_path):
    result, line = _invoke(["--chroma-url", "http://127.0.0.1:9", "ask", "Cotton is machine-picked."], mini_corpus, tmp_path)
    assert result.exit_code == 1 and "cannot reach the Chroma server at http://127.0.0.1:9" in line


def test_cli_empty_post(mini_corpus, tmp_path):
    result, line = _invoke(["ask", " \u200b "], mini_corpus, tmp_path)
    assert result.exit_code == 2 and "the post is empty" in line and result.stdout == ""


def test_cli_missing_eval_dataset(mini_corpus, tmp_path):
    missing = tmp_path / "no-such[/set].jsonl"  # brackets in a message are printed as they are, not read as markup
    result, line = _invoke(["eval", str(missing)], mini_corpus, tmp_path / "data")
    assert result.exit_code == 2 and f"cannot read {missing}" in line


def test_cli_knowledge_base_that_cannot_back_the_assistant(tmp_path):
    result, line = _invoke(["ask", "Cotton is machine-picked."], tmp_path / "no-corpus", tmp_path / "data")
    assert result.exit_code == 1 and "no narrative cards in" in line and "corpus directory not found" in line


def test_installed_command_reports_an_unreachable_store_in_one_line(mini_corpus, tmp_path):
    result = subprocess.run(
        [str(VENV_BIN / "narrative-lens"), "--data-dir", str(tmp_path), "--corpus-dir", str(mini_corpus),
         "--chroma-url", "http://127.0.0.1:9", "ask", "Cotton is machine-picked."],
        capture_output=True, timeout=120,
    )
    stderr = result.stderr.decode()
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: cannot reach the Chroma server")


# -- the eval runner: errors counted apart, bugs propagate --------------------------------------------


def _answer(narrative: str | None) -> Answer:
    narratives = [AnswerNarrative(id=narrative, title=narrative, score=0.9, confidence="high", evidence=Evidence())] if narrative else []
    return Answer(
        mode="offline", lang="en", verdict="match" if narrative else "no known narrative", narratives=narratives,
        tactics=[], citations=[], context=[], answer="An answer.", notices=[], threshold=0.5,
    )


class FakeAssistant:
    """Answers each post with its gold label (a perfect matcher); `failing` posts raise `error`."""

    def __init__(self, gold: dict[str, str | None], failing: set[str], error: Exception):
        self.gold, self.failing, self.error = gold, failing, error
        self.analyzer = type("A", (), {"matcher": type("M", (), {"threshold": 0.5})()})()
        self.embeddings = type("E", (), {"encode": staticmethod(lambda texts: [[0.0] for _ in texts])})()

    def prepare(self):
        return self

    def ask(self, text, mode=None):
        if text in self.failing:
            raise self.error
        return _answer(self.gold[text])

    def ask_many(self, texts):
        return [self.ask(text) for text in texts]


EXAMPLES = [
    EvalExample(id="p1", text="post one", narratives=["cotton"]),
    EvalExample(id="p2", text="post two", narratives=["happy"]),
    EvalExample(id="bad", text="the failing post", narratives=["cotton"]),
    EvalExample(id="b1", text="a benign post", narratives=[]),
]
GOLD = {e.text: (e.narratives[0] if e.narratives else None) for e in EXAMPLES}


def test_eval_counts_an_error_apart_and_scores_the_rest():
    fake = FakeAssistant(GOLD, {"the failing post"}, EmptyPost("the post is empty: paste the text of a post to analyse"))
    summary, answers = evaluate(fake, EXAMPLES, ["cotton", "happy"])
    assert summary["errors"]["n"] == 1
    assert summary["errors"]["examples"] == [{"id": "bad", "error": "EmptyPost: the post is empty: paste the text of a post to analyse"}]
    # Scored over the three answered posts only: scored as "no prediction", the failed one would pull recall down.
    assert summary["n"] == 3 and [row["id"] for row in summary["per_example"]] == ["p1", "p2", "b1"]
    assert summary["narratives"]["micro_f1"] == 1.0 and summary["narratives"]["top1_accuracy"] == 1.0
    assert summary["narratives"]["per_narrative"]["cotton"]["support"] == 1
    assert summary["abstention"] == {"benign_n": 1, "false_positives": 0, "false_positive_rate": 0.0}
    assert answers[2] is None and summary["latency_ms"]["sample"] == 3
    # The report says so, and its rows still line up with their examples.
    assert ("errors (not scored)", "1") in metric_rows(summary)
    markdown = markdown_report(summary, worst_errors(summary, EXAMPLES, answers), "t")
    assert "## Examples that ended in an error" in markdown and "- bad: EmptyPost: the post is empty" in markdown


def test_eval_lets_a_bug_propagate_instead_of_scoring_it():
    fake = FakeAssistant(GOLD, {"the failing post"}, RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        evaluate(fake, EXAMPLES, ["cotton", "happy"])


def test_cross_validation_refuses_a_bad_fold_count_with_a_user_error(tmp_path):
    from assistant.evaluation import cross_validate
    from assistant.settings import Settings

    with pytest.raises(InvalidInput, match="--cv needs 2 <= K"):
        cross_validate(Settings(data_dir=tmp_path), EXAMPLES, ["cotton", "happy"], 1)
