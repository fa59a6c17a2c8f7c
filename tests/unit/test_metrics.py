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
    assert metrics.macro_f1_yes_no([True], [True]) is None          # one answer alone: undefined
    assert metrics.macro_f1_yes_no([False, False], [False, True]) is None
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


def test_per_category_macro_f1_and_chance_by_hand():
    rows = [
        _row("leaf", "dog", True, True),
        _row("leaf", "cat", False, True),
        _row("hypernym", "animal", True, True),
        _row("hypernym", "animal", False, False),
        _row("hypernym", "animal", True, False, seen=False),
        _row("hypernym", "vehicle", False, True),
        _row("hypernym", "vehicle", True, True, seen=False),
    ]
    m = metrics.summarize(rows)
    h = m["hypernym"]
    # animal: answers T F T, preds T F F -> yes F1 2/3 (TP1 FN1), no F1 2/3 (TN1 FP1) -> 2/3
    # vehicle: answers F T, preds T T -> yes F1 2/3, no F1 0 -> 1/3
    assert h["per_category"]["animal"]["macro_f1_yes_no"] == pytest.approx(2 / 3)
    assert h["per_category"]["vehicle"]["macro_f1_yes_no"] == pytest.approx(1 / 3)
    assert h["category_macro_f1"] == pytest.approx(1 / 2)
    # a coin: animal pi = 2/3 -> yes (2/3)/(7/6) = 4/7, no (1/3)/(5/6) = 2/5 -> 17/35; vehicle pi = 1/2 -> 1/2
    assert h["per_category"]["animal"]["chance_macro_f1_yes_no"] == pytest.approx(17 / 35)
    assert h["category_macro_f1_chance"] == pytest.approx((17 / 35 + 1 / 2) / 2)
    assert h["n_categories"] == 2
    # seen: animal T/T F/F -> 1; vehicle F/T holds "no" alone: left out. Chance: animal's 1/2
    assert h["seen"]["category_macro_f1"] == 1.0 and h["seen"]["n_one_answer"] == 1
    assert h["seen"]["category_macro_f1_chance"] == pytest.approx(1 / 2)
    # unseen: animal T/F and vehicle T/T hold "yes" alone: no yes/no macro-F1, no chance level
    assert h["unseen"]["category_macro_f1"] is None and h["unseen"]["category_macro_f1_chance"] is None
    assert h["unseen"]["n_one_answer"] == 2 and h["n_one_answer"] == 0
    assert h["unseen_share"] == pytest.approx(2 / 5)
    # leaf per target concept: dog T/T and cat F/T hold one answer each: no macro-F1
    leaf = m["leaf"]
    assert leaf["per_concept"]["dog"]["macro_f1_yes_no"] is None
    assert leaf["per_concept"]["cat"]["macro_f1_yes_no"] is None
    assert leaf["concept_macro_f1"] is None and leaf["concept_macro_f1_chance"] is None
    assert leaf["n_one_answer"] == 2
    assert leaf["concept_f1"] == pytest.approx(1 / 2)            # yes-class: dog 1, cat 0
    head = metrics.headline(m)
    assert list(head)[:len(metrics.HEADLINE)] == list(metrics.HEADLINE)     # the new numbers first
    assert head["seen_category_f1"] == 1.0 and head["unseen_share"] == pytest.approx(2 / 5)
    assert head["leaf_concept_f1"] is None and head["leaf_accuracy"] == pytest.approx(1 / 2)
    for old in ("accuracy", "leaf_f1", "hypernym_f1", "seen_f1", "unseen_f1", "seen_accuracy",
                "unseen_accuracy", "seen_macro_f1_yes_no", "unseen_macro_f1_yes_no", "undecided_rate"):
        assert old in head
    assert metrics.is_current(m)


