"""The `narrative-lens` command as a user runs it: real processes, real exit codes."""

import json
import subprocess

import pytest

from conftest import VENV_BIN


def run(args, corpus, data, stdin=None):
    return subprocess.run(
        [str(VENV_BIN / "narrative-lens"), "--data-dir", str(data), "--corpus-dir", str(corpus), *args],
        input=stdin,
        capture_output=True,
        timeout=300,
    )


def test_ask_json_has_the_documented_shape(mini_corpus, tmp_path, monkeypatch):
    # Without the SemEval training data the technique model is not fitted and the cards' cue patterns find techniques.
    monkeypatch.setenv("NARRATIVE_LENS_TECHNIQUES__SEMEVAL_DIR", str(tmp_path / "no-semeval"))
    result = run(["ask", "--json", "新疆棉花早就是机采棉了，强迫劳动是谎言。What about your own prisons?"], mini_corpus, tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    assert data["mode"] == "offline" and data["notices"] == []
    top = data["narratives"][0]
    assert set(top) >= {"id", "title", "score", "evidence"} and top["id"] == "cotton-is-machine-picked"
    assert [n["score"] for n in data["narratives"]] == sorted((n["score"] for n in data["narratives"]), reverse=True)
    tactic = data["tactics"][0]
    assert tactic["id"] == "whataboutism" and tactic["spans"][0]["text"] == "What about"
    for citation in data["citations"]:
        assert set(citation) >= {"id", "title", "source", "locator", "url", "text"}
    ids = {c["id"] for c in data["citations"]}
    import re

    markers = {int(n) for n in re.findall(r"\[(\d+)\]", data["answer"])}
    assert markers and markers <= ids


def test_ask_reads_stdin_and_survives_invalid_utf8(mini_corpus, tmp_path):
    result = run(["ask", "-"], mini_corpus, tmp_path, stdin=b"Cotton is machine-picked \xff\xfe\x00 the forced labor lie\x07")
    assert result.returncode == 0, result.stderr.decode()
    assert "Cotton is machine-picked, so there is no forced labour" in result.stdout.decode()


@pytest.mark.parametrize("post", ["", "   \n\t ", "\u200b\u200b"])
def test_blank_post_exits_2_with_one_line(mini_corpus, tmp_path, post):
    result = run(["ask", post], mini_corpus, tmp_path)
    assert result.returncode == 2
    err = result.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "empty" in err and "Traceback" not in err
    assert result.stdout == b""


def test_long_post_is_cut_with_a_notice(mini_corpus, tmp_path):
    post = ("Cotton is machine-picked. " * 2000).strip()
    result = run(["ask", "--json", "-"], mini_corpus, tmp_path, stdin=post.encode())
    data = json.loads(result.stdout)
    assert any("only the first 20,000 characters" in notice for notice in data["notices"])
