"""Collab-RAG: the SLM splits the question, each part is retrieved in parallel, the LLM
answers from the merged evidence and cites its sources.

Run: python examples/collab_rag.py "Can I return a used tent, and how fast is the refund?"
     [--model slm=smollm2-135m --model llm=smollm2-135m] [--docs DIR]

Indexes the example knowledge base (or --docs) into an in-memory store with the packaged
MiniLM embeddings; the `collab_rag` preset does the same with Chroma under .tandem/.
"""

from __future__ import annotations

from _common import parse_args, with_overrides

from tandemlm import Flow
from tandemlm.stores import MemoryStore, example_kb, ingest

args = parse_args(
    __doc__ or "",
    "Can I return a used tent, and how fast is the refund?",
    ("--docs", {"default": str(example_kb()), "help": "a folder of .md/.txt/.html files"}),
)
docs = args.docs

store = MemoryStore("minilm")
report = ingest(store, [docs], chunk_size=600, overlap=100)
print(f"indexed {report.files} files into {report.chunks} chunks")

SYSTEM = (
    "Answer using only the evidence. Each passage starts with its source id in square "
    "brackets; cite the source id of every fact you use, like [policies/returns.md]."
)
flow = (
    Flow("collab_rag_example")
    .model("slm", role="slm", params={"max_tokens": 160})
    .model("llm", role="llm", params={"max_tokens": 384})
    .store("kb", type="memory", embedding="minilm")  # replaced by `store` below
    .node("decompose", "decompose", model="slm", max_items=3)
    .node("retrieve_each", "retrieve", store="kb", query="{subquestion}", k=3)
    .node("merge", "evidence", k=8)
    .node("answer", "generate", model="llm", system=SYSTEM,
          prompt="Evidence:\n{context}\n\nQuestion: {input}\n\nAnswer briefly, citing source ids.")
    .node("cite", "citations", on_missing="append")
    .edge("decompose", "retrieve_each", map="subquestions", item="subquestion")  # fan-out
    .edge("retrieve_each", "merge")
    .edge("merge", "answer")
    .edge("answer", "cite")
    .edge("cite", "end")
)

compiled = Flow.from_spec(with_overrides(flow.to_spec(), args)).compile(stores={"kb": store})
result = compiled.run(args.question)
print(result.answer)
print(f"sub-questions: {result.vars['subquestions']}")
print(f"path: {' -> '.join(result.path)}")
print(f"sources: {result.vars['sources']}; cited: {result.vars['citations']}")
print(f"models: {result.models}")
