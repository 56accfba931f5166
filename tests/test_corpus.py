"""Loader and validation: every problem reported with its file and line."""

import pytest
import json

from typer.testing import CliRunner

from assistant.cli import app
from assistant.corpus import load_knowledge_base, validate

pytestmark = pytest.mark.unit  # no encoder, Chroma or server: part of the fast tier

runner = CliRunner()


def problems_of(corpus):
    return [str(p) for p in validate(load_knowledge_base(corpus))]


def test_mini_corpus_is_valid(mini_corpus):
    kb = load_knowledge_base(mini_corpus)
    assert problems_of(mini_corpus) == []
    assert set(kb.narratives) == {"cotton-is-machine-picked", "region-is-happy"}
    assert kb.tactics["whataboutism"].cues.en == ["\\bwhat about\\b"]
    assert len(kb.examples_in("train")) == 32


def test_unknown_tactic_and_source_are_reported_with_line(mini_corpus):
    path = mini_corpus / "narratives" / "region-is-happy.md"
    text = path.read_text().replace("tactics: []", "tactics: [no-such-tactic]").replace(
        "    source: test-report", "    source: missing-report"
    )
    path.write_text(text)
    found = problems_of(mini_corpus)
    tactic_line = text.splitlines().index("tactics: [no-such-tactic]") + 1
    source_line = text.splitlines().index("    source: missing-report") + 1
    assert f"corpus/narratives/region-is-happy.md:{tactic_line}: unknown tactic id 'no-such-tactic' in tactics" in found
    assert any(
        p.startswith(f"corpus/narratives/region-is-happy.md:{source_line}:") and "unknown source id 'missing-report'" in p
        for p in found
    )


def test_missing_field_is_reported(mini_corpus):
    path = mini_corpus / "narratives" / "region-is-happy.md"
    path.write_text(path.read_text().replace('title: "Everyone in the region is happy"\n', ""))
    found = problems_of(mini_corpus)
    assert any("region-is-happy.md" in p and "missing field 'title'" in p for p in found)


def test_bad_yaml_and_missing_front_matter(mini_corpus):
    (mini_corpus / "tactics" / "broken.md").write_text("---\nid: broken\nname: [unclosed\n---\n")
    (mini_corpus / "sources" / "plain.md").write_text("just text\n")
    found = problems_of(mini_corpus)
    assert any(p.startswith("corpus/tactics/broken.md:") and "invalid YAML" in p for p in found)
    assert "corpus/sources/plain.md:1: no YAML front matter (the file must start with a '---' line and close it with another)" in found


def test_examples_duplicates_unknown_ids_bad_spans_and_bad_json(mini_corpus):
    path = mini_corpus / "examples" / "mini.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows.append({**rows[0]})  # duplicate id and text
    rows.append({**rows[1], "id": "new-1", "text": "another text", "narratives": ["nope"], "tactics": []})
    rows.append({**rows[2], "id": "new-2", "text": "span text", "tactics": [{"id": "whataboutism", "start": 0, "end": 4, "text": "nope"}]})
    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + ["{not json"]
    path.write_text("\n".join(lines) + "\n")
    found = problems_of(mini_corpus)
    n = len(rows)
    assert any(p.startswith(f"corpus/examples/mini.jsonl:{n - 2}:") and "duplicate example id 'cot-001'" in p for p in found)
    assert any(p.startswith(f"corpus/examples/mini.jsonl:{n - 1}:") and "unknown narrative id 'nope'" in p for p in found)
    assert any(p.startswith(f"corpus/examples/mini.jsonl:{n}:") and "does not match its text" in p for p in found)
    assert any(p.startswith(f"corpus/examples/mini.jsonl:{n + 1}:") and "invalid JSON" in p for p in found)


def test_duplicate_card_id(mini_corpus):
    original = (mini_corpus / "narratives" / "region-is-happy.md").read_text()
    (mini_corpus / "narratives" / "region-is-happy-copy.md").write_text(original)
    found = problems_of(mini_corpus)
    assert any("region-is-happy-copy.md" in p and "does not match the file name" in p for p in found)


def test_validate_command_exit_codes(mini_corpus):
    ok = runner.invoke(app, ["--corpus-dir", str(mini_corpus), "validate"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("ok: 2 narratives, 1 tactics, 1 sources")
    (mini_corpus / "tactics" / "whataboutism.md").write_text(
        (mini_corpus / "tactics" / "whataboutism.md").read_text().replace("kind: rhetorical", "kind: sneaky")
    )
    bad = runner.invoke(app, ["--corpus-dir", str(mini_corpus), "validate"])
    assert bad.exit_code == 1
    assert "corpus/tactics/whataboutism.md:4: kind:" in bad.output
