"""Router metrics against hand-computed values on a 5-query table."""

import math

import numpy as np
import pytest

from tandemlm.evaluation import metrics as m

# q1..q5: weak right on q1,q4; strong right on q1..q4. weak acc 0.4, strong acc 0.8.
WEAK = [1, 0, 0, 1, 0]
STRONG = [1, 1, 1, 1, 0]
SCORES = [0.1, 0.9, 0.7, 0.3, 0.5]


def test_curve_points_match_routellm_quantile_thresholds():
    c = m.curve(SCORES, WEAK, STRONG, num_results=4)
    # edges 0.1,0.3,0.5,0.7,0.9; last edge strict '>' -> no strong calls
    assert c.strong_share.tolist() == pytest.approx([0.0, 0.4, 0.6, 0.8, 1.0])
    assert c.accuracy.tolist() == pytest.approx([0.4, 0.8, 0.8, 0.8, 0.8])
    assert c.weak_accuracy == pytest.approx(0.4)
    assert c.strong_accuracy == pytest.approx(0.8)


def test_auc_apgr_cpt_by_hand():
    c = m.curve(SCORES, WEAK, STRONG, num_results=4)
    # trapezoids: 0.24 + 0.16 + 0.16 + 0.16
    assert m.auc(c) == pytest.approx(0.72)
    assert m.apgr(c) == pytest.approx((0.72 - 0.4) / (0.8 - 0.4))
    assert m.cpt(c, 0.5) == pytest.approx(0.2)  # target 0.6 on segment (0,.4)-(.4,.8)
    assert m.cpt(c, 0.8) == pytest.approx(0.32)  # target 0.72
    assert m.calls_to_reach(c, 0.95 * 0.8) == pytest.approx(0.36)
    assert math.isnan(m.calls_to_reach(c, 0.9))


def test_pgr():
    assert m.pgr(0.6, 0.4, 0.8) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="gap is zero"):
        m.pgr(0.5, 0.5, 0.5)


def test_cpt_matches_np_interp_on_monotone_curve():
    c = m.curve_from_points([0.0, 0.3, 0.7, 1.0], [0.2, 0.5, 0.6, 0.7], 0.2, 0.7)
    for p in (0.2, 0.5, 0.8):
        target = 0.2 + p * 0.5
        assert m.cpt(c, p) == pytest.approx(np.interp(target, c.accuracy, c.strong_share))


def test_cpt_takes_first_crossing_on_non_monotone_curve():
    c = m.curve_from_points([0.0, 0.5, 1.0], [0.4, 0.9, 0.8], 0.4, 0.8)
    assert m.cpt(c, 1.0) == pytest.approx(0.4)


def test_aiq_uses_non_decreasing_convex_hull():
    assert m.aiq([0, 0.5, 1], [0, 0.1, 1]) == pytest.approx(0.5)  # hull is the diagonal
    assert m.aiq([0, 0.5, 1], [0.5, 1.0, 0.8]) == pytest.approx(0.875)  # flat after best
    c = m.curve(SCORES, WEAK, STRONG, num_results=4)
    assert m.aiq(c.strong_share, c.accuracy, (0, 1)) == pytest.approx(0.72)


def test_oracle_and_optimal_accuracy():
    assert m.oracle_scores(WEAK, STRONG).tolist() == [0.5, 1.0, 1.0, 0.5, 0.5]
    assert m.oracle_scores([1], [0]).tolist() == [0.0]  # weak better: last
    assert m.optimal_accuracy(WEAK, STRONG, 0.2) == pytest.approx(0.6)
    assert m.optimal_accuracy(WEAK, STRONG, 1.0) == pytest.approx(0.8)
    met, _ = m.evaluate_scores("oracle", m.oracle_scores(WEAK, STRONG), WEAK, STRONG, 4)
    assert met.apgr == pytest.approx(0.8)  # curve (0,.4),(.4,.8),(1,.8)


def test_random_baseline_is_about_half_on_a_large_table():
    rng = np.random.default_rng(1)
    weak = rng.random(4000) < 0.4
    strong = rng.random(4000) < 0.8
    met, _ = m.evaluate_scores("random", m.random_scores(4000, seed=3), weak, strong)
    assert met.apgr == pytest.approx(0.5, abs=0.05)
    assert met.cpt["50%"] == pytest.approx(0.5, abs=0.08)


def test_threshold_for_rate():
    assert m.threshold_for_rate(SCORES, 0.4) == pytest.approx(0.7)
    assert np.mean(np.array(SCORES) >= m.threshold_for_rate(SCORES, 0.4)) == pytest.approx(0.4)
    assert np.mean(np.array(SCORES) >= m.threshold_for_rate(SCORES, 0.0)) == 0.0
    with pytest.raises(ValueError):
        m.threshold_for_rate(SCORES, 1.5)


def test_evaluate_scores_reports_all_levels():
    met, _ = m.evaluate_scores("x", SCORES, WEAK, STRONG, num_results=4)
    assert set(met.cpt) == {"20%", "50%", "80%", "95%"}
    assert met.cpt["80%"] == pytest.approx(0.32)
    assert met.calls_for_95pct_strong == pytest.approx(0.36)
    assert met.as_dict()["name"] == "x"
    with pytest.raises(ValueError, match="length mismatch"):
        m.curve([0.1], WEAK, STRONG)
