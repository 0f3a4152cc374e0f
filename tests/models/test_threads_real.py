"""The thread budget with the real SmolLM2-135M model: per-call threads, calls at once,
token-level decoders sharing one lease."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Self

import pytest

from tandemlm.models import threads as threads_mod
from tandemlm.models.llamacpp import ChatLlamaCpp, get_llama
from tandemlm.models.threads import ThreadBudget, configure_threads

pytestmark = pytest.mark.real

PROMPT = "Name three colours of the rainbow."


@pytest.fixture(autouse=True)
def _offline_and_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    saved = list(threads_mod._BUDGET)
    yield
    threads_mod._BUDGET[:] = saved


def _context_threads(model: str, n_ctx: int) -> int:
    import llama_cpp

    llama, _ = get_llama(model, n_ctx)
    return int(llama_cpp.llama_n_threads(llama._ctx.ctx))


class _Watch:
    """Records the budget's leases every millisecond while calls run."""

    def __init__(self, budget: ThreadBudget) -> None:
        self.budget = budget
        self.seen: list[tuple[int, ...]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.budget._cond:
                self.seen.append(tuple(lease.threads for lease in self.budget._leases))
            time.sleep(0.001)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_each_call_runs_with_its_leased_threads_and_the_answer_does_not_depend_on_them() -> None:
    configure_threads(2)
    one = ChatLlamaCpp(model="smollm2-135m", n_ctx=768, n_threads=1, max_tokens=16)
    two = ChatLlamaCpp(model="smollm2-135m", n_ctx=768, n_threads=2, max_tokens=16)
    answer_one = one.invoke(PROMPT).content
    assert _context_threads("smollm2-135m", 768) == 1
    answer_two = two.invoke(PROMPT).content
    assert _context_threads("smollm2-135m", 768) == 2
    assert answer_one == answer_two and answer_one


def test_two_models_generating_at_once_share_the_budget() -> None:
    budget = configure_threads(2)
    first = ChatLlamaCpp(model="smollm2-135m", n_ctx=768, max_tokens=24)
    second = ChatLlamaCpp(model="smollm2-135m", n_ctx=832, max_tokens=24)  # its own context
    solo = first.invoke(PROMPT).content
    answers: dict[int, object] = {}

    def run(index: int, chat: ChatLlamaCpp) -> None:
        answers[index] = chat.invoke(PROMPT).content

    with _Watch(budget) as watch:
        workers = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate([first, second])]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
    assert answers == {0: solo, 1: solo}
    assert all(sum(held) <= 2 for held in watch.seen)  # never more than the budget
    assert (1, 1) in watch.seen  # and at some point both generated, one thread each
    assert budget.in_use == 0


def test_token_level_models_take_one_lease_and_keep_their_own_limit() -> None:
    from tandemlm.decoding.decoder import Decoder
    from tandemlm.decoding.models import TokenModel, locked

    budget = configure_threads(2)
    pair = []
    for name, n_ctx, own in (("small", 896, 1), ("large", 960, None)):
        llama, lock = get_llama("smollm2-135m", n_ctx)
        pair.append(TokenModel(
            name=name, model="smollm2-135m", decoder=Decoder(llama, name), lock=lock,
            temperature=0.0, max_tokens=8, seed=0, stop=[], threads=own,
        ))
    small, large = pair
    tokens = list(small.decoder.llama.tokenize(PROMPT.encode(), add_bos=True))
    with locked(small, large):
        assert budget.in_use == 2  # one lease for both (they never compute at once)
        small.decoder.reset()
        large.decoder.reset()
        small.decoder.feed(tokens)
        large.decoder.feed(tokens)
        assert _context_threads("smollm2-135m", 896) == 1  # its own threads: 1
        assert _context_threads("smollm2-135m", 960) == 2
    assert budget.in_use == 0 and small.decoder.threads is None


def test_an_automatic_budget_tunes_the_count_while_generating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    budget = ThreadBudget(2, pinned=False, load=None, cores=2)  # first guess: 1 thread
    threads_mod._BUDGET[:] = [budget]
    chat = ChatLlamaCpp(model="smollm2-135m", n_ctx=704, max_tokens=40)
    reply = chat.invoke("Count from 1 to 30, separated by commas.")
    llama, _ = get_llama("smollm2-135m", 704)
    tuner = budget.tuner(llama)
    assert tuner is not None and reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] >= 12
    # started at the guess, then measured the other count too
    assert tuner.estimate(1) is not None and tuner.estimate(2) is not None
