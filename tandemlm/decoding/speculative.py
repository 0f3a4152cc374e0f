"""Speculative decoding: a drafter proposes k tokens, the target verifies them in one pass.

Invariant between rounds: the committed sequence ``seq`` (prompt + output) ends with one
token neither model has evaluated yet, and each model's KV cache holds a prefix of
``seq``. A round feeds the target ``seq[target.n_past:] + draft`` in one batch with logits
at every position, accepts the longest agreeing prefix (greedy) or applies the rejection
rule (sampling), appends the target's own next token, and rolls both caches back to what
was accepted. Nothing is recomputed: each model only ever evaluates tokens it has not seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from tandemlm.decoding.decoder import Decoder
from tandemlm.decoding.sampling import accept_or_resample, choose, distribution

__all__ = [
    "AdaptiveDraftLength",
    "Drafter",
    "GenerationResult",
    "ModelDrafter",
    "PromptLookupDrafter",
    "autoregressive",
    "speculative",
]


@dataclass
class AdaptiveDraftLength:
    """Draft length that grows after fully accepted drafts and shrinks after rejections.

    Args:
        k: starting draft length.
        k_min: smallest draft length.
        k_max: largest draft length.
        adaptive: when False, ``k`` never changes.
    """

    k: int = 4
    k_min: int = 1
    k_max: int = 8
    adaptive: bool = True

    def update(self, drafted: int, accepted: int) -> int:
        """Record one round's outcome; returns the next draft length."""
        if self.adaptive and drafted > 0:
            if accepted >= drafted:
                self.k = min(self.k + 1, self.k_max)
            elif accepted * 2 < drafted:
                self.k = max(self.k - 1, self.k_min)
        return self.k


class Drafter(Protocol):
    """Proposes draft tokens after the committed sequence."""

    def propose(self, seq: list[int], k: int) -> tuple[list[int], list[np.ndarray | None]]:
        """Up to ``k`` tokens and, per token, the distribution it was drawn from (None:
        deterministic)."""
        ...

    def commit(self, seq: list[int]) -> None:
        """The committed sequence changed: drop cached state beyond its common prefix."""
        ...

    def reset(self) -> None:
        """A new generation starts: forget cached state."""
        ...


class ModelDrafter:
    """Drafts with a small model sharing the target's vocabulary.

    Args:
        decoder: the draft model.
        temperature: draft sampling temperature (0: greedy; > 0: samples, and the target
            uses the rejection rule with this draft distribution).
        min_prob: stop drafting early when the draft's own top-token probability falls
            below this (saves draft steps that would probably be rejected).
        seed: random seed for sampled drafts.
    """

    def __init__(
        self, decoder: Decoder, temperature: float = 0.0, min_prob: float = 0.0, seed: int | None = 0
    ) -> None:
        self.decoder = decoder
        self.temperature = temperature
        self.min_prob = min_prob
        self.rng = np.random.default_rng(seed)
        self.seconds = 0.0
        self.steps = 0

    def propose(self, seq: list[int], k: int) -> tuple[list[int], list[np.ndarray | None]]:
        start = time.perf_counter()
        decoder = self.decoder
        pending = seq[decoder.n_past :]
        tokens: list[int] = []
        dists: list[np.ndarray | None] = []
        while len(tokens) < k:
            logits = decoder.feed(pending)
            self.steps += 1
            token, dist = choose(logits, self.temperature, self.rng)
            if self.min_prob > 0.0 and tokens:
                probs = dist if dist is not None else distribution(logits, 1.0)
                if float(probs[token]) < self.min_prob:
                    break
            tokens.append(token)
            dists.append(dist)
            if decoder.is_eog(token):
                break
            pending = [token]
        self.seconds += time.perf_counter() - start
        return tokens, dists

    def commit(self, seq: list[int]) -> None:
        decoder = self.decoder
        cached = decoder.tokens()
        keep = 0
        limit = min(len(cached), len(seq) - 1)
        while keep < limit and cached[keep] == seq[keep]:
            keep += 1
        decoder.truncate(keep)

    def reset(self) -> None:
        self.decoder.reset()


class PromptLookupDrafter:
    """Drafts by copying: find the latest earlier occurrence of the sequence's last
    n-gram (n from ``ngram_max`` down to ``ngram_min``) and propose what followed it.

    No draft model runs; it pays off when the output copies the input (retrieval-grounded
    answers, code edits, quoting).
    """

    def __init__(self, prompt_len: int, ngram_max: int = 3, ngram_min: int = 1) -> None:
        self.prompt_len = prompt_len
        self.ngram_max = ngram_max
        self.ngram_min = ngram_min
        self.seconds = 0.0
        self.steps = 0

    def propose(self, seq: list[int], k: int) -> tuple[list[int], list[np.ndarray | None]]:
        start = time.perf_counter()
        found = lookup(seq, k, self.ngram_max, self.ngram_min)
        self.seconds += time.perf_counter() - start
        return found, [None] * len(found)

    def commit(self, seq: list[int]) -> None:
        return None

    def reset(self) -> None:
        return None


def lookup(seq: Sequence[int], k: int, ngram_max: int = 3, ngram_min: int = 1) -> list[int]:
    """Up to ``k`` tokens that followed the latest earlier match of ``seq``'s last n-gram."""
    length = len(seq)
    for n in range(min(ngram_max, length - 1), ngram_min - 1, -1):
        tail = list(seq[length - n :])
        for start in range(length - n - 1, -1, -1):
            if list(seq[start : start + n]) == tail:
                follow = list(seq[start + n : start + n + k])
                if follow:
                    return follow
    return []


