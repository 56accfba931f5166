"""Evasion transforms for `narrative-lens eval --perturb`: does a match survive the tricks used to hide a post?

Each transform rewrites a post the way an account hiding from keyword filters or from similarity search would:
benign filler around the claim, a wall of emoji, letters spaced out, text stored backwards under a right-to-left
override, leetspeak digits. A match survives when the transformed post still carries the narrative the original
was matched to. Only posts whose original analysis found a gold narrative are counted, so the figure is about
evasion, not about the matcher's recall.
"""

from __future__ import annotations

import random
import re
from typing import Callable

from ..text import HAN

# Filler sentences (constructed): everyday lines with no claim in them, English and Chinese.
_FILLER_EN = [
    "Anyway, the weather here has been lovely all week.",
    "My neighbour finally finished painting her fence.",
    "We tried a new noodle place downtown and it was great.",
    "The kids have a football match on Saturday morning.",
    "I still need to return those library books.",
    "Traffic on the ring road was slow again today.",
    "Does anyone have a good recipe for banana bread?",
    "The new phone update changed all my notification settings.",
    "Our team meeting got moved to Thursday afternoon.",
    "I watered the tomatoes before I left for work.",
    "The train was on time for once, which was nice.",
    "Remember to bring a jacket if you go hiking this weekend.",
]
_FILLER_ZH = [
    "这几天天气很好，适合出去走走。",
    "楼下新开了一家面馆，味道还不错。",
    "周六上午孩子们有一场足球比赛。",
    "我还得去图书馆还书。",
    "今天环路上又堵车了。",
    "有人知道香蕉蛋糕怎么做吗？",
    "手机更新以后通知设置全变了。",
    "我们的例会改到周四下午了。",
    "出门前我给番茄浇了水。",
    "周末去爬山记得带件外套。",
    "今天地铁居然准点了。",
    "晚饭打算做个西红柿炒蛋。",
]
_EMOJI = "😀😂🔥👍🙏🎉💯😎🌸⭐"
_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "A": "4", "E": "3", "I": "1", "O": "0"})
_LONG_WORD = re.compile(r"[A-Za-z]{5,}")


def _filler(count: int) -> Callable[[str, random.Random], str]:
    def transform(text: str, rng: random.Random) -> str:
        pool = _FILLER_ZH if HAN.search(text) else _FILLER_EN
        lines = rng.sample(pool, min(count, len(pool)))
        lines += [rng.choice(pool) for _ in range(count - len(lines))]
        if pool is _FILLER_ZH:
            return text.rstrip() + "".join(lines)
        return text.rstrip() + " " + " ".join(lines)
    return transform


def _emoji(text: str, rng: random.Random) -> str:
    return text + " " + "".join(rng.choice(_EMOJI) for _ in range(300))


def _letter_spaced(text: str, rng: random.Random) -> str:
    """Every word of five or more letters spaced out ("D e t r i c k"); Chinese characters spaced one by one."""
    spaced = _LONG_WORD.sub(lambda m: " ".join(m.group()), text)
    return re.sub(f"(?<={HAN.pattern})(?={HAN.pattern})", " ", spaced)


def _reversed(text: str, rng: random.Random) -> str:
    """Each line stored backwards behind a right-to-left override, so that it displays forwards."""
    return "\n".join("\u202e" + line[::-1] + "\u202c" for line in text.split("\n"))  # bidi runs end at a line break


def _leetspeak(text: str, rng: random.Random) -> str:
    return _LONG_WORD.sub(lambda m: m.group()[0] + m.group()[1:].translate(_LEET), text)


TRANSFORMS: dict[str, Callable[[str, random.Random], str]] = {
    "filler-3": _filler(3),
    "filler-10": _filler(10),
    "emoji-300": _emoji,
    "letter-spaced": _letter_spaced,
    "rlo-reversed": _reversed,
    "leetspeak": _leetspeak,
}


def perturbation_survival(analyse: Callable[[list[str]], list[list[str]]], examples, seed: int = 7) -> dict:
    """For each transform: of the posts matched to a gold narrative, how many still carry it once transformed.

    `analyse` maps texts to the narrative ids reported for each (the offline analysis)."""
    rng = random.Random(seed)
    found = analyse([example.text for example in examples])
    matched = [(example, [n for n in narratives if n in example.narratives])
               for example, narratives in zip(examples, found)]
    matched = [(example, hits) for example, hits in matched if hits]
    report: dict[str, dict] = {}
    for name, transform in TRANSFORMS.items():
        after = analyse([transform(example.text, rng) for example, _ in matched]) if matched else []
        survived = sum(1 for (_, hits), narratives in zip(matched, after) if set(hits) & set(narratives))
        report[name] = {"matched": len(matched), "survived": survived,
                        "share": round(survived / len(matched), 4) if matched else None}
    return report
