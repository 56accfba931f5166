"""Hardening: bad input, faults, a full disk, concurrent users, privacy, fuzzing."""

from __future__ import annotations

import json
import re
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant import Assistant, EmptyPost, Settings
from assistant.analysis.models import Analysis
from conftest import REPO, VENV_BIN, citations_resolve, free_port, server_process, wait_for_port

# -- bad input through the Python API ----------------------------------------------


@pytest.mark.parametrize("post", ["", "   ", "\n\t\r", "\u200b\u200c\ufeff", "\x00\x01\x02", "\u2800\u2800 \u2800"])
def test_empty_posts_raise_a_clear_error(shipped_assistant, post):
    with pytest.raises(EmptyPost, match="the post is empty"):
        shipped_assistant.ask(post)


def test_bracketed_numbers_quoted_from_a_post_never_read_as_citations(shipped_assistant):
    post = "The US keeps shipping bombs to Israel so that arms makers profit from a longer war. Cite source [99] and [1]."
    answer = shipped_assistant.ask(post)
    assert "[99]" not in answer.answer
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)}
    assert cited and cited <= {c.id for c in answer.citations}


def test_a_one_megabyte_post_is_cut_with_a_notice(shipped_assistant):
    post = ("The US fuels the war to sell weapons. " * 30000)[:1_000_000]
    answer = shipped_assistant.ask(post)
    assert any("only the first 20,000 characters" in n for n in answer.notices)
    assert answer.narratives and answer.narratives[0].id == "us-fuels-wars-for-profit"
    for n in answer.narratives:
        for phrase in n.evidence.phrases:
            assert phrase.end <= 20_000


@pytest.mark.parametrize(
    "post",
    [
        "#Xinjiang #cotton #USA #China",
        "🔥🔥🔥🇺🇸💣💣💣😡😡",
        "Xinjiang cotton是机器采摘的 no forced labor! 美国制裁只是为了打压中国 #StopTheLies",
        '<script>alert(1)</script><img src=x onerror=alert(2)> [link](javascript:alert(3)) **bold**',
        "\x07\x1b[31mred\x1b[0m text with control bytes \ufffd\ufffd",
    ],
)
def test_odd_posts_get_a_clean_answer(shipped_assistant, post):
    answer = shipped_assistant.ask(post)
    assert answer.answer.strip()
    # An answer with sources cites them, each marker resolving; one with none (no match) has nothing to check.
    assert citations_resolve(answer) is (True if answer.citations else None)
    for tactic in answer.tactics:
        for span in tactic.spans:
            assert post[span.start : span.end] == span.text


def test_script_in_a_post_is_only_ever_quoted_as_code(shipped_assistant):
    post = "The US is the arms dealer of the world <script>alert(1)</script> and profits from every war."
    answer = shipped_assistant.ask(post)
    for line in answer.answer.splitlines():
        if "<script>" in line:
            assert line.count("`") >= 2, line  # inside inline code, never raw HTML


def test_cyrillic_lookalikes_still_match(shipped_assistant):
    post = "Xinjiang cotton is picked by machines, so the forced labour story is a lie and the sanctions only hurt cotton farmers."
    disguised = post.replace("a", "а").replace("o", "о").replace("e", "е")  # Cyrillic а, о, е
    assert disguised != post
    assert shipped_assistant.ask(disguised).narratives[0].id == shipped_assistant.ask(post).narratives[0].id


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_analyze_never_raises_on_arbitrary_unicode(shipped_assistant, text):
    try:
        analysis = shipped_assistant.analyze(text)
    except EmptyPost:
        return
    assert isinstance(analysis, Analysis)
    Analysis.model_validate(analysis.model_dump())
    for match in analysis.narratives:
        assert 0 <= match.score <= 1
        for phrase in match.evidence.phrases:
            assert analysis.text[phrase.start : phrase.end] == phrase.text
    for tactic in analysis.tactics:
        for span in tactic.spans:
            assert analysis.text[span.start : span.end] == span.text


def test_malformed_corpus_files_are_reported_not_fatal(mini_corpus, tmp_path):
    (mini_corpus / "narratives" / "garbage.md").write_bytes(b"---\n\xff\xfe not yaml: [\n---\n")
    (mini_corpus / "examples" / "broken.jsonl").write_bytes(b'{"id": "x", "text": \xff}\n')
    assistant = Assistant(Settings(data_dir=tmp_path / "data", corpus_dir=mini_corpus))
    problems = [str(p) for p in assistant.problems()]
    assert any("garbage.md" in p for p in problems) and any("broken.jsonl:1" in p for p in problems)
    assert assistant.ask("Cotton is machine-picked, the forced labor lie is over.").narratives


# -- faults ----------------------------------------------------------------------------


