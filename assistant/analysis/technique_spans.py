"""The words of a post as the technique model reads them: its tokens and their features, its clauses, the
per-token technique scores of a lexicon, and the spans cut from those scores (with the fitted choice of how)."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Sequence

import numpy as np

from ..text import HAN, merge_spans
from .technique_data import POST, SEM, Annotated

# Latin words (with an apostrophe part), single CJK characters, hashtags, runs of ! and ?.
TOKEN = re.compile(r"[A-Za-z0-9\u00c0-\u024f]+(?:['’][A-Za-z]+)?|[\u3400-\u9fff\uf900-\ufaff]|#\w+|[!?！？]+")
CJK = HAN
WORDISH = re.compile(r"[A-Za-z\u00c0-\u024f\u3400-\u9fff\uf900-\ufaff]")
# Clause boundaries: sentence ends and line breaks always; commas, colons and dashes only inside long sentences.
SENTENCE_END = re.compile(r"[.!?。！？；;…]+[\"'”’)）]*|\n+")
CLAUSE_MARK = re.compile(r"[,:，：、]|\s[-–—]\s")


def embedding_text(text: str) -> str:
    """The string to embed for the model: a post in capitals (most memes) is lower-cased, since the encoder reads
    shouted text poorly (cross-validated: +0.03 AUC on the most frequent techniques). Other text is unchanged."""
    letters = [c for c in text if c.isalpha()]
    if letters and sum(c.isupper() for c in letters) > 0.5 * len(letters):
        return text.lower()
    return text


def tokens(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in TOKEN.finditer(text)]


def token_features(toks: Sequence[tuple[int, int, str]]) -> list[list[str]]:
    words = [w.lower() for _, _, w in toks]
    n = len(words)
    out = []
    for i, (_, _, w) in enumerate(toks):
        lw = words[i]
        prev = words[i - 1] if i else "<s>"
        nxt = words[i + 1] if i + 1 < n else "</s>"
        feats = ["w=" + lw, "pw=" + prev, "nw=" + nxt, "bg=" + prev + "_" + lw, "bg2=" + lw + "_" + nxt]
        if CJK.match(w):
            feats.append("tg=" + prev + lw + nxt)
        elif len(lw) > 4:
            feats += ["p4=" + lw[:4], "s4=" + lw[-4:]]
        out.append(feats)
    return out


def clauses(text: str, long_tokens: int = 14) -> list[tuple[int, int]]:
    """Clause-like pieces of `text` as [start, end) spans, whitespace and edge punctuation trimmed: sentences and
    lines, with sentences of more than `long_tokens` tokens cut again at commas, colons and dashes."""
    pieces: list[tuple[int, int]] = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        pieces.append((start, match.end()))
        start = match.end()
    pieces.append((start, len(text)))
    out = []
    for s, e in pieces:
        if len(tokens(text[s:e])) > long_tokens:
            cut = s
            for m in CLAUSE_MARK.finditer(text, s, e):
                out.append((cut, m.end()))
                cut = m.end()
            out.append((cut, e))
        else:
            out.append((s, e))
    trimmed = []
    for s, e in out:
        while s < e and (text[s].isspace() or text[s] in ",:;，：、-–—"):
            s += 1
        while e > s and (text[e - 1].isspace() or text[e - 1] in ",:，：、-–—"):
            e -= 1
        if e > s and WORDISH.search(text, s, e):
            trimmed.append((s, e))
    return trimmed


def token_scores(toks, lexicon: np.ndarray, vocab: dict[str, int]) -> np.ndarray:
    """[tokens, columns]: each token's summed lexicon log-odds over its known features."""
    feats = token_features(toks)
    # One gather and one segmented sum for all tokens (a numpy call per token cost 0.5 ms on a long post).
    rows = [[vocab[f] for f in fs if f in vocab] for fs in feats]
    counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    out = np.zeros((len(toks), lexicon.shape[1]), np.float32)
    known = np.flatnonzero(counts)
    if len(known):
        flat = np.fromiter((r for group in rows for r in group), dtype=np.int64, count=int(counts.sum()))
        starts = np.r_[0, np.cumsum(counts)[:-1]][known]
        out[known] = np.add.reduceat(lexicon[flat], starts, axis=0)
    return out


