"""Multi-hop RAG: search, let the SLM name the missing fact, search again; the LLM answers
from everything found and a citation check keeps only citations whose source holds the claim.

Run: python examples/multihop.py ["question"] [--hops 3]
     [--model slm=smollm2-135m --model llm=smollm2-135m]

Indexes the example knowledge base into an in-memory store with the packaged MiniLM
embeddings; the `multihop` preset does the same with Chroma under .tandem/.
"""

from __future__ import annotations

from _common import parse_args, with_overrides

from tandemlm import compile_flow, load_flow
from tandemlm.stores import MemoryStore, example_kb, ingest

args = parse_args(
    __doc__ or "",
    "How much is Standard shipping for an order of just the jacket that packs into its own chest pocket?",
    ("--hops", {"type": int, "default": 3, "help": "the most searches"}),
)
store = MemoryStore("minilm")
ingest(store, [example_kb()], chunk_size=600, overlap=100)

spec = with_overrides(load_flow("multihop"), args).to_dict()
spec["nodes"]["search"]["max_hops"] = args.hops
result = compile_flow(spec, stores={"kb": store}).run(args.question)

print(result.answer)
print()
for hop in result.vars["hops"]:
    print(f"search {hop['hop']}: {hop['query']!r} -> {', '.join(hop['sources'])}")
print(f"cited (checked): {result.vars['citations']}")
for bad in result.vars["unsupported_citations"]:
    where = f"moved to [{bad['moved_to']}]" if bad.get("moved_to") else "removed"
    print(f"  unsupported: [{bad['source']}] for {bad['claim']!r}: {where}")
print(f"path: {' -> '.join(result.path)}; models: {result.models}")
