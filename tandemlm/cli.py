"""The ``tandem`` command line. Errors are one line on stderr and a non-zero exit."""

from __future__ import annotations

import importlib
import os
import sys

import typer

app = typer.Typer(
    name="tandem",
    help="Run, inspect and evaluate flows where small and large language models work together.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each module registers one command group; keep this list in the order shown in --help.
COMMAND_MODULES = [
    "tandemlm.commands.flows",
    "tandemlm.commands.models",
    "tandemlm.commands.traces",
    "tandemlm.commands.index",
    "tandemlm.commands.evaluate",
    "tandemlm.commands.router",
    "tandemlm.commands.serve",
]

for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    """Entry point: run the app, turning every error into one clear line."""
    from tandemlm.errors import TandemError

    try:
        app(standalone_mode=True)
    except TandemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # no tracebacks for users; TANDEM_DEBUG=1 shows them
        if os.environ.get("TANDEM_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {exc} (set TANDEM_DEBUG=1 for details)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
