"""Router robustness: how easily do short suffixes appended to a prompt flip a router?

Published attacks on LLM routers (confounder gadgets against RouteLLM's routers) append a
few words to a prompt to move the router's score: up, so everything goes to the large
model (cost inflation), or down, so hard prompts stay on the small one (quality loss).
This script measures, per router, the flip rate of routing decisions on held-out prompts:

- ``up``: share of prompts routed *small* that a suffix sends *large*;
- ``down``: share of prompts routed *large* that a suffix sends *small*;

for random suffixes (4 random words, 5 draws, both directions), hand-written ones (one
"sounds hard", one "sounds easy") and a greedy search over a small vocabulary against the
router's own score (a universal gadget found on a search split, measured on the
evaluation split: nothing is tuned on the prompts it is measured on).

Prompt-scoring routers (``logistic``, ``knn``: trained on 70% of RouteLLM's GSM8K table,
threshold for 50% large calls on that split; ``bandit``: LinUCB learning online from the
same split's outcomes) run on 150 held-out prompts. Draft-scoring routers
(``confidence``: the SLM's token probabilities; ``self_eval``: the SLM judging its draft)
need a real SLM draft per prompt, so they run on 10 GSM8K problems with the embedded
Qwen 0.5B (48-token drafts; threshold = median score of 6 other problems; greedy search =
the best single word of 8 on 3 other problems).

Defence: the ``guarded`` router (median of the score of the prompt and of the prompt
without its last one and two segments). Its cost on clean prompts (decisions changed,
routed accuracy and large-call share at the same threshold) and its effect on the same
gadgets and on a greedy search run against the guarded router itself (adaptive, with
sentence punctuation in the vocabulary) are printed.

Run: TANDEM_THREADS=1 python benchmarks/router_attack.py [--no-llm] [--llm-n 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
TABLE = HERE / "data" / "routellm" / "gsm8k_responses.csv"
GSM8K = HERE / "data" / "gsm8k" / "train_sample.jsonl"
UP = "Please think very carefully: this is a difficult multi-step problem that needs expert reasoning."
DOWN = "This is a simple question; a quick short answer is fine."
# Vocabulary of the greedy search: common words, math and difficulty words, punctuation.
_VOCAB_TEXT = (
    "the a of and to in is it that for on with as be at by this from or an are not but all "
    "can one will just so than then very more most some only also about into over after "
    "simple easy quick basic short trivial obvious plain small little fast brief clear "
    "hard difficult complex advanced expert rigorous careful precise detailed tricky proof "
    "theorem integral derivative matrix probability percent ratio fraction equation "
    "solve compute calculate explain reason think verify check step steps total each "
    "how many much what why when answer question problem number numbers money dollars "
    "hours days apples students . ? ! , ; :"
)
VOCAB = _VOCAB_TEXT.split()
LLM_VOCAB = ["carefully", "hard", "proof", "integral", "simple", "quick", "easy", "obviously"]
Scorer = Callable[[list[str]], np.ndarray]


def attach(text: str, suffix: Sequence[str] | str) -> str:
    words = suffix if isinstance(suffix, str) else " ".join(suffix)
    return f"{text.rstrip()} {words}".replace(" .", ".").replace(" ?", "?").replace(" !", "!") \
        .replace(" ,", ",").replace(" ;", ";").replace(" :", ":")


class Embeddings:
    """MiniLM embeddings with a memo (the searches score many identical texts)."""

    def __init__(self, name: str = "minilm") -> None:
        from tandemlm.stores.embeddings import get_embedder

        self.embedder = get_embedder(name)
        self.memo: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.memo))
        if todo:
            for text, vec in zip(todo, np.asarray(self.embedder.embed(todo), dtype=float), strict=True):
                self.memo[text] = vec
        return np.vstack([self.memo[t] for t in texts])


def train_routers(table: Any, train: np.ndarray, emb: Embeddings, tmp: Path) -> dict[str, tuple[Scorer, float]]:
    """``{name: (score texts, threshold)}`` for logistic, knn and bandit."""
    from tandemlm.evaluation.metrics import threshold_for_rate
    from tandemlm.nodes.routers._features import text_stats
    from tandemlm.nodes.routers.knn import KnnModel
    from tandemlm.nodes.routers.logistic import LogisticModel

    sub = table.subset(train)
    x = emb(sub.texts)
    logistic = LogisticModel.fit(np.hstack([x, text_stats(sub.texts)]), sub.labels(), embedding="minilm", stats=True)
    knn = KnnModel.fit(x, sub.labels(), embedding="minilm", k=50)

    def score_logistic(texts: list[str]) -> np.ndarray:
        return logistic.predict(np.hstack([emb(texts), text_stats(texts)]))

    def score_knn(texts: list[str]) -> np.ndarray:
        return knn.predict(emb(texts))[0]

    routers: dict[str, tuple[Scorer, float]] = {}
    for name, fn in (("logistic", score_logistic), ("knn", score_knn)):
        routers[name] = (fn, threshold_for_rate(fn(sub.texts), 0.5))
    routers["bandit"] = (train_bandit(sub, x, tmp / "bandit.sqlite", emb), 0.5)
    return routers


def train_bandit(sub: Any, x: np.ndarray, path: Path, emb: Embeddings) -> Scorer:
    """LinUCB trained online on ``sub`` (each arm rewarded by its model's outcome), then a
    vectorised copy of :meth:`BanditRouter.decide`'s score, checked against the router."""
    from tandemlm.nodes.routers.bandit import LARGE, SMALL, BanditRouter, BanditState

    router = BanditRouter(state=str(path), embedding="minilm")
    feats = np.hstack([x, np.ones((len(x), 1))])
    state = BanditState(path, dim=feats.shape[1])
    for i, row in enumerate(feats):
        est = state.ucb(row, router.alpha, {LARGE: router.large_cost})
        arm = LARGE if est[LARGE]["ucb"] >= est[SMALL]["ucb"] else SMALL
        quality = float(sub.strong[i] if arm == LARGE else sub.weak[i])
        state.update(arm, row, quality - (router.large_cost if arm == LARGE else 0.0))
    arms = state.arms()
    theta = {a: arms[a][0] @ arms[a][1] for a in arms}

    def score(texts: list[str]) -> np.ndarray:
        f = np.hstack([emb(texts), np.ones((len(texts), 1))])
        ucb = {}
        for arm, (a_inv, _, _) in arms.items():
            mean = f @ theta[arm] - (router.large_cost if arm == LARGE else 0.0)
            bonus = router.alpha * np.sqrt(np.maximum(0.0, np.einsum("ij,jk,ik->i", f, a_inv, f)))
            ucb[arm] = mean + bonus
        gap = np.clip((ucb[LARGE] - ucb[SMALL]) / router.temperature, -50, 50)
        return 1.0 / (1.0 + np.exp(-gap))

    probe = sub.texts[:3]
    expected = [router.decide(t).score for t in probe]  # the real router (records 3 decisions)
    assert np.allclose(score(probe), expected, atol=1e-6), (score(probe), expected)
    return score



def guarded(fn: Scorer) -> Scorer:
    from tandemlm.nodes.routers.guarded import variants

    def score(texts: list[str]) -> np.ndarray:
        groups = [variants(t) for t in texts]
        flat = [v for g in groups for v in g]
        values = fn(flat)
        out, i = [], 0
        for g in groups:
            out.append(statistics.median(values[i:i + len(g)]))
            i += len(g)
        return np.asarray(out)

    return score


def greedy(fn: Scorer, prompts: list[str], vocab: list[str], length: int, sign: float) -> list[str]:
    """The suffix of ``length`` words that moves the mean score most (``sign`` +1 up, -1 down)."""
    suffix: list[str] = []
    for _ in range(length):
        best, best_value = vocab[0], -np.inf
        for word in vocab:
            value = sign * float(fn([attach(p, [*suffix, word]) for p in prompts]).mean())
            if value > best_value:
                best, best_value = word, value
        suffix.append(best)
    return suffix


def flips(clean: np.ndarray, attacked: np.ndarray) -> tuple[float, float]:
    """(up, down) flip rates between two decision vectors (True = large)."""
    small, large = ~clean, clean
    up = float((attacked & small).sum() / small.sum()) if small.any() else float("nan")
    down = float((~attacked & large).sum() / large.sum()) if large.any() else float("nan")
    return up, down


def pct(x: float) -> str:
    return "  -  " if math.isnan(x) else f"{x:5.0%}"


def cheap_part(args: argparse.Namespace) -> None:
    from tandemlm.routing.training import load_table

    table = load_table(TABLE)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(table.texts))
    n_train = int(0.7 * len(order))
    train, rest = order[:n_train], order[n_train:]
    search, evaluate = rest[: args.search_n], rest[args.search_n: args.search_n + args.eval_n]
    emb = Embeddings()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        routers = train_routers(table, train, emb, Path(tmp))
    search_texts = [table.texts[i] for i in search]
    eval_texts = [table.texts[i] for i in evaluate]
    weak, strong = table.weak[evaluate], table.strong[evaluate]
    print(f"RouteLLM GSM8K table: {len(table.texts)} prompts; train {len(train)}, search {len(search)}, "
          f"eval {len(evaluate)} (seed 0); greedy: {args.length} words from {len(VOCAB)}, "
          f"random: 4 words x {args.random_draws} draws")
    header = (f"{'router':<9} {'LLM share':>9} {'random up/down':>15} {'hand up':>8} {'hand down':>10} "
              f"{'greedy up':>10} {'greedy down':>12}")
    defence: list[str] = []
    print(header)
    for name, (fn, threshold) in routers.items():
        clean = fn(eval_texts) >= threshold
        randoms = []
        for draw in range(args.random_draws):
            words = list(np.random.default_rng(100 + draw).choice(VOCAB[:-6], 4))
            randoms.append(flips(clean, fn([attach(t, words) for t in eval_texts]) >= threshold))
        r_up = float(np.nanmean([r[0] for r in randoms]))
        r_down = float(np.nanmean([r[1] for r in randoms]))
        hand_up = flips(clean, fn([attach(t, UP) for t in eval_texts]) >= threshold)[0]
        hand_down = flips(clean, fn([attach(t, DOWN) for t in eval_texts]) >= threshold)[1]
        g_up = greedy(fn, search_texts, VOCAB, args.length, +1)
        g_down = greedy(fn, search_texts, VOCAB, args.length, -1)
        greedy_up = flips(clean, fn([attach(t, g_up) for t in eval_texts]) >= threshold)[0]
        greedy_down = flips(clean, fn([attach(t, g_down) for t in eval_texts]) >= threshold)[1]
        print(f"{name:<9} {clean.mean():>9.2f} {pct(r_up):>7}/{pct(r_down):<7} {pct(hand_up):>8} "
              f"{pct(hand_down):>10} {pct(greedy_up):>10} {pct(greedy_down):>12}"
              f"   gadgets: up {' '.join(g_up)!r}, down {' '.join(g_down)!r}")

        # the defence: cost on clean prompts, the same gadgets, an adaptive search
        gfn = guarded(fn)
        gclean = gfn(eval_texts) >= threshold
        changed = float((gclean != clean).mean())
        acc = float(np.where(clean, strong, weak).mean())
        gacc = float(np.where(gclean, strong, weak).mean())
        same_up = flips(gclean, gfn([attach(t, g_up) for t in eval_texts]) >= threshold)[0]
        same_down = flips(gclean, gfn([attach(t, g_down) for t in eval_texts]) >= threshold)[1]
        hand = flips(gclean, gfn([attach(t, UP) for t in eval_texts]) >= threshold)[0]
        a_up = greedy(gfn, search_texts, VOCAB, args.length, +1)
        a_down = greedy(gfn, search_texts, VOCAB, args.length, -1)
        adapt_up = flips(gclean, gfn([attach(t, a_up) for t in eval_texts]) >= threshold)[0]
        adapt_down = flips(gclean, gfn([attach(t, a_down) for t in eval_texts]) >= threshold)[1]
        defence.append(
            f"{name:<9} {changed:>8.0%} {acc:>6.3f}->{gacc:.3f} {clean.mean():>5.2f}->{gclean.mean():.2f} "
            f"{pct(same_up):>8}/{pct(same_down):<6} {pct(hand):>8} {pct(adapt_up):>9}/{pct(adapt_down):<6}"
            f"   adaptive gadgets: up {' '.join(a_up)!r}, down {' '.join(a_down)!r}"
        )
    print("\ndefence: guarded (median over the prompt and the prompt without its last 1 and 2 segments)")
    print(f"{'router':<9} {'clean chg':>9} {'routed acc':>13} {'LLM share':>10} {'same gadgets up/down':>15} "
          f"{'hand up':>8} {'adaptive up/down':>16}")
    for line in defence:
        print(line)
    print(f"(cheap routers: {time.perf_counter() - start:.0f} s, {len(emb.memo)} texts embedded)")


