"""Running ``tandem`` in tests: in this process (fast) and checking one-line CLI errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest


def tandem_in_process(
    *args: str, cwd: Path, env: Mapping[str, str],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> subprocess.CompletedProcess[str]:
    """`tandem ARGS` through the CLI's entry point without a new interpreter, in ``cwd``
    with the environment variables ``env`` set; exit code, stdout and stderr as a
    subprocess would report them."""
    from tandemlm.cli import main

    monkeypatch.chdir(cwd)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "argv", ["tandem", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, captured.out, captured.err)


def one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    """The command failed with exit code 2 and one ``error: ...`` line naming ``fragment``."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
