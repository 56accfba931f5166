"""Shared fixtures: user state kept out, a small corpus made on disk, the real shipped corpus."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
ARTIFACTS = REPO / "test-artifacts"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item, so fixtures can screenshot failures."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's data dir, cache, keys or endpoints."""
    for key in list(os.environ):
        if key.startswith(("NARRATIVE_LENS_", "OPENAI_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NARRATIVE_LENS_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited early with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


@contextmanager
def server_process(command: list[str], port: int, log_path: Path, timeout: float = 60, env: dict | None = None):
    """Runs a server until the block ends; waits until it listens on `port` (loopback)."""
    log = open(log_path, "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        wait_for_port(port, timeout, process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def citations_resolve(answer) -> bool | None:
    """True: the answer cites, and every [n] marker names one of its citations. False: a marker names none of
    them, or the answer has citations and cites none. None: nothing to check (no citations, no markers)."""
    from assistant.explain import check_citations

    return check_citations(answer.answer, {c.id for c in answer.citations}).resolves


# -- a small, complete corpus written by the tests ---------------------------------

MINI_SOURCE = """---
id: test-report
title: "A test report on cotton narratives"
publisher: "Test Institute"
author: "A. Author"
date: "2024-01-01"
url: ""
kind: report
notes:
  - text: "The report found posts claiming that cotton harvesting is fully mechanised."
    locator: "Section 2"
  - text: "The report found posts praising the landscapes and food of the region."
    locator: "Section 3"
---
A report made up for the tests.
"""

MINI_NARRATIVES = {
    "cotton-is-machine-picked": """---
id: cotton-is-machine-picked
campaign: test
title: "Cotton is machine-picked, so there is no forced labour"
summary: "Claims that machines pick all the cotton, so forced labour is impossible."
claims: ["Machines pick the cotton.", "Sanctions hurt farmers."]
markers:
  en: ["machine-picked", "forced labor lie"]
  zh-Hans: ["机采棉"]
  zh-Hant: ["機採棉"]
tactics: [whataboutism]
seen: {platforms: [facebook], periods: ["2021"], events: []}
facts:
  - text: "The test report describes claims of full mechanisation."
    source: test-report
    locator: "Section 2"
sources: [test-report]
---
Body for educators.
""",
    "region-is-happy": """---
id: region-is-happy
campaign: test
title: "Everyone in the region is happy"
summary: "Cheerful posts about scenery and food that imply nothing bad can happen there."
claims: ["The region is beautiful.", "People there are happy."]
markers:
  en: ["happy people", "real Xinjiang"]
  zh-Hans: ["幸福生活"]
  zh-Hant: ["幸福生活"]
tactics: []
seen: {platforms: [x], periods: ["2021"], events: []}
facts:
  - text: "The test report describes cheerful posts about landscapes and food."
    source: test-report
    locator: "Section 3"
sources: [test-report]
---
""",
}

MINI_TACTIC = """---
id: whataboutism
name: "Whataboutism"
kind: rhetorical
disarm: []
semeval: "Whataboutism"
summary: "Deflects criticism by pointing at the critic's own faults."
how_to_spot: {en: "what about", zh: "那你们呢"}
why_it_works: "It changes the subject."
example: "What about your own problems?"
example_note: "Constructed example, not a real post."
educator_note: "Ask whether the reply answers the charge."
cues:
  en: ['\\bwhat about\\b']
  zh: ['那.{0,6}呢']
sources: [test-report]
---
"""


def mini_examples() -> list[dict]:
    cotton = [
        "Xinjiang cotton is machine-picked now, the forced labor lie is finished.",
        "Harvesters do the work in the cotton fields, nobody is forced to pick anything.",
        "新疆棉花早就是机采棉了，哪来的强迫劳动？",
        "Sanctions on cotton only hurt the farmers, the machines already pick it all.",
        "Big combine harvesters roll across the cotton fields; forced labour is a fairy tale.",
        "棉花采摘全部机械化，所谓强迫劳动纯属捏造。",
        "What about your own sweatshops? Our cotton is picked by machines.",
        "機採棉早已普及，強迫勞動的說法不攻自破。",
        "Ban our cotton? The harvest is mechanised and farmers lose their income because of you.",
        "Cotton pickers are machines, not people. Stop lying about forced labor.",
    ]
    happy = [
        "Look at the happy people dancing in Kashgar, this is the real Xinjiang!",
        "Beautiful mountains, delicious food and smiling faces: the real Xinjiang they hide from you.",
        "新疆人民过着幸福生活，载歌载舞。",
        "Uyghur families celebrate together, so happy and peaceful, unlike what Western media say.",
        "The real Xinjiang is full of happy people and modern cities.",
        "幸福生活就在新疆，各民族团结一家亲。",
        "Smiling children and rich harvests: Xinjiang is a paradise of ethnic unity.",
        "新疆處處是幸福生活的笑臉。",
        "Everyone here is happy and free, see the real Xinjiang for yourself.",
        "Peaceful streets and joyful festivals show life in Xinjiang is wonderful.",
    ]
    benign = [
        "The city council approved a new budget for road repairs on Tuesday.",
        "I made lamb skewers and naan for dinner tonight, recipe in the comments.",
        "Cotton prices rose on global commodity markets this week, traders said.",
        "我今天去公园跑步了，天气很好。",
        "Human Rights Watch published a report calling for an independent investigation.",
        "New study on textile supply chains examines audits in several countries.",
        "Our hiking trip in the Tianshan mountains was long but the views were great.",
        "明天有雨，记得带伞。",
        "The football match ended in a draw after extra time.",
        "A museum exhibition on Silk Road history opens next month.",
        "The library extends its opening hours during exam season.",
        "Scientists published new findings on bird migration routes.",
    ]
    rows = []
    for prefix, texts, labels in (("cot", cotton, ["cotton-is-machine-picked"]), ("hap", happy, ["region-is-happy"]), ("ben", benign, [])):
        for number, text in enumerate(texts, start=1):
            tactics = []
            if "What about" in text:
                start = text.index("What about")
                tactics.append({"id": "whataboutism", "start": start, "end": start + 10, "text": "What about"})
            lang = "zh-Hans" if any("\u4e00" <= c <= "\u9fff" for c in text) else "en"
            rows.append(
                {
                    "id": f"{prefix}-{number:03d}",
                    "text": text,
                    "lang": lang,
                    "platform": "x",
                    "narratives": labels,
                    "tactics": tactics,
                    "rationale": "test example",
                    "constructed": True,
                }
            )
    return rows


def write_corpus(root: Path, cards: dict[str, dict[str, str]], examples: dict[str, list[dict]], campaign: str | None = None) -> Path:
    """A corpus at root/corpus, the one way tests lay one out: cards[folder][id] is the text of
    corpus/<folder>/<id>.md, examples[name] the rows of corpus/examples/<name>.jsonl, and `campaign` the text of
    corpus/campaign.yaml (none written without it)."""
    corpus = root / "corpus"
    for folder in ("narratives", "tactics", "sources", "examples"):
        (corpus / folder).mkdir(parents=True, exist_ok=True)
    if campaign is not None:
        (corpus / "campaign.yaml").write_text(campaign, encoding="utf-8")
    for folder, texts in cards.items():
        for card_id, text in texts.items():
            (corpus / folder / f"{card_id}.md").write_text(text, encoding="utf-8")
    for name, rows in examples.items():
        with open(corpus / "examples" / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return corpus


def write_mini_corpus(root: Path) -> Path:
    cards = {"sources": {"test-report": MINI_SOURCE}, "tactics": {"whataboutism": MINI_TACTIC}, "narratives": MINI_NARRATIVES}
    return write_corpus(root, cards, {"mini": mini_examples()})


@pytest.fixture
def mini_corpus(tmp_path) -> Path:
    return write_mini_corpus(tmp_path)


@pytest.fixture(scope="session")
def shipped_assistant(tmp_path_factory):
    """The real corpus, indexed once for the session in a temporary data dir."""
    from assistant import Assistant, Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("shipped-data"), corpus_dir=REPO / "corpus")
    assistant = Assistant(settings)
    assistant.prepare()  # builds the index and fits the matcher once
    return assistant


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """A real `chroma run` process on loopback."""
    chroma = shutil.which("chroma", path=str(VENV_BIN)) or shutil.which("chroma")
    if chroma is None:
        pytest.fail("the chroma command is not installed (it ships with the chromadb package)")
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    command = [chroma, "run", "--path", str(path / "db"), "--host", "127.0.0.1", "--port", str(port)]
    with server_process(command, port, path / "server.log", env={"ANONYMIZED_TELEMETRY": "False"}) as process:
        yield {"url": f"http://127.0.0.1:{port}", "port": port, "process": process, "path": path}
