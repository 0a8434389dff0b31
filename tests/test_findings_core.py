"""The scorecard's arithmetic: errors, pooling over seeds, telling two values apart, accuracies near a threshold,
ordered comparisons and windows of epochs."""

import math

import numpy as np
import pytest

from hessian_spectra.divergence import DID_NOT_LEARN, DIVERGED, divergence, failure
from hessian_spectra.findings.core import (
    FAILS,
    HOLDS,
    UNSURE,
    Measure,
    Point,
    binomial,
    gap,
    mean_of,
    ordered,
    pool,
    separation,
    window_width,
    windows,
    within,
)


def test_one_seed_differences_below_five_percent_are_not_told_apart():
    small = gap(Measure(100.0, 0.1), Measure(104.0, 0.1))
    assert not small.decided
    assert small.needs == "needs the gap 4 to exceed 5% of the larger value (one seed) 5.2"
    assert gap(Measure(100.0), Measure(106.0)).decided


def test_errors_decide_when_larger_than_the_one_seed_margin():
    g = gap(Measure(1.0, 0.5), Measure(2.0, 0.5))
    assert not g.decided and g.needs == "needs the gap 1 to exceed 2 standard errors 1.414"
    assert gap(Measure(1.0, 0.1), Measure(2.0, 0.1)).decided and gap(Measure(1.0, 0.1), Measure(2.0)).difference == 1


def test_pooled_seeds_are_told_apart_by_their_errors_alone():
    a = pool([Measure(100.0), Measure(101.0), Measure(99.0)], [0, 1, 2])
    b = pool([Measure(103.0), Measure(104.0), Measure(102.0)], [3, 4, 5])  # other seeds: no pairing
    assert a.seeds == 3 and a.value == 100.0 and a.stderr == pytest.approx(1 / math.sqrt(3))
    assert gap(a, b).decided  # 3 apart, 2 * hypot(0.577, 0.577) = 1.63; the 5% one-seed margin no longer applies
    assert gap(a, b).against == "2 standard errors"


def test_pool_keeps_the_larger_of_spread_and_propagated_errors():
    same = pool([Measure(5.0, 1.0), Measure(5.0, 1.0)], [0, 1])
    assert same.stderr == pytest.approx(math.sqrt(2) / 2)  # no spread: the seeds' own errors propagated
    assert same.parts == ((0, 5.0, 1.0), (1, 5.0, 1.0))
    assert pool([Measure(3.0, 0.5)], [0]) == Measure(3.0, 0.5)


def test_means_over_the_same_seeds_compare_seed_by_seed():
    """Each seed's two values move together (shared initial weights): their differences vary far less than either."""
    a = pool([Measure(4.3), Measure(5.2), Measure(6.1)], [0, 1, 2])
    b = pool([Measure(4.8), Measure(5.8), Measure(6.5)], [0, 1, 2])
    assert not gap(Measure(a.value, a.stderr, 3), Measure(b.value, b.stderr, 3)).decided  # unpaired: 0.5 vs 1.47
    by_seed = gap(a, b)
    assert by_seed.decided and by_seed.difference == pytest.approx(0.5)
    assert by_seed.threshold == pytest.approx(2 * np.std([0.5, 0.6, 0.4], ddof=1) / math.sqrt(3))
    assert by_seed.against == "2 standard errors of the seeds' differences"
    windows_a = mean_of([a, pool([Measure(4.4), Measure(5.1), Measure(6.3)], [0, 1, 2])])
    assert [s for s, _, _ in windows_a.parts] == [0, 1, 2] and windows_a.parts[0][1] == pytest.approx(4.35)


def test_one_epochs_spike_widens_a_window_instead_of_moving_it_alone():
    spiked = mean_of([Measure(50.0), Measure(51.0), Measure(120.0)])
    assert spiked.value == pytest.approx(73.67, abs=0.01)
    assert spiked.stderr > 20
    assert not gap(Measure(55.0, 1.0), spiked).decided


def test_windows_and_their_width():
    curve = [(e, Measure(float(e))) for e in range(1, 7)]
    assert [label for label, _ in windows(curve, 3)] == ["epochs 1-3", "epochs 2-4", "epochs 3-5", "epochs 4-6"]
    assert windows(curve, 3)[0][1].value == 2.0
    assert window_width(10) == 3 and window_width(6) == 3 and window_width(5) == 1


def test_an_accuracy_gap_met_only_by_rounding_is_inconclusive():
    """0.855 - 0.805 passes a 0.05 threshold by float rounding; on 200 images each has a standard error of 0.025."""
    a, b = binomial(0.855, 200), binomial(0.805, 200)
    assert a.stderr == pytest.approx(math.sqrt(0.855 * 0.145 / 200))
    similar, why = within(separation(a, b), 0.05, "validation accuracy gap")
    assert similar is None
    assert why.startswith("validation accuracy gap 0.05 +- 0.03")
    assert "needs validation accuracy gap plus 2 standard errors (0.1" in why and "to be at most 0.05" in why
    big = within(separation(binomial(0.90, 10000), binomial(0.89, 10000)), 0.05, "gap")
    assert big[0] is True
    assert within(separation(binomial(0.95, 10000), binomial(0.80, 10000)), 0.05, "gap")[0] is False


def test_ordered_rules():
    rising = [Point("a", Measure(1.0)), Point("b", Measure(2.0)), Point("c", Measure(4.0))]
    assert ordered(rising, True, "x").verdict == HOLDS
    assert ordered(rising, False, "x").verdict == FAILS
    assert "a: 1 -> b 2" not in ordered(rising, False, "x").why and "a 1 -> b 2" in ordered(rising, False, "x").why
    tie = ordered([Point("a", Measure(1.0)), Point("b", Measure(1.02))], True, "x")
    assert tie.verdict == UNSURE and "a -> b needs the gap 0.02 to exceed 5% of the larger value (one seed)" in tie.why
    assert ordered([Point("a", Measure(1.0, 0.5)), Point("b", Measure(2.0, 0.5))], True, "x").verdict == UNSURE
    assert ordered([Point("a", Measure(1.0, 0.1)), Point("b", Measure(2.0, 0.1))], True, "x").verdict == HOLDS
    out = ordered([Point("a", Measure(1.0)), Point("b", Measure(2.0), "diverged: loss rose")], True, "x")
    assert out.verdict == UNSURE and "b diverged: loss rose" in out.why
    assert ordered([Point("a", Measure(1.0))], True, "x").verdict == UNSURE


def history(losses, accs):
    import pandas as pd

    return pd.DataFrame({"epoch": range(len(losses)), "train_loss": losses, "valid_acc": accs})


def test_a_run_that_learns_slowly_did_not_learn_rather_than_diverged():
    slow = failure(history([2.3046, 2.2986], [0.1, 0.11]), 10)
    assert slow.kind == DID_NOT_LEARN and "2.305 -> 2.299" in slow.because
    assert divergence(history([2.3046, 2.2986], [0.1, 0.11]), 10).startswith("did not learn: final valid_acc 0.11")
    rose = history([2.3, 5.0], [0.1, 0.5])
    assert failure(rose, 10).kind == DIVERGED and divergence(rose, 10) == "training loss rose from 2.3 to 5"
    assert failure(history([2.3, float("nan")], [0.1, 0.5]), 10).because == "training loss not finite"
    learned = history([2.3, 0.5], [0.1, 0.9])
    assert failure(learned, 10) is None and divergence(learned, 10) == ""
