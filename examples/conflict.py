"""Knowledge conflicts: the SLM answers from local documents, the LLM from what it knows;
when they disagree, the LLM as arbiter reads the documents and keeps the supported answer.

Run: python examples/conflict.py ["question"] [--outdated]
     [--model slm=smollm2-135m --model llm=smollm2-135m]

--outdated adds an archived page that contradicts the current returns policy (14 days
instead of 30) to the example knowledge base, so the local evidence disagrees with itself.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import parse_args, with_overrides

from tandemlm import compile_flow, load_flow
from tandemlm.stores import MemoryStore, example_kb, ingest

OUTDATED = (
    "# Returns policy (2019 edition, archived)\n\nKept for reference only; replaced by the "
    "current returns policy. You can return items within 14 days of delivery.\n"
)
args = parse_args(
    __doc__ or "",
    "How many days do I have to return an item?",
    ("--outdated", {"action": "store_true", "help": "plant an outdated returns page"}),
)
store = MemoryStore("minilm")
with tempfile.TemporaryDirectory() as folder:
    folders = [example_kb()]
    if args.outdated:
        (Path(folder) / "archive").mkdir()
        (Path(folder) / "archive" / "returns-2019.md").write_text(OUTDATED)
        folders.append(Path(folder))
    report = ingest(store, folders, chunk_size=600, overlap=100)
print(f"indexed {report.files} files")

result = compile_flow(with_overrides(load_flow("conflict"), args), stores={"kb": store}).run(args.question)
decision = result.decisions[0]
print(f"SLM (local evidence): {result.vars['local_answer']}")
print(f"LLM (own knowledge):  {result.vars['remote_answer']}")
print(f"decision: {decision['choice']}: {decision['reason']}")
print()
print(result.answer)
print(f"answered by: {result.answered_by}; path: {' -> '.join(result.path)}")