def test_always_yes_is_at_chance_not_two_thirds():
    rows = [_row("hypernym", k, a, True) for k in ("animal", "vehicle") for a in (True, False)]
    h = metrics.summarize(rows)["hypernym"]
    assert h["f1"] == pytest.approx(2 / 3)                  # the yes-class F1 flatters it
    assert h["category_macro_f1"] == pytest.approx(1 / 3)   # the headline does not
    assert h["category_macro_f1_chance"] == pytest.approx(1 / 2)


def test_a_category_whose_questions_hold_one_answer_is_left_out_and_counted():
    """Reported: after random ablation a category of one concept keeps only "no" questions among
    the seen pairs; there always-no scored 1.0 (the yes-class F1 undefined and dropped) against a
    coin's 0.33 counted with its yes-class 0, so the majority baseline beat the trained runs."""
    rows = [_row("hypernym", "bird", False, False), _row("hypernym", "bird", False, False),   # "no" alone
            _row("hypernym", "animal", True, True), _row("hypernym", "animal", True, False),  # TP1 FN1
            _row("hypernym", "animal", False, False), _row("hypernym", "animal", False, True),  # TN1 FP1
            _row("leaf", "dog", True, True), _row("leaf", "dog", False, False),
            _row("leaf", "cat", False, True)]                                                 # "no" alone
    m = metrics.summarize(rows)
    seen = m["hypernym"]["seen"]
    assert seen["per_category"]["bird"]["macro_f1_yes_no"] is None
    assert seen["per_category"]["bird"]["chance_macro_f1_yes_no"] is None
    assert seen["category_macro_f1"] == pytest.approx(0.5)              # animal alone
    assert seen["category_macro_f1_chance"] == pytest.approx(0.5)
    assert seen["n_categories"] == 2 and seen["n_one_answer"] == 1
    assert m["hypernym"]["unseen"]["n_one_answer"] == 0
    assert m["leaf"]["concept_macro_f1"] == 1.0 and m["leaf"]["n_one_answer"] == 1
    assert metrics.is_current(m)
    del m["hypernym"]["seen"]["n_one_answer"]            # written before one-answer groups were left out
    assert not metrics.is_current(m)


def test_chance_f1s_by_hand_and_against_a_simulated_coin():
    import random
    assert metrics.chance_f1s(0.5) == pytest.approx((0.5, 0.5))
    assert metrics.chance_f1s(0.2) == pytest.approx((2 / 7, 8 / 13))
    assert metrics.chance_macro_f1([True, False, False, False, False]) == pytest.approx((2 / 7 + 8 / 13) / 2)
    assert metrics.chance_macro_f1([]) is None and metrics.chance_macro_f1([False, False]) is None
    with pytest.raises(ValueError):
        metrics.chance_f1s(1.5)
    rng = random.Random(0)
    targets = [rng.random() < 0.2 for _ in range(20000)]
    coin = [rng.random() < 0.5 for _ in targets]
    assert metrics.macro_f1_yes_no(targets, coin) == pytest.approx(metrics.chance_macro_f1(targets), abs=0.01)


def test_headline_of_an_older_metrics_file_has_none_for_new_numbers():
    rows = [_row("hypernym", "animal", True, True), _row("leaf", "dog", True, True)]
    m = metrics.summarize(rows)
    del m["hypernym"]["seen"]["category_macro_f1"]
    del m["leaf"]["concept_macro_f1"]
    head = metrics.headline(m)
    assert head["seen_category_f1"] is None and head["leaf_concept_f1"] is None
    assert head["seen_f1"] == 1.0
    assert not metrics.is_current(m) and not metrics.is_current(None)


def test_summarize_nothing_unseen_and_no_mass():
    rows = [_row("hypernym", "animal", True, True, mass=None)]
    m = metrics.summarize(rows)
    assert m["hypernym"]["unseen"]["f1"] is None and m["hypernym"]["unseen"]["n"] == 0
    assert m["undecided_rate"] is None


def test_summarize_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        metrics.summarize([_row("colour", "red", True, True)])
