"""Each router: score, reason, choice, persistence (scripted models, hash embeddings)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tandemlm import ScriptedChatModel
from tandemlm.core.context import TandemContext
from tandemlm.core.node import NodeCall
from tandemlm.errors import ConfigError
from tandemlm.flows.registry import router_type
from tandemlm.models.pool import ModelPool
from tandemlm.nodes.routers.knn import KnnModel, KnnRouter
from tandemlm.nodes.routers.logistic import LogisticModel, LogisticRouter
from tandemlm.nodes.routers.oracle import OracleRouter
from tandemlm.nodes.routers.random import RandomRouter
from tandemlm.nodes.routers.self_eval import SelfEvalRouter
from tandemlm.nodes.routers.sticky import StickyRouter
from tandemlm.nodes.routers.verifier import VerifierRouter
from tandemlm.routing.training import Table, fit_router, folds, load_table

HARD = ["prove the integral of x squared", "solve the integral equation", "integral of sine"]
EASY = ["hello there friend", "say hello to me", "hello how are you"]


def call(**models: ScriptedChatModel) -> NodeCall:
    context = TandemContext(flow="t", models=ModelPool({}, models))
    return NodeCall("gate", context, context.recorder.scope("gate"))


def state(text: str = "2+2?", **variables: object) -> dict:
    return {"input": text, "variables": dict(variables), "ledger": []}


async def test_self_eval_uses_first_token_probability() -> None:
    slm = ScriptedChatModel(replies=[{"content": "Yes", "confidence": 0.9}, {"content": "No", "confidence": 0.8}])
    router = SelfEvalRouter(threshold=0.5)
    first = await router.score(state(draft="4"), call(slm=slm))
    assert first.score == pytest.approx(0.1) and router.choose(first.score) == "small"
    assert "P(yes)=0.900" in first.reason
    second = await router.score(state(draft="5"), call(slm=slm))
    assert second.score == pytest.approx(0.8) and router.choose(second.score) == "large"
    prompt = slm.calls[0][-1].content
    assert "2+2?" in prompt and "Proposed answer: 4" in prompt
    slm.assert_all_used()


async def test_verifier_falls_back_to_the_word_without_probabilities() -> None:
    judge = ScriptedChatModel(replies=["No.", "maybe"])
    router = VerifierRouter(model="judge")
    verdict = await router.score(state(draft="5"), call(judge=judge))
    assert verdict.score == 1.0 and verdict.details["verdict"] == "No."
    assert (await router.score(state(draft="5"), call(judge=judge))).score == 0.5
    assert router.model_refs() == {"model": "judge"}


async def test_random_is_reproducible_and_uniform() -> None:
    router = RandomRouter(threshold=0.7)
    scores = [router.evaluate(f"q{i}").score for i in range(2000)]
    assert router.evaluate("q1").score == scores[1]
    assert np.mean(np.array(scores) >= 0.7) == pytest.approx(0.3, abs=0.04)
    assert RandomRouter(seed=1).evaluate("q1").score != scores[1]


async def test_oracle_reads_labels() -> None:
    router = OracleRouter()
    assert (await router.score(state(oracle={"weak": 0, "strong": 1}), call())).score == 1.0
    assert (await router.score(state(oracle={"weak": 1, "strong": 1}), call())).score == 0.5
    assert router.choose(0.5) == "small" and router.choose(1.0) == "large"


def table() -> Table:
    texts = HARD * 4 + EASY * 4
    weak = np.array([0.0] * 12 + [1.0] * 12)
    return Table([str(i) for i in range(24)], texts, weak, np.ones(24), "w", "s")


@pytest.mark.parametrize("kind", ["logistic", "knn"])
async def test_trained_routers_round_trip_through_files(kind: str, tmp_path) -> None:
    model = fit_router(kind, table(), embedding="hash:64", **({"k": 3} if kind == "knn" else {}))
    path = model.save(tmp_path / ("r.json" if kind == "logistic" else "r.npz"))
    cls = LogisticRouter if kind == "logistic" else KnnRouter
    router = cls(path=str(path))
    hard = await router.score(state("what is the integral of x"), call())
    easy = await router.score(state("hello friend"), call())
    assert hard.score > 0.5 > easy.score
    assert router.choose(hard.score) == "large" and router.choose(easy.score) == "small"
    assert ("nearest" if kind == "knn" else "logistic") in hard.reason
    if kind == "logistic":
        assert json.loads(path.read_text())["router"] == "logistic"
    else:  # never pickle: loads with allow_pickle=False
        np.load(path, allow_pickle=False).close()


async def test_trained_router_reports_missing_or_wrong_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="tandem router train"):
        await LogisticRouter(path=str(tmp_path / "nope.json")).score(state(), call())
    knn = fit_router("knn", table(), embedding="hash:16", k=2).save(tmp_path / "k.npz")
    with pytest.raises(ConfigError, match="not 'logistic'"):
        (tmp_path / "k.json").write_text(json.dumps({"router": "knn"}))
        LogisticModel.load(str(tmp_path / "k.json"))
    assert KnnModel.load(str(knn)).k == 2


def test_sticky_hysteresis_band() -> None:
    router = StickyRouter(router={"type": "random"}, threshold=0.5, margin=0.2)
    assert router.adjust(0.4, "large")[0] >= 0.5  # stays large inside the band
    assert router.adjust(0.2, "large")[0] == 0.2  # leaves below threshold - margin
    assert router.adjust(0.6, "small")[0] < 0.5  # stays small inside the band
    assert router.adjust(0.8, "small")[0] == 0.8
    assert router.adjust(0.6, None)[0] == 0.6
    with pytest.raises(ValueError):
        StickyRouter(router={"type": "sticky"})


def test_registry_knows_every_router() -> None:
    for name in ("self_eval", "verifier", "knn", "logistic", "bandit", "random", "oracle", "sticky"):
        assert router_type(name).type_name == name


def test_load_routellm_csv_and_eval_json(tmp_path) -> None:
    csv_file = tmp_path / "t.csv"
    csv_file.write_text('prompt,big,small,big_response\n"q1, hard",True,False,x\nq2,True,True,y\nq3,False,False,z\n')
    t = load_table(csv_file)
    assert (t.weak_name, t.strong_name) == ("small", "big")
    assert t.texts[0] == "q1, hard" and t.labels().tolist() == [1.0, 0.0, 0.0]
    js = tmp_path / "r.json"
    js.write_text(json.dumps({"items": [
        {"id": "a", "question": "q1", "scores": {"slm": 0, "llm": 1}},
        {"id": "b", "question": "q2", "flows": {"slm": {"score": 1}, "llm": {"score": 1}}},
        {"id": "c", "question": "q3", "results": [{"flow": "slm", "score": 1}]},
    ]}))
    t = load_table(js)
    assert (t.weak_name, t.strong_name, t.ids) == ("slm", "llm", ["a", "b"])
    with pytest.raises(ConfigError):
        load_table(tmp_path / "missing.csv")
    assert sorted(np.concatenate(folds(10, 5)).tolist()) == list(range(10))