def technique_spans(text, toks, scores, style, cut, max_spans: int = 3) -> list[tuple[int, int]]:
    """Phrase style: runs of tokens scoring at least `cut` (a gap of one positive token bridged, at most six
    tokens, never across a line or sentence end), or the best token with its strong neighbours; a Chinese run
    is widened to at least two and at most eight characters. Clause style: the clause whose tokens score best
    (mean of its best three), and any other clause scoring at least as high as `cut` and 0.8 of the best."""
    if not toks or scores.max() <= 0:
        return []
    if style == "phrase":
        def joinable(i, j):  # tokens i < j on one line and in one sentence
            return not SENTENCE_END.search(text, toks[i][1], toks[j][0])

        runs: list[list[int]] = []
        for i, s in enumerate(scores):
            if s < cut:
                continue
            if runs and len(runs[-1]) < 6 and joinable(runs[-1][-1], i) and (
                i - runs[-1][-1] == 1 or (i - runs[-1][-1] == 2 and scores[i - 1] > 0)
            ):
                runs[-1] += list(range(runs[-1][-1] + 1, i + 1))
            else:
                runs.append([i])
        if not runs:
            best = int(np.argmax(scores))
            run = [best]
            for k in (best - 1, best + 1):
                if 0 <= k < len(toks) and scores[k] >= cut / 2 and joinable(min(k, best), max(k, best)):
                    run.append(k)
            runs = [sorted(run)]
        widened = []
        for run in runs:
            run = sorted(run)
            if CJK.match(toks[run[0]][2]):
                while len(run) < 8:
                    left, right = run[0] - 1, run[-1] + 1
                    options = []
                    if left >= 0 and CJK.match(toks[left][2]) and toks[left][1] == toks[run[0]][0]:
                        options.append(left)
                    if right < len(toks) and CJK.match(toks[right][2]) and toks[run[-1]][1] == toks[right][0]:
                        options.append(right)
                    options = [k for k in options if len(run) < 2 or scores[k] >= cut / 2]
                    if not options:
                        break
                    run = sorted(run + [max(options, key=lambda k: scores[k])])
            widened.append(run)
        widened.sort(key=lambda r: -max(scores[i] for i in r))
        spans = merge_spans([(toks[r[0]][0], toks[r[-1]][1]) for r in widened[:max_spans]])
        return spans
    pieces = clauses(text)
    if not pieces:
        return []
    starts = np.array([a for a, _, _ in toks])
    rated = []
    for s, e in pieces:
        inside = scores[(starts >= s) & (starts < e)]
        if len(inside):
            rated.append((float(np.sort(inside)[-3:].mean()), s, e))
    if not rated:
        return []
    rated.sort(reverse=True)
    chosen = [rated[0]] + [r for r in rated[1:max_spans] if r[0] >= max(cut, 0.8 * rated[0][0])]
    return sorted((s, e) for _, s, e in chosen)


def span_styles(mapping: dict[str, str], expert: str, cols: list[str], data: dict[str, Annotated]) -> list[str]:
    """'phrase' for techniques whose gold spans are a few words (median <= 4 tokens), else 'clause'. SemEval
    spans decide for the techniques it has (at least 5 spans); our examples for the rest. `mapping`: SemEval
    name -> our tactic id."""
    lengths: dict[str, dict[str, list[int]]] = {SEM: defaultdict(list), POST: defaultdict(list)}
    for r in (SEM, POST):
        for text, spans in zip(data[r].texts, data[r].spans):
            for s, e, label in spans:
                ours = mapping.get(label, label) if r == SEM else label
                lengths[r][ours].append(len(tokens(text[s:e])))
    styles = []
    for c in cols:
        ours = mapping.get(c, c) if expert == SEM else c
        found = lengths[SEM][ours] if len(lengths[SEM][ours]) >= 5 else lengths[POST][ours]
        styles.append("phrase" if found and float(np.median(found)) <= 4 else "clause")
    return styles


def choose_span_cut(data: Annotated, toks, oof_tokens, index, styles: list[str]):
    """The token-score cut for phrase spans, by span F1 (task 2's definition, see evaluation.techniques) on the
    held-out folds' token scores, given each text's gold techniques (so that it rates the spans alone)."""
    from ..evaluation.techniques import span_prf

    cuts = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]
    gold_all, pred_all = [], {c: [] for c in cuts}
    for i, text in enumerate(data.texts):
        gold = [(s, e, lab) for s, e, lab in data.spans[i] if lab in index]
        gold_all.append(gold)
        for cut in cuts:
            pred = []
            for label in sorted({lab for _, _, lab in gold}):
                j = index[label]
                for s, e in technique_spans(text, toks[i], oof_tokens[i][:, j], styles[j], cut):
                    pred.append((s, e, label))
            pred_all[cut].append(pred)
    results = {c: span_prf(gold_all, pred_all[c])["f1"] for c in cuts}
    best = max(cuts, key=lambda c: results[c])
    return float(best), {str(c): round(v, 4) for c, v in results.items()}
