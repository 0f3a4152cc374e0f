"""The speculative and routing engines on a synthetic model, and the sampling rule.

A toy "model" whose next-token logits depend on the last two tokens stands in for
llama.cpp: it checks the engines' bookkeeping (KV positions, rollback, catch-up) exactly,
and lets the sampled output distribution be compared with the target's.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tandemlm.decoding.decoder import DecodeTimer
from tandemlm.decoding.routing import RoutePolicy, token_route
from tandemlm.decoding.sampling import accept_or_resample, distribution, uncertainty
from tandemlm.decoding.speculative import (
    AdaptiveDraftLength,
    ModelDrafter,
    PromptLookupDrafter,
    autoregressive,
    lookup,
    speculative,
)

VOCAB = 6
EOG = 5


class ToyDecoder:
    """Decoder protocol over a fixed table: logits = table[prev2, prev1]."""

    def __init__(self, seed: int, sharpness: float = 3.0, eog_bias: float = -4.0) -> None:
        rng = np.random.default_rng(seed)
        self.table = rng.normal(size=(VOCAB, VOCAB, VOCAB)) * sharpness
        self.table[..., EOG] += eog_bias
        self.cache: list[int] = []
        self.timer = DecodeTimer()
        self.fed = 0  # tokens evaluated in total (re-evaluation would show up here)
        self.n_vocab = VOCAB

    @property
    def n_past(self) -> int:
        return len(self.cache)

    def reset(self) -> None:
        self.cache = []

    def truncate(self, n: int) -> None:
        del self.cache[n:]

    def tokens(self) -> list[int]:
        return list(self.cache)

    def logits_after(self, seq: list[int]) -> np.ndarray:
        a = seq[-2] if len(seq) > 1 else 0
        return self.table[a, seq[-1]].astype(np.float32)

    def feed(self, tokens: list[int], logits: str = "last") -> np.ndarray:
        assert tokens
        rows = []
        for token in tokens:
            self.cache.append(token)
            rows.append(self.logits_after(self.cache))
        self.fed += len(tokens)
        self.timer.add(len(tokens), 0.0)
        return np.stack(rows) if logits == "all" else rows[-1]

    def is_eog(self, token: int) -> bool:
        return token == EOG


PROMPTS = [[1, 2, 3], [4], [0, 0, 1, 2], [3, 1, 4, 1, 2]]


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("k", [1, 3, 6])
def test_greedy_speculation_equals_target_alone(prompt: list[int], k: int) -> None:
    target, draft = ToyDecoder(1), ToyDecoder(2, sharpness=1.0)
    alone = autoregressive(ToyDecoder(1), prompt, max_tokens=30)
    spec = speculative(target, ModelDrafter(draft), prompt, max_tokens=30,
                       draft_length=AdaptiveDraftLength(k=k, k_max=8))
    assert spec.tokens == alone.tokens
    assert spec.finish_reason == alone.finish_reason
    assert 0 <= spec.accepted <= spec.drafted
    # KV reuse: the target evaluates each committed token once, plus rejected drafts
    committed = len(prompt) + len(spec.tokens)
    assert target.fed <= committed + (spec.drafted - spec.accepted) + 1


def test_identical_draft_model_is_always_accepted() -> None:
    spec = speculative(ToyDecoder(1, eog_bias=-50), ModelDrafter(ToyDecoder(1, eog_bias=-50)),
                       [1, 2], max_tokens=25, draft_length=AdaptiveDraftLength(k=2, k_max=5))
    assert len(spec.tokens) == 25 and spec.finish_reason == "length"
    assert spec.acceptance_rate == 1.0
    assert max(spec.draft_lengths) == 5  # grew to k_max
    assert spec.rounds < 25 / 2


def test_prompt_lookup_greedy_equals_target_alone() -> None:
    prompt = [1, 2, 3, 4, 1, 2, 3, 4, 1, 2]
    alone = autoregressive(ToyDecoder(7), prompt, max_tokens=20)
    spec = speculative(ToyDecoder(7), PromptLookupDrafter(len(prompt)), prompt, max_tokens=20)
    assert spec.tokens == alone.tokens


def test_lookup_copies_what_followed_the_latest_ngram() -> None:
    assert lookup([5, 1, 2, 9, 8, 1, 2], k=3) == [9, 8, 1]
    assert lookup([1, 2, 3, 7, 7, 1, 2, 3], k=2, ngram_max=3) == [7, 7]
    assert lookup([1, 2, 3], k=4) == []


def test_adaptive_draft_length_grows_and_shrinks() -> None:
    policy = AdaptiveDraftLength(k=4, k_min=2, k_max=6)
    assert policy.update(4, 4) == 5
    assert policy.update(5, 5) == 6
    assert policy.update(6, 6) == 6  # capped
    assert policy.update(6, 4) == 6  # most accepted: unchanged
    assert policy.update(6, 1) == 5
    for _ in range(5):
        policy.update(5, 0)
    assert policy.k == 2  # floor
    fixed = AdaptiveDraftLength(k=3, adaptive=False)
    assert fixed.update(3, 3) == 3 and fixed.update(3, 0) == 3


def test_rejection_rule_output_follows_target_distribution() -> None:
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.2, 0.15, 0.1, 0.05, 0.0])
    q = np.array([0.1, 0.4, 0.1, 0.1, 0.1, 0.2])
    n = 40_000
    counts: Counter[int] = Counter()
    for _ in range(n):
        proposal = int(rng.choice(VOCAB, p=q))
        _, token = accept_or_resample(p, q, proposal, rng)
        counts[token] += 1
    observed = np.array([counts[i] / n for i in range(VOCAB)])
    assert np.abs(observed - p).max() < 0.01
    assert counts[5] == 0  # a token the target never emits is never emitted


def test_rejection_rule_with_deterministic_proposal() -> None:
    rng = np.random.default_rng(1)
    p = np.array([0.3, 0.6, 0.1, 0.0, 0.0, 0.0])
    n = 30_000
    counts = Counter(accept_or_resample(p, None, 1, rng)[1] for _ in range(n))
    observed = np.array([counts[i] / n for i in range(VOCAB)])
    assert np.abs(observed - p).max() < 0.01


def test_sampled_speculation_keeps_target_distribution() -> None:
    """The first two output tokens of sampled speculation follow the target's joint law."""
    prompt, temperature, n = [1, 2], 1.0, 3000
    target = ToyDecoder(3, sharpness=1.0, eog_bias=-50)
    exact: dict[tuple[int, int], float] = {}
    first = distribution(target.logits_after(prompt), temperature)
    for a in range(VOCAB):
        second = distribution(target.logits_after([*prompt, a]), temperature)
        for b in range(VOCAB):
            exact[(a, b)] = float(first[a] * second[b])
    counts: Counter[tuple[int, int]] = Counter()
    for seed in range(n):
        out = speculative(target, ModelDrafter(ToyDecoder(4, sharpness=1.0), temperature=1.0,
                                               seed=seed + 10_000),
                          prompt, max_tokens=2, temperature=temperature, seed=seed,
                          draft_length=AdaptiveDraftLength(k=2, k_min=1, k_max=2))
        counts[(out.tokens[0], out.tokens[1])] += 1
    tv = 0.5 * sum(abs(counts[key] / n - value) for key, value in exact.items())
    assert tv < 0.06  # total variation; a wrong rule (e.g. accept always) gives > 0.2


