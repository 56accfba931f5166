"""Narrative Lens benchmarks: one command, one printed table.

    .venv/bin/python benchmarks/run.py            # everything (a few minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # smaller synthetic index, fewer posts

Measures ingest throughput, index build time, offline analysis latency (with
the shipped corpus and with 10,000 and 100,000 synthetic passages) next to
the embedding model's own time for the same posts, eval throughput, app cold
start to first answer, and peak memory. Medians and ratios, never single runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import Assistant, Settings  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def posts(limit: int) -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "evals" / "dev.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row["text"] for row in rows][:limit]


def latency(assistant: Assistant, texts: list[str]) -> list[float]:
    times = []
    for text in texts:
        started = time.perf_counter()
        assistant.ask(text, mode="offline")
        times.append((time.perf_counter() - started) * 1000)
    return times


def embedding_floor(assistant: Assistant, texts: list[str]) -> list[float]:
    times = []
    for text in texts:
        started = time.perf_counter()
        assistant.embeddings.encode([text])
        times.append((time.perf_counter() - started) * 1000)
    return times


def add_synthetic_passages(assistant: Assistant, count: int, seed: int = 0) -> None:
    """Random unit vectors stand in for report passages: search cost depends on index size, not content."""
    store = assistant.store
    generation = store.manifest().generation
    collection = store.client.get_collection(store.collection_name("passages", generation), embedding_function=None)
    rng = np.random.default_rng(seed)
    batch = 5000
    existing = collection.count()
    for offset in range(0, count, batch):
        size = min(batch, count - offset)
        vectors = rng.normal(size=(size, 512)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [f"synthetic-{existing + offset + i}" for i in range(size)]
        collection.add(
            ids=ids,
            embeddings=vectors.tolist(),
            documents=[f"Synthetic passage {existing + offset + i}." for i in range(size)],
            metadatas=[{"source_id": "synthetic", "title": "Synthetic", "locator": f"p. {i}", "origin": "ingested"} for i in range(size)],
        )


def make_pdf(path: Path, pages: int) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=10)
    for number in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 5, " ".join(f"Page {number} sentence {i} about cotton harvest reports and sanctions." for i in range(40)))
    pdf.output(str(path))


def peak_rss_mb(pid: int) -> float:
    """The process's own high-water mark (VmHWM), read before it exits."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cold_start(data_dir: Path) -> tuple[float, float]:
    """Seconds from launching `narrative-lens serve` to the first answer through its API, and its peak RSS."""
    from gradio_client import Client

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import free_port, wait_for_port

    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "narrative-lens"), "--data-dir", str(data_dir), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 120, process)
        Client(f"http://127.0.0.1:{port}/", verbose=False).predict("美国为了军火商的利益不断给乌克兰送武器。", api_name="/analyze")
        return time.perf_counter() - started, peak_rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs (10,000 synthetic passages only)")
    args = parser.parse_args()
    n_posts = 80 if args.quick else 200
    sizes = [10_000] if args.quick else [10_000, 100_000]
    rows: list[tuple[str, str, str]] = []
    scratch = Path(tempfile.mkdtemp(prefix="narrative-lens-bench-"))

    # Index build for the shipped corpus, from nothing.
    data = scratch / "data"
    assistant = Assistant(Settings(data_dir=data))
    started = time.perf_counter()
    report = assistant.build_index()
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    assistant.technique_model
    technique_s = time.perf_counter() - started
    started = time.perf_counter()
    assistant.prepare()
    fit_s = time.perf_counter() - started
    items = sum(report.counts.values())
    rows.append(("index build, shipped corpus", f"{build_s:.1f} s", f"{items} items"))
    rows.append(("matcher fit (first start, and every saved example)", f"{fit_s:.1f} s", f"{len(assistant.analyzer.examples.ids)} examples"))
    rows.append(("technique model fit (first start only; cached)", f"{technique_s:.1f} s", "SemEval training split + annotated posts"))

    texts = posts(n_posts)
    latency(assistant, texts[:10])  # warm-up
    floor = embedding_floor(assistant, texts)
    base = latency(assistant, texts)
    floor_median = statistics.median(floor)
    rows.append(("embedding model alone (floor)", f"p50 {floor_median:.1f} ms", f"p95 {percentile(floor, 95):.1f} ms, {len(texts)} posts"))
    rows.append((
        "offline analysis, shipped corpus",
        f"p50 {statistics.median(base):.1f} ms",
        f"p95 {percentile(base, 95):.1f} ms; median {statistics.median(base) / floor_median:.1f}x the floor",
    ))

    # Eval throughput over the dev split.
    from assistant.evaluation import evaluate, load_dataset

    examples = load_dataset(ROOT / "evals" / "dev.jsonl", set(assistant.kb.narratives))
    summary, _ = evaluate(assistant, examples, sorted(assistant.kb.narratives))
    rows.append(("eval throughput (dev split)", f"{summary['latency_ms']['throughput_per_s']:.0f} posts/s", f"{summary['n']} posts, one process"))

    # Synthetic passages: 10k and 100k.
    total = 0
    for size in sizes:
        add_synthetic_passages(assistant, size - total, seed=size)
        total = size
        assistant.__dict__.pop("analyzer", None)
        assistant.prepare()
        latency(assistant, texts[:10])
        times = latency(assistant, texts)
        rows.append((
            f"offline analysis, +{size:,} passages",
            f"p50 {statistics.median(times):.1f} ms",
            f"p95 {percentile(times, 95):.1f} ms; median {statistics.median(times) / floor_median:.1f}x the floor",
        ))

    # Ingest throughput on generated PDFs.
    pdf = scratch / "report.pdf"
    pages = 40 if args.quick else 120
    make_pdf(pdf, pages)
    ingest_assistant = Assistant(Settings(data_dir=scratch / "ingest-data"))
    ingest_assistant.build_index()
    started = time.perf_counter()
    ingest_assistant.ingest([pdf])
    ingest_s = time.perf_counter() - started
    rows.append(("ingest, generated PDF", f"{pages / ingest_s:.1f} pages/s", f"{pages} pages in {ingest_s:.1f} s (extract, chunk, embed, swap)"))

    # App cold start to first answer (index already built, matcher cached).
    runs = [cold_start(data) for _ in range(1 if args.quick else 3)]
    rows.append(("app cold start to first answer", f"{statistics.median(r[0] for r in runs):.1f} s", f"median of {len(runs)}"))

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    server = max(r[1] for r in runs)
    rows.append(("peak RSS", f"{max(own, server):.0f} MB", f"benchmark process (with +{sizes[-1]:,} passages) {own:.0f} MB; app server {server:.0f} MB"))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Narrative Lens benchmarks ({os.cpu_count()} cores{', quick' if args.quick else ''})")
    table.add_column("what")
    table.add_column("result", justify="right")
    table.add_column("detail")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