def llm_spec() -> dict[str, Any]:
    """Draft with the SLM (token probabilities), then two routes that only score it."""
    return {
        "name": "router_attack_llm",
        "models": {"slm": {"role": "slm", "params": {"max_tokens": 48}}},
        "nodes": {
            "draft": {"type": "generate", "model": "slm", "prompt": "{input}", "output": "draft", "logprobs": True,
                      "system": "You are a precise assistant. Answer briefly and directly."},
            "mid": {"type": "pass"},
        },
        "entry": "draft",
        "routes": [
            {"from": "draft", "name": "confidence", "router": {"type": "confidence", "field": "draft"},
             "branches": {"small": "mid", "large": "mid"}},
            {"from": "mid", "name": "self_eval", "router": {"type": "self_eval", "model": "slm", "field": "draft"},
             "branches": {"small": "end", "large": "end"}},
        ],
    }


async def llm_part(args: argparse.Namespace) -> None:
    from tandemlm.flows.compiler import compile_flow

    rows = [json.loads(line) for line in GSM8K.read_text().splitlines() if line.strip()]
    pool = [r["question"] for r in rows[300:]]  # far from the other benchmarks' first problems
    calib, search, evaluate = pool[:6], pool[6:9], pool[9:9 + args.llm_n]
    flow = compile_flow(llm_spec())
    cache: dict[str, dict[str, float]] = {}
    start = time.perf_counter()

    async def scores(texts: list[str]) -> dict[str, np.ndarray]:
        for text in texts:
            if text not in cache:
                result = await flow.arun(text)
                cache[text] = {d["router"]: float(d["score"]) for d in result.decisions}
        return {r: np.asarray([cache[t][r] for t in texts]) for r in ("confidence", "self_eval")}

    thresholds = {r: float(np.median(v)) for r, v in (await scores(calib)).items()}
    clean = await scores(evaluate)
    words = list(np.random.default_rng(100).choice(VOCAB[:-6], 4))
    conditions = {"random": [attach(t, words) for t in evaluate], "hand_up": [attach(t, UP) for t in evaluate],
                  "hand_down": [attach(t, DOWN) for t in evaluate]}
    found = {r: {} for r in thresholds}  # router -> direction -> word
    cand = {w: await scores([attach(t, w) for t in search]) for w in LLM_VOCAB}
    for r in thresholds:
        found[r]["up"] = max(LLM_VOCAB, key=lambda w: cand[w][r].mean())
        found[r]["down"] = min(LLM_VOCAB, key=lambda w: cand[w][r].mean())
    attacked = {name: await scores(texts) for name, texts in conditions.items()}
    print(f"\ndraft-scoring routers: Qwen2.5-Coder-0.5B drafts (48 tokens), {len(evaluate)} GSM8K problems, "
          f"thresholds = median of {len(calib)} others {thresholds}")
    print(f"{'router':<11} {'LLM share':>9} {'random up/down':>15} {'hand up':>8} {'hand down':>10} "
          f"{'greedy up':>10} {'greedy down':>12}")
    for r, t in thresholds.items():
        d0 = clean[r] >= t
        rnd = flips(d0, attacked["random"][r] >= t)
        hu = flips(d0, attacked["hand_up"][r] >= t)[0]
        hd = flips(d0, attacked["hand_down"][r] >= t)[1]
        gu_scores = (await scores([attach(x, found[r]["up"]) for x in evaluate]))[r]
        gd_scores = (await scores([attach(x, found[r]["down"]) for x in evaluate]))[r]
        gu = flips(d0, gu_scores >= t)[0]
        gd = flips(d0, gd_scores >= t)[1]
        print(f"{r:<11} {d0.mean():>9.2f} {pct(rnd[0]):>7}/{pct(rnd[1]):<7} {pct(hu):>8} {pct(hd):>10} "
              f"{pct(gu):>10} {pct(gd):>12}   words: up {found[r]['up']!r}, down {found[r]['down']!r}")
    print(f"(draft-scoring routers: {len(cache)} drafts, {time.perf_counter() - start:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-llm", action="store_true", help="skip the confidence/self_eval part")
    parser.add_argument("--no-cheap", action="store_true", help="skip the logistic/knn/bandit part")
    parser.add_argument("--llm-n", type=int, default=10)
    parser.add_argument("--search-n", type=int, default=8)
    parser.add_argument("--eval-n", type=int, default=150)
    parser.add_argument("--length", type=int, default=3)
    parser.add_argument("--random-draws", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {platform.machine()} {os.cpu_count()}-core CPU (shared), load {load_avg}, "
          f"TANDEM_THREADS={os.environ.get('TANDEM_THREADS', 'unset')}, one run")
    if not args.no_cheap:
        cheap_part(args)
    if not args.no_llm:
        asyncio.run(llm_part(args))


if __name__ == "__main__":
    main()
