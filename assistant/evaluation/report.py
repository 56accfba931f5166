"""Eval reports: Markdown and a self-contained HTML page with matplotlib plots."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..api import Answer  # noqa: E402
from .dataset import EvalExample  # noqa: E402


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def confusion_png(summary: dict) -> bytes:
    data = summary["confusion"]
    matrix = np.array(data["matrix"])
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(data["columns"]), 1.0 + 0.5 * len(data["rows"])))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(data["columns"])), data["columns"], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(data["rows"])), data["rows"], fontsize=8)
    ax.set_xlabel("top prediction")
    ax.set_ylabel("gold (primary)")
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color="black" if value < matrix.max() / 2 else "white")
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    return _png(fig)


def reliability_png(summary: dict) -> bytes:
    """Reliability diagram (share correct against mean top score per bin) beside the top-1/FPR trade-off."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    bins = summary.get("calibration", {}).get("bins", [])
    left.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    if bins:
        left.plot([b["mean_score"] for b in bins], [b["correct"] for b in bins], marker="o", label="this dataset")
        for b in bins:
            left.annotate(str(b["n"]), (b["mean_score"], b["correct"]), fontsize=6, xytext=(3, -8), textcoords="offset points")
    left.set_xlabel("mean top score in bin")
    left.set_ylabel("share whose top narrative is right")
    left.set_title(f"Reliability (ECE {_fmt(summary.get('calibration', {}).get('ece'))})")
    left.legend(fontsize=7)
    curve = [c for c in summary.get("tradeoff", []) if c["benign_fpr"] is not None and c["top1"] is not None]
    if curve:
        right.plot([c["benign_fpr"] for c in curve], [c["top1"] for c in curve], marker=".")
    right.set_xlabel("benign false-positive rate")
    right.set_ylabel("top-1 accuracy")
    right.set_title("Trade-off over thresholds")
    fig.tight_layout()
    return _png(fig)


