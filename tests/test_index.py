"""The index: incremental by content hash, built aside and swapped, crash-safe, embedded or served."""

import json
import os
import signal
import subprocess
import time

import pytest

from assistant import Assistant, Settings
from assistant.index import StoreUnavailable
from conftest import VENV_BIN


def _assistant(corpus, data_dir, **extra):
    return Assistant(Settings(data_dir=data_dir, corpus_dir=corpus, **extra))


def test_index_builds_on_first_use_and_then_is_reused(mini_corpus, tmp_path):
    assistant = _assistant(mini_corpus, tmp_path / "data")
    assert assistant.store.manifest() is None
    answer = assistant.ask("Cotton is machine-picked, the forced labor lie is over.")
    manifest = assistant.store.manifest()
    assert manifest is not None and manifest.counts["examples"] == 32
    assert answer.narratives[0].id == "cotton-is-machine-picked"
    again = _assistant(mini_corpus, tmp_path / "data").build_index()
    assert not again.changed and again.generation == manifest.generation


def test_changed_example_reembeds_only_what_changed(mini_corpus, tmp_path):
    assistant = _assistant(mini_corpus, tmp_path / "data")
    assistant.build_index()
    path = mini_corpus / "examples" / "mini.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["text"] = "Cotton harvest is all done by machines these days, forget the forced labour stories."
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    report = _assistant(mini_corpus, tmp_path / "data").build_index()
    assert report.changed
    assert report.embedded == 1
    assert report.removed_generations  # the previous generation is dropped after the swap


# `narrative-lens` with one change: once the build has written its first batch of passages into the new
# generation (its cards and examples are already there, the manifest still names the old one), it says so in a
# marker file and holds there, so the test's SIGKILL lands mid-build every time.
HOLD_MID_BUILD = """
import os, sys, time
from assistant.index import builder
marker = os.environ["NL_BUILD_MARKER"]
original = builder.IndexStore._call
def call(self, what, function, *args, **kwargs):
    result = original(self, what, function, *args, **kwargs)
    if what == "writing passages":
        with open(marker + ".tmp", "w") as handle:
            handle.write(what)
        os.replace(marker + ".tmp", marker)
        time.sleep(600)  # until killed
    return result
builder.IndexStore._call = call
from assistant.cli import main
sys.argv = ["narrative-lens"] + sys.argv[1:]
main()
"""


def _wait_for_file(path, process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the build ended (status {process.returncode}) before it wrote any passages"
        assert time.monotonic() < deadline, f"the build wrote no passages within {timeout}s"
        time.sleep(0.05)


def test_a_killed_build_leaves_the_previous_index_answering(mini_corpus, tmp_path):
    data = tmp_path / "data"
    assistant = _assistant(mini_corpus, data)
    before = assistant.ask("Cotton is machine-picked, the forced labor lie is over.")
    generation = assistant.store.manifest().generation

    big = tmp_path / "big.txt"
    big.write_text("\n\n".join(f"Paragraph {i} of a very long report about cotton and harvest number {i * 7}." for i in range(40000)))
    marker = tmp_path / "mid-build"
    process = subprocess.Popen(
        [str(VENV_BIN / "python"), "-c", HOLD_MID_BUILD, "--data-dir", str(data), "--corpus-dir", str(mini_corpus), "ingest", str(big)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NL_BUILD_MARKER": str(marker)},
    )
    try:
        _wait_for_file(marker, process, timeout=300)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()

    survivor = _assistant(mini_corpus, data)
    # The kill landed mid-build: a newer, unfinished generation is there, and the manifest still names the old one.
    assert len(survivor.store.generations() - {generation}) == 1
    assert survivor.store.manifest().generation == generation
    after = survivor.ask("Cotton is machine-picked, the forced labor lie is over.")
    assert after.narratives[0].id == before.narratives[0].id
    assert after.citations == before.citations
    # The next build sweeps away what the killed one left behind.
    survivor.build_index(force=True)
    assert len(survivor.store.generations()) == 1


@pytest.mark.server
def test_the_same_code_runs_against_a_chroma_server(mini_corpus, tmp_path, chroma_server, monkeypatch):
    monkeypatch.setenv("NARRATIVE_LENS_CHROMA_URL", chroma_server["url"])
    assistant = Assistant(Settings(data_dir=tmp_path / "data", corpus_dir=mini_corpus))
    assert assistant.settings.chroma_url == chroma_server["url"]
    answer = assistant.ask("新疆棉花早就是机采棉了，强迫劳动是谎言。")
    assert answer.narratives[0].id == "cotton-is-machine-picked"
    # A second instance (another newsroom desk) answers from the same server without rebuilding.
    other = Assistant(Settings(data_dir=tmp_path / "other", corpus_dir=mini_corpus))
    assert other.store.manifest().generation == assistant.store.manifest().generation
    assert not other.build_index().changed
    assert other.ask("新疆棉花早就是机采棉了，强迫劳动是谎言。").narratives == answer.narratives


def test_an_unreachable_server_gives_a_clear_error(mini_corpus, tmp_path):
    from conftest import free_port

    assistant = _assistant(mini_corpus, tmp_path / "data", chroma_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailable) as caught:
        assistant.ask("Cotton is machine-picked.")
    assert "127.0.0.1" in str(caught.value)