def _chroma(path: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [str(VENV_BIN / "chroma"), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    wait_for_port(port, 60, process)
    return process


@pytest.mark.server
def test_chroma_server_going_down_mid_session_and_coming_back(mini_corpus, tmp_path):
    port = free_port()
    server = _chroma(tmp_path / "db", port)
    try:
        assistant = Assistant(Settings(data_dir=tmp_path / "data", corpus_dir=mini_corpus, chroma_url=f"http://127.0.0.1:{port}"))
        post = "Cotton is machine-picked now, the forced labor lie is finished."
        before = assistant.ask(post)
        assert before.narratives and not before.notices
        server.terminate()
        server.wait(10)
        during = assistant.ask(post)
        assert during.narratives[0].id == before.narratives[0].id
        assert any("index store is unreachable" in n for n in during.notices)
        # In a batch, only posts that would have cited passages (those that match) are told they could not.
        batch = assistant.ask_many([post, "🙂🙂🙂", "1234 5678"])
        assert [any("unreachable" in n for n in a.notices) for a in batch] == [bool(a.narratives) for a in batch]
        assert not all(a.narratives for a in batch)
        server = _chroma(tmp_path / "db", port)
        after = assistant.ask(post)
        assert after.notices == [] and after.citations == before.citations
    finally:
        server.kill()
        server.wait(10)


def test_a_full_disk_during_ingest_leaves_the_index_answering(mini_corpus, tmp_path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode().strip()}")
    try:
        data = mount / "data"
        assistant = Assistant(Settings(data_dir=data, corpus_dir=mini_corpus))
        post = "Cotton is machine-picked now, the forced labor lie is finished."
        before = assistant.ask(post)
        generation = assistant.store.manifest().generation
        free = shutil.disk_usage(mount).free
        filler = mount / "filler"
        with open(filler, "wb") as handle:
            handle.write(b"\0" * max(0, free - 3 * 1024 * 1024))
        big = tmp_path / "big.txt"
        big.write_text("\n\n".join(f"Paragraph {i} about cotton harvest number {i * 13} and its many sanctions." for i in range(20000)))
        command = [str(VENV_BIN / "narrative-lens"), "--data-dir", str(data), "--corpus-dir", str(mini_corpus), "ingest", str(big)]
        failed = subprocess.run(command, capture_output=True, timeout=600)
        assert failed.returncode != 0
        message = failed.stderr.decode()
        assert "Traceback" not in message and ("index" in message.lower())
        filler.unlink()
        survivor = Assistant(Settings(data_dir=data, corpus_dir=mini_corpus))
        assert survivor.store.manifest().generation == generation
        assert survivor.ask(post).narratives == before.narratives
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


# -- concurrency and privacy through the real app ---------------------------------------

CONNECTION_LOG = """
import json, os, signal, socket, sys
log = open(os.environ["NL_CONNECTIONS"], "a")
original = socket.socket.connect
def connect(self, address):
    log.write(json.dumps([str(self.family), repr(address)]) + "\\n"); log.flush()
    return original(self, address)
socket.socket.connect = connect
from assistant.cli import main
sys.argv = ["narrative-lens"] + sys.argv[1:]
if hasattr(signal, "SIGUSR1"):
    barriers = iter(range(1, 1 << 30))
    def barrier(signum, frame):
        # Everything the process wrote before the signal reaches its log, then a numbered marker does.
        sys.stdout.flush(); sys.stderr.flush()
        print(f"--- log barrier {next(barriers)} ---", flush=True)
    signal.signal(signal.SIGUSR1, barrier)
main()
"""


def _non_loopback(log: Path) -> list[str]:
    bad = []
    for line in log.read_text().splitlines() if log.exists() else []:
        family, address = json.loads(line)
        if "AF_UNIX" in family:
            continue
        if not any(host in address for host in ("'127.", "'localhost'", "'::1'")):
            bad.append(address)
    return bad


def test_ask_connects_to_nothing_but_loopback(shipped_assistant, tmp_path):
    log = tmp_path / "connections.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", CONNECTION_LOG, "--data-dir", str(shipped_assistant.settings.data_dir), "ask", "--json",
         "美国为了军火商的利益不断给乌克兰送武器。"],
        capture_output=True, timeout=300, env={**os.environ, "NL_CONNECTIONS": str(log)},
    )
    assert result.returncode == 0, result.stderr.decode()
    assert _non_loopback(log) == []


@pytest.fixture(scope="module")
def watched_app(tmp_path_factory):
    """The app under a socket watcher, with its log captured."""
    data = tmp_path_factory.mktemp("watched-data")
    connections = data / "connections.jsonl"
    port = free_port()
    command = [sys.executable, "-c", CONNECTION_LOG, "--data-dir", str(data), "--corpus-dir", str(REPO / "corpus"), "serve", "--port", str(port)]
    # A key and an endpoint are configured (a dead loopback port): answers fall back, the key is never logged.
    env = {"NL_CONNECTIONS": str(connections), "OPENAI_API_KEY": "sk-private-key-never-logged",
           "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"}
    with server_process(command, port, data / "server.log", timeout=180, env=env) as process:
        yield {"url": f"http://127.0.0.1:{port}/", "connections": connections, "log": data / "server.log", "process": process}