@dataclass
class GenerationResult:
    """Output tokens of one generation, how it ended and what it cost."""

    tokens: list[int]
    finish_reason: str  # "stop" (end-of-generation token or stop string) or "length"
    prompt_tokens: int
    seconds: float
    rounds: int = 0
    drafted: int = 0
    accepted: int = 0
    draft_steps: int = 0
    draft_seconds: float = 0.0
    target_seconds: float = 0.0
    target_passes: int = 0
    llm_tokens: int = 0  # tokens the target (LLM) itself chose
    draft_lengths: list[int] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def tokens_per_second(self) -> float:
        return len(self.tokens) / self.seconds if self.seconds > 0 else 0.0


StopCheck = Callable[[list[int]], int | None]


def _finish(
    out: list[int], new: list[int], is_eog: Callable[[int], bool], max_tokens: int,
    stop: StopCheck | None,
) -> str | None:
    """Append ``new`` to ``out`` up to an end token, a stop string or the cap."""
    for token in new:
        if is_eog(token):
            return "stop"
        out.append(token)
        if len(out) >= max_tokens:
            break
    if stop is not None:
        cut = stop(out)
        if cut is not None:
            del out[cut:]
            return "stop"
    return "length" if len(out) >= max_tokens else None


def speculative(
    target: Decoder,
    drafter: Drafter,
    prompt: list[int],
    *,
    max_tokens: int,
    draft_length: AdaptiveDraftLength | None = None,
    temperature: float = 0.0,
    seed: int | None = 0,
    stop: StopCheck | None = None,
) -> GenerationResult:
    """Generate up to ``max_tokens`` tokens distributed as ``target`` alone would.

    Greedy (``temperature`` 0): the output equals the target's greedy output token for
    token. Sampling: the rejection rule keeps the target's distribution.

    Args:
        target: the large model (verifier).
        drafter: a :class:`ModelDrafter` or :class:`PromptLookupDrafter`.
        prompt: prompt token ids (non-empty).
        max_tokens: output cap.
        draft_length: draft length policy (default: adaptive, starting at 4).
        temperature: target sampling temperature.
        seed: random seed for sampling and acceptance.
        stop: callable given the output so far; returns the length to cut it to when a
            stop string appeared.
    """
    start = time.perf_counter()
    policy = draft_length or AdaptiveDraftLength()
    rng = np.random.default_rng(seed)
    target.reset()
    drafter.reset()
    target_start = target.timer.seconds
    seq = list(prompt)
    out: list[int] = []
    result = GenerationResult(tokens=out, finish_reason="length", prompt_tokens=len(prompt),
                              seconds=0.0)
    # Prefill all but the last prompt token; it rides along with the first draft.
    if len(seq) > 1:
        target.feed(seq[:-1])
    finish: str | None = None
    while finish is None:
        k = min(policy.k, max_tokens - len(out) - 1)  # the target adds one token itself
        draft, dists = drafter.propose(seq, k) if k > 0 else ([], [])
        pending = seq[target.n_past :]
        rows = target.feed(pending + draft, logits="all")[len(pending) - 1 :]
        result.target_passes += 1
        accepted: list[int] = []
        next_token: int | None = None
        for i, token in enumerate(draft):
            if temperature <= 0.0:
                best = int(np.argmax(rows[i]))
                if best == token:
                    accepted.append(token)
                    continue
                next_token = best
            else:
                ok, chosen = accept_or_resample(
                    distribution(rows[i], temperature), dists[i], token, rng
                )
                if ok:
                    accepted.append(token)
                    continue
                next_token = chosen
            break
        if next_token is None:  # every draft token accepted: the target's bonus token
            next_token, _ = choose(rows[len(draft)], temperature, rng)
        result.rounds += 1
        result.drafted += len(draft)
        result.accepted += len(accepted)
        result.llm_tokens += 1
        result.draft_lengths.append(len(draft))
        policy.update(len(draft), len(accepted))
        new = [*accepted, next_token]
        seq.extend(new)
        target.truncate(len(seq) - 1)
        drafter.commit(seq)
        finish = _finish(out, new, target.is_eog, max_tokens, stop)
    result.finish_reason = finish
    result.seconds = time.perf_counter() - start
    result.draft_seconds = getattr(drafter, "seconds", 0.0)
    result.draft_steps = getattr(drafter, "steps", 0)
    result.target_seconds = target.timer.seconds - target_start
    return result


def autoregressive(
    model: Decoder,
    prompt: list[int],
    *,
    max_tokens: int,
    temperature: float = 0.0,
    seed: int | None = 0,
    stop: StopCheck | None = None,
) -> GenerationResult:
    """Plain one-token-at-a-time generation with one model (the baseline)."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    model.reset()
    out: list[int] = []
    result = GenerationResult(tokens=out, finish_reason="length", prompt_tokens=len(prompt),
                              seconds=0.0)
    logits = model.feed(prompt)
    finish: str | None = None
    while finish is None:
        token, _ = choose(logits, temperature, rng)
        result.llm_tokens += 1
        finish = _finish(out, [token], model.is_eog, max_tokens, stop)
        if finish is None:
            logits = model.feed([token])
    result.finish_reason = finish
    result.seconds = time.perf_counter() - start
    return result
