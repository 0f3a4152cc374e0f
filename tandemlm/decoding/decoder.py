"""A thin, KV-cache-aware view of one loaded llama.cpp model for token-level work.

:class:`Decoder` feeds tokens to a shared ``Llama`` through llama.cpp's batch API, asking
for logits only at the positions that need them (the last one, or every position of a
draft being verified), and rolls the KV cache back (``kv_cache_seq_rm``) when a draft is
rejected. It keeps ``Llama.input_ids`` / ``Llama.n_tokens`` in step, so the model stays
usable by :class:`~tandemlm.models.llamacpp.ChatLlamaCpp` afterwards (which resets
it anyway). Models come from :func:`~tandemlm.models.llamacpp.get_llama`: one load
per process, shared with chat calls; hold the model's lock around any use. While a
thread lease is attached (:attr:`Decoder.threads`, set by
:func:`~tandemlm.decoding.models.locked`), every forward pass first syncs it, so token-level
work takes its threads from the process's budget like chat calls do.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tandemlm.errors import ModelUnavailableError

if TYPE_CHECKING:
    from llama_cpp import Llama

    from tandemlm.models.llamacpp import ThreadSync

__all__ = ["Decoder", "chat_prompt_tokens"]


@dataclass
class DecodeTimer:
    """Seconds spent in llama.cpp forward passes, by kind (for cost measurements)."""

    calls: int = 0
    seconds: float = 0.0
    by_width: dict[int, list[float]] = field(default_factory=dict)

    def add(self, width: int, seconds: float) -> None:
        self.calls += 1
        self.seconds += seconds
        self.by_width.setdefault(width, []).append(seconds)


class Decoder:
    """Token-level access to one model: evaluate tokens, read logits, roll back.

    Args:
        llama: a loaded ``llama_cpp.Llama`` (use :func:`get_llama`).
        name: label for errors and statistics.

    The caller must hold the model's lock while using a decoder.

    Attributes:
        threads: the thread lease synced before each forward pass (``None``: the model's
            current thread count).
    """

    def __init__(self, llama: Llama, name: str = "") -> None:
        self.llama = llama
        self.name = name
        self.threads: ThreadSync | None = None
        self.n_vocab = int(llama.n_vocab())
        self.timer = DecodeTimer()
        self._eog_cache: dict[int, bool] = {}

    @property
    def n_past(self) -> int:
        """Tokens currently held in the KV cache (positions 0 .. n_past-1)."""
        return int(self.llama.n_tokens)

    def reset(self) -> None:
        """Forget everything (the next :meth:`feed` starts at position 0)."""
        self.truncate(0)

    def truncate(self, n: int) -> None:
        """Keep only the first ``n`` positions of the KV cache (rollback after rejection)."""
        if n < self.n_past or n == 0:
            self.llama._ctx.kv_cache_seq_rm(-1, n, -1)
        self.llama.n_tokens = min(n, self.n_past)

    def tokens(self) -> list[int]:
        """The tokens in the KV cache, in order."""
        return [int(t) for t in self.llama.input_ids[: self.n_past]]

    def feed(self, tokens: Sequence[int], logits: str = "last") -> np.ndarray:
        """Evaluate ``tokens`` after the cache's contents.

        Args:
            tokens: token ids to append (at least one).
            logits: ``"last"`` for the next-token logits after the last token (shape
                ``(n_vocab,)``), ``"all"`` for one row per fed token (``(len, n_vocab)``).

        Returns:
            Logits as float32 arrays (copies, safe to keep).

        Raises:
            ModelUnavailableError: the context is full or llama.cpp failed.
        """
        if not tokens:
            raise ValueError("feed() needs at least one token")
        llama = self.llama
        if self.n_past + len(tokens) > llama.n_ctx():
            raise ModelUnavailableError(
                f"model '{self.name}': {self.n_past + len(tokens)} tokens exceed the context "
                f"window ({llama.n_ctx()}); raise context_window or lower max_tokens"
            )
        llama._ctx.kv_cache_seq_rm(-1, self.n_past, -1)
        rows: list[np.ndarray] = []
        step = int(llama.n_batch)
        for start in range(0, len(tokens), step):
            chunk = [int(t) for t in tokens[start : start + step]]
            last_chunk = start + step >= len(tokens)
            flags = [logits == "all" or (last_chunk and i == len(chunk) - 1)
                     for i in range(len(chunk))]
            rows.extend(self._decode(chunk, flags))
        if logits == "all":
            return np.stack(rows)
        return rows[-1]

    def _decode(self, chunk: list[int], flags: list[bool]) -> list[np.ndarray]:
        llama = self.llama
        batch = llama._batch.batch
        n_past = self.n_past
        batch.n_tokens = len(chunk)
        for i, token in enumerate(chunk):
            batch.token[i] = token
            batch.pos[i] = n_past + i
            batch.seq_id[i][0] = 0
            batch.n_seq_id[i] = 1
            batch.logits[i] = flags[i]
        if self.threads is not None:
            self.threads.apply()
        start = time.perf_counter()
        try:
            llama._ctx.decode(llama._batch)
        except RuntimeError as exc:
            raise ModelUnavailableError(f"model '{self.name}': {exc}") from exc
        llama.input_ids[n_past : n_past + len(chunk)] = chunk
        llama.n_tokens = n_past + len(chunk)
        count = sum(flags)
        pointer = llama._ctx.get_logits()
        flat = np.ctypeslib.as_array(
            ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(count * self.n_vocab,)
        )
        matrix = flat.reshape(count, self.n_vocab).copy()
        seconds = time.perf_counter() - start
        self.timer.add(len(chunk), seconds)  # forward pass + logits copy
        if self.threads is not None and len(chunk) == 1:
            self.threads.observe(seconds)
        return list(matrix)

    def is_eog(self, token: int) -> bool:
        """Whether ``token`` ends generation (EOS, EOT, ``<|im_end|>``...)."""
        if token not in self._eog_cache:
            import llama_cpp

            try:
                eog = bool(llama_cpp.llama_token_is_eog(self.llama._model.vocab, token))
            except AttributeError:
                eog = token == self.llama.token_eos()
            self._eog_cache[token] = eog
        return self._eog_cache[token]

    def detokenize(self, tokens: Sequence[int], prev: Sequence[int] = ()) -> str:
        """Text of ``tokens`` (``prev`` gives context for multi-byte pieces)."""
        data = self.llama.detokenize(list(tokens), prev_tokens=list(prev) or None)
        return data.decode("utf-8", errors="ignore")

    def vocab_signature(self, sample: int = 64) -> tuple[int, tuple[bytes, ...]]:
        """Vocabulary size plus the pieces of a spread of token ids (to compare tokenizers)."""
        ids = np.linspace(0, self.n_vocab - 1, num=sample, dtype=int)
        pieces = tuple(self.llama._model.token_to_piece(int(i), special=True) for i in ids)
        return self.n_vocab, pieces


def chat_prompt_tokens(llama: Llama, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of ``messages`` in the model's own chat template, ready for generation.

    Formats exactly as llama-cpp-python's ``create_chat_completion`` does for a GGUF that
    carries ``tokenizer.chat_template``, so a speculative answer starts from the same
    prompt as a plain chat call.
    """
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        return list(llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))
    eos, bos = llama.token_eos(), llama.token_bos()
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
        bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
        stop_token_ids=[eos],
    )
    result = formatter(messages=messages)  # type: ignore[arg-type]
    prompt: Any = llama.tokenize(
        result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
    )
    return [int(t) for t in prompt]