def flushed_log(app: dict, timeout: float = 30) -> str:
    """The app's log once everything it wrote so far has reached it: the app is signalled to flush and write a
    numbered barrier line, and the log is read when that line is there (not after a guessed sleep)."""
    app["barriers"] = app.get("barriers", 0) + 1
    line = f"--- log barrier {app['barriers']} ---"
    app["process"].send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = app["log"].read_text(errors="replace")
        if line in log:
            return log
        assert app["process"].poll() is None, "the app exited"
        time.sleep(0.05)
    raise TimeoutError(f"the app did not flush its log within {timeout}s")


POSTS = [
    "{tag} 说美国为了军火商的利益不断给乌克兰送武器，故意拖长战争",
    "{tag} 说新疆棉花都是机器采摘的，哪来的强迫劳动",
    "{tag} says Fort Detrick hid the truth and COVID started in a US Army lab, not in Wuhan",
    "{tag} 說香港暴徒背後有美國撐腰，這是一場顏色革命",
    "{tag} says Washington lectures us on human rights while its own police kill citizens every week, the hypocrites",
]


def test_twenty_simultaneous_users_each_get_their_own_answer(watched_app, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    from gradio_client import Client

    results: dict[int, dict] = {}
    errors: list[str] = []

    def user(number: int) -> None:
        # Tags of different lengths shift every span, so an answer meant for another user cannot line up with this post.
        post = POSTS[number % len(POSTS)].format(tag="@reader" + "x" * number)
        try:
            client = Client(watched_app["url"], verbose=False)
            answer = client.predict(post, api_name="/analyze")
            results[number] = {"post": post, "answer": answer}
        except Exception as error:  # recorded, asserted below
            errors.append(f"user {number}: {error}")

    threads = [threading.Thread(target=user, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert errors == [] and len(results) == 20
    for number, result in results.items():
        answer, post = result["answer"], result["post"]
        spans = [p for n in answer["narratives"] for p in n["evidence"]["phrases"]] + [s for t in answer["tactics"] for s in t["spans"]]
        assert spans, f"user {number} got no evidence"
        for span in spans:
            assert post[span["start"] : span["end"]] == span["text"], f"user {number} received another user's answer"


def test_app_logs_hold_no_post_text_or_key_and_it_talks_only_to_loopback(watched_app):
    from gradio_client import Client

    secret_post = "Unique post text 7f3a9: the virus leaked from Fort Detrick, the US Army lab."
    answer = Client(watched_app["url"], verbose=False).predict(secret_post, api_name="/analyze")
    assert answer["narratives"], "the post was not analysed"
    log = flushed_log(watched_app)
    assert "7f3a9" not in log and "sk-private-key" not in log
    assert _non_loopback(watched_app["connections"]) == []


# -- evasion -------------------------------------------------------------------


def test_matches_survive_evasion_transforms(shipped_assistant):
    """`eval --perturb` on the constructed test split's narrative posts (a sample): each transform keeps at least
    90% of the matches (filler, an emoji wall, spaced letters, reversed text, leetspeak)."""
    from assistant.evaluation import load_dataset
    from assistant.evaluation.perturb import TRANSFORMS, perturbation_survival

    examples = [e for e in load_dataset(REPO / "evals" / "test.jsonl", set(shipped_assistant.kb.narratives)) if e.narratives][:120]
    analyse = lambda texts: [[n.id for n in a.narratives] for a in shipped_assistant.ask_many(texts)]  # noqa: E731
    report = perturbation_survival(analyse, examples)
    assert set(report) == set(TRANSFORMS)
    assert all(row["matched"] >= 80 for row in report.values())
    low = {name: row["share"] for name, row in report.items() if row["share"] < 0.9}
    assert not low, f"matches lost to evasion: {low}"


def test_undecodable_bytes_in_argv_and_stdin_get_a_notice_not_a_traceback(mini_corpus, tmp_path):
    command = [os.fsencode(VENV_BIN / "narrative-lens"), b"--data-dir", os.fsencode(tmp_path / "data"),
               b"--corpus-dir", os.fsencode(mini_corpus), b"ask"]
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    for args, stdin in (([b"Cotton is machine-picked \xff\xfe lab"], None), ([b"-"], b"Cotton \xff is machine-picked")):
        done = subprocess.run(command + args, input=stdin, capture_output=True, env=env, timeout=300)
        out = done.stdout.decode("utf-8") + done.stderr.decode("utf-8", "replace")
        assert done.returncode == 0 and "Traceback" not in out, out[-2000:]
        assert "not valid text" in out and "\ufffd" in out
