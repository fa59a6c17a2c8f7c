"""core.metrics against hand-computed examples."""
import pytest

from core import metrics


def test_confusion_accuracy_f1_by_hand():
    t = [True, True, True, False, False, False, False]
    p = [True, True, False, True, False, False, False]
    # TP=2 (0,1) FN=1 (2) FP=1 (3) TN=3
    assert metrics.confusion(t, p) == {"tp": 2, "fp": 1, "fn": 1, "tn": 3}
    assert metrics.accuracy(t, p) == pytest.approx(5 / 7)
    # precision 2/3, recall 2/3 -> F1 = 2/3
    assert metrics.f1(t, p) == pytest.approx(2 / 3)


def test_f1_asymmetric_precision_recall():
    t = [True, False, False, False]
    p = [True, True, True, False]
    # precision 1/3, recall 1 -> F1 = 2*(1/3)/(4/3) = 0.5
    assert metrics.f1(t, p) == pytest.approx(0.5)


def test_no_class_f1_and_yes_no_macro_by_hand():
    t = [True, True, False, False]
    always_yes = [True] * 4
    assert metrics.f1(t, always_yes) == pytest.approx(2 / 3)       # TP2 FP2: looks decent
    assert metrics.f1_no(t, always_yes) == 0.0                     # no TN at all
    assert metrics.macro_f1_yes_no(t, always_yes) == pytest.approx(1 / 3)
    p = [True, False, False, True]                                 # TP1 FN1 TN1 FP1
    assert metrics.f1_no(t, p) == pytest.approx(0.5)
    assert metrics.macro_f1_yes_no(t, p) == pytest.approx(0.5)
    assert metrics.macro_f1_yes_no([True], [True]) == 1.0          # no-class undefined: yes F1 alone
    assert metrics.group_scores(t, always_yes)["yes_rate"] == 1.0


def test_undefined_cases_are_none():
    assert metrics.accuracy([], []) is None
    assert metrics.f1([], []) is None
    assert metrics.f1([False, False], [False, False]) is None  # no yes anywhere
    assert metrics.f1([True], [False]) == 0.0                   # defined, and wrong
    assert metrics.mean_defined([None, 0.5, 1.0]) == pytest.approx(0.75)
    assert metrics.mean_defined([None]) is None


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in length"):
        metrics.confusion([True], [True, False])


def _row(kind, target, answer, pred, seen=True, mass=0.9):
    return {"kind": kind, "target": target, "answer": answer, "pred": pred, "seen": seen, "mass": mass}


def test_summarize_by_hand():
    rows = [
        _row("leaf", "dog", True, True),
        _row("leaf", "cat", False, True, mass=0.2),
        # animal: seen yes/yes, seen no/no, unseen yes/no
        _row("hypernym", "animal", True, True),
        _row("hypernym", "animal", False, False),
        _row("hypernym", "animal", True, False, seen=False, mass=0.4),
        # vehicle: seen no/yes, unseen yes/yes
        _row("hypernym", "vehicle", False, True),
        _row("hypernym", "vehicle", True, True, seen=False),
    ]
    m = metrics.summarize(rows)
    assert m["n_questions"] == 7
    assert m["accuracy"] == pytest.approx(4 / 7)
    assert m["leaf"]["accuracy"] == pytest.approx(0.5)
    assert m["leaf"]["f1"] == pytest.approx(2 / 3)          # TP1 FP1 FN0
    h = m["hypernym"]
    assert h["n"] == 5
    assert h["confusion"] == {"tp": 2, "fp": 1, "fn": 1, "tn": 1}
    assert h["f1"] == pytest.approx(4 / 6)
    assert h["per_category"]["animal"]["f1"] == pytest.approx(2 / 3)   # TP1 FN1
    assert h["per_category"]["vehicle"]["f1"] == pytest.approx(2 / 3)  # TP1 FP1
    assert h["macro_f1"] == pytest.approx(2 / 3)
    assert h["seen"]["n"] == 3 and h["unseen"]["n"] == 2
    assert h["seen"]["f1"] == pytest.approx(2 / 3)          # TP1 FP1
    assert h["unseen"]["f1"] == pytest.approx(2 / 3)        # TP1 FN1
    assert h["unseen"]["per_category"]["animal"]["f1"] == 0.0
    # seen hypernym: answers T,F,F preds T,F,T -> no-class TN1 FN0 FP1 -> 2/3; macro (2/3+2/3)/2
    assert h["seen"]["f1_no"] == pytest.approx(2 / 3)
    assert h["seen"]["macro_f1_yes_no"] == pytest.approx(2 / 3)
    assert h["seen"]["yes_rate"] == pytest.approx(2 / 3)
    assert m["undecided_rate"] == pytest.approx(2 / 7)
    assert m["confusion"] == {"tp": 3, "fp": 2, "fn": 1, "tn": 1}
    head = metrics.headline(m)
    assert head["unseen_f1"] == pytest.approx(2 / 3)


def test_summarize_nothing_unseen_and_no_mass():
    rows = [_row("hypernym", "animal", True, True, mass=None)]
    m = metrics.summarize(rows)
    assert m["hypernym"]["unseen"]["f1"] is None and m["hypernym"]["unseen"]["n"] == 0
    assert m["undecided_rate"] is None


def test_summarize_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        metrics.summarize([_row("colour", "red", True, True)])