def test_uncertainty_of_flat_and_peaked_logits() -> None:
    flat = uncertainty(np.zeros(4))
    assert flat.top_prob == pytest.approx(0.25) and flat.entropy == pytest.approx(np.log(4))
    peaked = uncertainty(np.array([20.0, 0.0, 0.0]))
    assert peaked.top_prob > 0.99 and peaked.entropy < 0.01


def test_token_route_thresholds_bound_the_llm_share() -> None:
    prompt = [1, 2, 3]
    slm_alone = autoregressive(ToyDecoder(2), prompt, max_tokens=20)
    llm_alone = autoregressive(ToyDecoder(1), prompt, max_tokens=20)
    never = token_route(ToyDecoder(2), ToyDecoder(1), prompt, policy=RoutePolicy(min_prob=0.0),
                        max_tokens=20)
    always = token_route(ToyDecoder(2), ToyDecoder(1), prompt, policy=RoutePolicy(min_prob=1.01),
                         max_tokens=20)
    assert never.tokens == slm_alone.tokens and never.llm_token_share == 0.0
    assert always.tokens == llm_alone.tokens and always.llm_token_share == 1.0
    mid = token_route(ToyDecoder(2), ToyDecoder(1), prompt, policy=RoutePolicy(min_prob=0.8),
                      max_tokens=20)
    assert mid.from_llm.count(True) == mid.llm_tokens
    assert mid.llm_tokens + mid.slm_tokens == len(mid.tokens)
    assert mid.handoffs == mid.llm_tokens  # one token per handoff


def test_token_route_handoff_writes_several_llm_tokens() -> None:
    routed = token_route(ToyDecoder(2), ToyDecoder(1), [1, 2, 3],
                         policy=RoutePolicy(min_prob=0.9, handoff_tokens=3), max_tokens=30)
    assert routed.llm_tokens >= routed.handoffs