def scores_png(summary: dict) -> bytes:
    rows = summary["per_example"]
    benign = [r.get("candidate_score", r["top_score"]) for r in rows if not r["gold"]]
    positive = [r.get("candidate_score", r["top_score"]) for r in rows if r["gold"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.linspace(0, 1, 26)
    ax.hist(positive, bins=bins, alpha=0.6, label=f"posts with a narrative (n={len(positive)})")
    ax.hist(benign, bins=bins, alpha=0.6, label=f"benign posts (n={len(benign)})")
    if summary.get("threshold") is not None:
        ax.axvline(summary["threshold"], color="black", linestyle="--", label=f"threshold {summary['threshold']:.2f}")
    ax.set_xlabel("top narrative score (passed the threshold or not)")
    ax.set_ylabel("posts")
    ax.legend(fontsize=8)
    ax.set_title("Score distribution")
    fig.tight_layout()
    return _png(fig)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def worst_errors(summary: dict, examples: list[EvalExample], answers: list[Answer | None], limit: int = 10) -> list[dict]:
    errors = []
    # per_example leaves out the examples that ended in an error, so rows are matched to examples by id.
    by_id = {example.id: (example, answer) for example, answer in zip(examples, answers)}
    for row in summary["per_example"]:
        if row["id"] not in by_id:
            continue
        example, answer = by_id[row["id"]]
        wrong = (row["gold"] and row["top1_correct"] is False) or (not row["gold"] and row["predicted"])
        if wrong:
            errors.append(
                {
                    "id": example.id,
                    "text": example.text,
                    "gold": row["gold"],
                    "predicted": row["predicted"],
                    "score": row["top_score"],
                    "explanation": answer.answer if answer else "(no answer)",
                }
            )
    # Confident mistakes first: they are the ones a reader would believe.
    errors.sort(key=lambda e: -e["score"])
    return errors[:limit]


def metric_rows(summary: dict) -> list[tuple[str, str]]:
    n = summary["narratives"]
    failed = summary.get("errors", {}).get("n", 0)
    return [
        ("examples", _fmt(summary["n"])),
        ("errors (not scored)", _fmt(failed)),
        ("top-1 accuracy", _fmt(n["top1_accuracy"])),
        ("narrative micro-F1", _fmt(n["micro_f1"])),
        ("narrative macro-F1", _fmt(n["macro_f1"])),
        ("precision / recall", f"{_fmt(n['precision'])} / {_fmt(n['recall'])}"),
        (
            "benign false-positive rate",
            f"{_fmt(summary['abstention']['false_positive_rate'])} "
            f"({summary['abstention']['false_positives']} of {summary['abstention']['benign_n']})",
        ),
        ("expected calibration error (top score)", _fmt(summary.get("calibration", {}).get("ece"))),
        ("tactic micro-F1", _fmt(summary["tactics"]["micro_f1"])),
        ("citation validity", _fmt(summary["citations"]["valid_rate"])),
        ("faithfulness", _faithfulness(summary)),
        ("latency p50 / p95 (ms)", f"{_fmt(summary['latency_ms']['p50'])} / {_fmt(summary['latency_ms']['p95'])}"),
        ("throughput (posts/s)", _fmt(summary["latency_ms"]["throughput_per_s"])),
    ] + [
        (f"survives {name}", f"{_fmt(row['share'])} ({row['survived']} of {row['matched']} matches)")
        for name, row in summary.get("perturb", {}).items()
    ]


def _faithfulness(summary: dict) -> str:
    judged = summary.get("faithfulness_judged")
    if not judged:
        return _fmt(summary.get("faithfulness"))
    return (
        f"{_fmt(summary.get('faithfulness'))} ({judged['sentences']} cited sentences: "
        f"{judged['by_llm']} judged by the LLM, {judged['by_embedding']} by embedding similarity)"
    )


def error_lines(summary: dict) -> list[str]:
    """The examples that ended in an error: counted, never scored as wrong predictions."""
    errors = summary.get("errors") or {"n": 0, "examples": []}
    if not errors["n"]:
        return []
    lines = ["", "## Examples that ended in an error", "",
             f"{errors['n']} example(s) could not be answered; they are left out of every score above.", ""]
    lines += [f"- {e['id']}: {e['error']}" for e in errors["examples"]]
    if errors["n"] > len(errors["examples"]):
        lines.append(f"- ... and {errors['n'] - len(errors['examples'])} more")
    return lines


def breakdown_lines(summary: dict) -> list[str]:
    lines = []
    for field, table in summary.get("breakdowns", {}).items():
        lines += ["", f"## By {field}", "", "| " + field + " | posts | with a narrative: top-1 | benign: FPR |", "|---|---|---|---|"]
        for value, row in table.items():
            lines.append(
                f"| {value} | {row['n']} | {_fmt(row['top1'])} ({row['narrative_posts']}) | {_fmt(row['benign_fpr'])} ({row['benign_posts']}) |"
            )
    return lines


def markdown_report(summary: dict, errors: list[dict], title: str) -> str:
    lines = [f"# {title}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in metric_rows(summary)]
    lines += ["", "## Per narrative", "", "| narrative | precision | recall | F1 | support | predicted |", "|---|---|---|---|---|---|"]
    for label, row in summary["narratives"]["per_narrative"].items():
        lines.append(
            f"| {label} | {_fmt(row['precision'])} | {_fmt(row['recall'])} | {_fmt(row['f1'])} | {row['support']} | {row['predicted']} |"
        )
    lines += error_lines(summary)
    lines += breakdown_lines(summary)
    lines += ["", "## Top-1 against false positives", "", "| threshold | benign FPR | top-1 |", "|---|---|---|"]
    lines += [f"| {_fmt(c['threshold'])} | {_fmt(c['benign_fpr'])} | {_fmt(c['top1'])} |" for c in summary.get("tradeoff", [])]
    distribution = summary.get("score_distribution")
    if distribution:
        lines += ["", "## Where the top scores fall", "", "| score | benign posts | posts with a narrative |", "|---|---|---|"]
        edges = distribution["edges"]
        for low, high, benign, narrative in zip(edges[:-1], edges[1:], distribution["benign"], distribution["narrative"]):
            lines.append(f"| {low:.1f}-{high:.1f} | {benign} | {narrative} |")
    lines += ["", "![Confusion matrix](confusion.png)", "", "![Score distribution](scores.png)", "",
              "![Reliability and trade-off](reliability.png)", "", "## Worst errors", ""]
    if not errors:
        lines.append("None.")
    for error in errors:
        lines += [
            f"### {error['id']} (score {error['score']:.2f})",
            "",
            f"- gold: {', '.join(error['gold']) or '(benign)'}",
            f"- predicted: {', '.join(error['predicted']) or '(no known narrative)'}",
            "",
            "Post:",
            "",
            "```text",
            error["text"].replace("```", "'''"),
            "```",
            "",
            "<details><summary>Explanation given</summary>",
            "",
            error["explanation"],
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines)


def html_report(summary: dict, errors: list[dict], title: str, confusion: bytes, scores: bytes, reliability: bytes = b"") -> str:
    esc = html.escape
    metric_html = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in metric_rows(summary))
    per = "".join(
        f"<tr><td>{esc(label)}</td><td>{_fmt(r['precision'])}</td><td>{_fmt(r['recall'])}</td><td>{_fmt(r['f1'])}</td>"
        f"<td>{r['support']}</td><td>{r['predicted']}</td></tr>"
        for label, r in summary["narratives"]["per_narrative"].items()
    )
    error_html = "".join(
        f"<section><h3>{esc(e['id'])} (score {e['score']:.2f})</h3>"
        f"<p>gold: {esc(', '.join(e['gold']) or '(benign)')}; predicted: {esc(', '.join(e['predicted']) or '(no known narrative)')}</p>"
        f"<pre>{esc(e['text'])}</pre><details><summary>Explanation given</summary><pre>{esc(e['explanation'])}</pre></details></section>"
        for e in errors
    ) or "<p>None.</p>"
    failed = summary.get("errors") or {"n": 0, "examples": []}
    failed_html = (
        f"<h2>Examples that ended in an error</h2><p>{failed['n']} example(s) could not be answered; "
        "they are left out of every score above.</p><ul>"
        + "".join(f"<li>{esc(e['id'])}: {esc(e['error'])}</li>" for e in failed["examples"])
        + "</ul>"
    ) if failed["n"] else ""

    def img(data: bytes, alt: str) -> str:
        return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
pre{{white-space:pre-wrap;background:#f6f6f6;padding:8px}}img{{max-width:100%}}</style></head>
<body><h1>{esc(title)}</h1><table>{metric_html}</table>
<h2>Per narrative</h2><table><tr><th>narrative</th><th>precision</th><th>recall</th><th>F1</th><th>support</th><th>predicted</th></tr>{per}</table>
{failed_html}
<h2>Plots</h2>{img(confusion, "Confusion matrix")}{img(scores, "Score distribution")}{img(reliability, "Reliability and trade-off")}
<h2>Worst errors</h2>{error_html}</body></html>
"""


def write_report(out: Path, summary: dict, examples: list[EvalExample], answers: list[Answer | None], title: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    errors = worst_errors(summary, examples, answers)
    confusion = confusion_png(summary)
    scores = scores_png(summary)
    reliability = reliability_png(summary)
    files = {
        "confusion.png": confusion,
        "scores.png": scores,
        "reliability.png": reliability,
        "report.md": markdown_report(summary, errors, title).encode(),
        "report.html": html_report(summary, errors, title, confusion, scores, reliability).encode(),
        "metrics.json": json.dumps(summary, indent=2, ensure_ascii=False).encode(),
    }
    written = []
    for name, payload in files.items():
        path = out / name
        path.write_bytes(payload)
        written.append(path)
    return written
