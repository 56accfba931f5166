"""The real app in headless Chromium, and its API through gradio_client."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import ARTIFACTS, REPO, VENV_BIN, free_port, server_process

CHROMIUM = "/usr/bin/chromium"
COTTON_POST = "新疆的棉花早就用机器采摘了，哪来的强迫劳动？美国制裁新疆棉只会让农民失业。"
COTTON_TITLE_WORDS = "forced labour"


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("app-data")
    port = free_port()
    command = [str(VENV_BIN / "narrative-lens"), "--data-dir", str(data), "--corpus-dir", str(REPO / "corpus"), "serve", "--port", str(port)]
    with server_process(command, port, data / "server.log", timeout=180, env={"GRADIO_ANALYTICS_ENABLED": "False"}):
        yield {"url": f"http://127.0.0.1:{port}/", "data": data, "log": data / "server.log"}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is not installed (.ci/run installs it with apt-get)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_server, request):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(30_000)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    page.goto(app_server["url"], wait_until="domcontentloaded")
    page.locator("#post textarea").wait_for()
    yield page
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def analyse(page, text: str) -> None:
    page.locator("#post textarea").fill(text)
    page.locator("#analyse").click()


def last_bot_message(page):
    return page.locator("#chat .message.bot, #chat [data-testid='bot']").last


@pytest.mark.browser
def test_paste_a_post_see_narrative_citations_and_export(page, tmp_path):
    analyse(page, COTTON_POST)
    chat = page.locator("#chat")
    chat.get_by_text("Mode: offline").wait_for()
    assert "There is no forced labour in Xinjiang".casefold() in chat.inner_text().casefold() or COTTON_TITLE_WORDS in chat.inner_text()
    assert "[1]" in chat.inner_text()
    # The post's phrases are highlighted with their narrative or tactic.
    assert "narrative: there is no forced labour" in page.locator("#highlights").inner_text().casefold()
    # Citations expand to the passage.
    first = page.locator("#citations details").first
    first.locator("summary").click()
    assert first.locator("blockquote").is_visible()
    assert len(first.locator("blockquote").inner_text()) > 20
    # Export: the Markdown brief and the JSON.
    with page.expect_download() as download_md:
        page.locator("#download-md").click()
    brief = Path(download_md.value.path()).read_text(encoding="utf-8")
    assert brief.startswith("# Narrative Lens brief") and COTTON_POST in brief and "[1]" in brief
    with page.expect_download() as download_json:
        page.locator("#download-json").click()
    data = json.loads(Path(download_json.value.path()).read_text(encoding="utf-8"))
    assert data["narratives"][0]["id"] == "xinjiang-no-forced-labor"
    assert {c["id"] for c in data["citations"]} >= {1}


@pytest.mark.browser
def test_follow_up_question_is_answered_with_citations(page):
    analyse(page, COTTON_POST)
    page.locator("#chat").get_by_text("Mode: offline").wait_for()
    analyse(page, "What is the evidence on cotton mechanisation?")
    # The answer streams in line by line; it is complete when its own mode line follows it.
    page.locator("#chat").get_by_text("Mode: offline").nth(1).wait_for()
    text = page.locator("#chat").inner_text()
    assert "cotton" in text.casefold() and "[1]" in text.split("From the knowledge base")[-1]


@pytest.mark.browser
def test_pasted_html_and_scripts_are_shown_as_text_never_run(page):
    payload = (
        '<img src="http://127.0.0.1:9/x.png" onerror="window.__pwned=1;alert(1)">'
        "<script>window.__pwned=2;alert(2)</script> [click me](javascript:alert(3)) The US sells weapons to profit from war."
    )
    analyse(page, payload)
    page.locator("#chat").get_by_text("Mode: offline").wait_for()
    assert page.evaluate("window.__pwned") is None
    assert page.dialogs == []
    assert "<script>" in page.locator("#chat").inner_text()
    assert page.locator("#chat img[src*='x.png']").count() == 0


@pytest.mark.browser
def test_browse_a_narrative_card(page):
    page.get_by_role("tab", name="Narratives and tactics").click()
    search = page.locator("#card-search textarea, #card-search input").first
    search.fill("德特里克")
    search.press("Enter")
    card = page.locator("#card")
    card.get_by_text("Fort Detrick", exact=False).first.wait_for()
    text = card.inner_text()
    assert "COVID" in text and "德特里克堡" in text and "Sources" in text and "Annotated examples" in text


@pytest.mark.browser
def test_examples_gallery_and_quiz(page):
    page.get_by_role("tab", name="Examples and quiz").click()
    from assistant.corpus import load_knowledge_base

    first = next(e.id for e in load_knowledge_base(REPO / "corpus").examples if e.split == "train")
    page.locator("#gallery").get_by_text(first, exact=True).first.click()
    page.locator("#gallery-answer").get_by_text("Mode: offline").wait_for()
    assert first in page.locator("#gallery-answer").inner_text()
    page.locator("#quiz-new").click()
    page.locator("#quiz-post").get_by_text("Which narratives").wait_for()
    page.locator("#quiz-narratives").get_by_text("No known narrative").click()
    page.locator("#quiz-check").click()
    page.locator("#quiz-reveal").get_by_text("The assistant's explanation").wait_for()
    assert page.locator("#quiz-score").inner_text().strip() in ("Score: 0 / 1", "Score: 1 / 1")


@pytest.mark.browser
def test_saved_example_joins_the_next_analysis(page):
    post = "Constructed test post: machines harvest every boll of Xinjiang cotton, so the forced-labour story is a fabrication by sanction-happy politicians."
    analyse(page, post)
    page.locator("#chat").get_by_text("Mode: offline").wait_for()
    page.locator("#teach").get_by_text("Correct the labels").click()
    boxes = page.locator("#teach-narratives")
    for box in boxes.locator("input[type=checkbox]").all():
        box.uncheck()
    boxes.get_by_label("There is no forced labour in Xinjiang").check()
    page.locator("#save-example").click()
    page.locator("#saved").get_by_text("refitting the matcher").wait_for()
    page.locator("#saved").get_by_text("Saved as").wait_for(timeout=240_000)  # the index is rebuilt and the matcher refitted
    assert "(xinjiang-no-forced-labor)" in page.locator("#saved").inner_text()
    saved_id = page.locator("#saved code").first.inner_text()
    assert saved_id.startswith("user-")
    analyse(page, post)
    page.locator("#chat").get_by_text(saved_id).first.wait_for()


def test_api_returns_the_ask_json(app_server):
    from gradio_client import Client

    client = Client(app_server["url"], verbose=False)
    result = client.predict(COTTON_POST, api_name="/analyze")
    assert result["mode"] == "offline"
    assert result["narratives"][0]["id"] == "xinjiang-no-forced-labor"
    assert set(result) >= {"narratives", "tactics", "citations", "answer", "notices"}
    with pytest.raises(Exception) as caught:
        client.predict("   ", api_name="/analyze")
    assert "empty" in str(caught.value)


def test_serve_refuses_a_public_address_without_a_password(tmp_path):
    result = subprocess.run(
        [str(VENV_BIN / "narrative-lens"), "--data-dir", str(tmp_path), "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert b"refusing to listen on 0.0.0.0 without a password" in result.stderr
    assert b"Traceback" not in result.stderr
