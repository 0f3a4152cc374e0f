"""Run a flow service with uvicorn: in the foreground (the CLI) or in a background thread."""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Self

from tandemlm._extras import needs_extra
from tandemlm.errors import ConfigError

if TYPE_CHECKING:
    from starlette.applications import Starlette


def _config(app: Starlette, host: str, port: int, **kwargs: Any) -> Any:
    with needs_extra("serve", "tandem serve"):
        import uvicorn

    # an app from create_app says how many connections and requests it takes at once
    kwargs.setdefault("limit_concurrency", getattr(getattr(app, "state", None), "limit_concurrency", None))
    return uvicorn.Config(
        app, host=host, port=port, log_level=kwargs.pop("log_level", "warning"),
        access_log=False, lifespan="on", timeout_graceful_shutdown=10, **kwargs,
    )


def serve(app: Starlette, *, host: str = "127.0.0.1", port: int = 8000, **kwargs: Any) -> None:
    """Serve ``app`` until interrupted (Ctrl-C / SIGTERM finish requests in flight)."""
    with needs_extra("serve", "tandem serve"):
        import uvicorn

    # uvicorn re-raises SIGTERM after its graceful shutdown; exit normally instead, so
    # callers' cleanup (flushing the trace store) runs.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.Server(_config(app, host, port, **kwargs)).run()
    except OSError as exc:  # port in use, address not available
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """A uvicorn server in a background thread (tests, benchmarks, notebooks).

    Example:
        >>> with ServerThread(create_app(flow)) as server:   # doctest: +SKIP
        ...     httpx.post(f"{server.url}/v1/run", json={"question": "hi"})
    """

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int | None = None) -> None:
        with needs_extra("serve", "tandem serve"):
            import uvicorn

        self.host = host
        self.port = port or free_port(host)
        self.server = uvicorn.Server(_config(app, self.host, self.port))
        self._thread = threading.Thread(target=self.server.run, name="tandem-serve", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> Self:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
