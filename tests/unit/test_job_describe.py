"""Job descriptions name a dataset other than the default (jobs on an imported dataset were told
apart from the same config on `concepts` only by their spec), and a failed job's error splits into
its message and its traceback for the app."""
from __future__ import annotations

import pytest

from core.jobs import kinds


def test_train_and_baseline_jobs_name_a_dataset_other_than_the_default():
    train = kinds.get("train").describe
    assert train({"config": {"condition": "random:0.5", "seed": 0}}) == "train random:0.5 seed 0"
    assert train({"config": {"condition": "random:0.5", "seed": 0, "dataset": "concepts"}}) == "train random:0.5 seed 0"
    assert train({"config": {"condition": "random:0.5", "seed": 0, "dataset": "mine"}}) == \
        "train random:0.5 seed 0 on mine"
    assert train({"config": {"condition": "cross", "seed": 1, "dataset": "mine", "prompt": "chat"}}) == \
        "train cross seed 1 chat prompt on mine"
    baseline = kinds.get("baseline").describe
    assert baseline({"baseline": "text_only", "config": {"condition": "none", "seed": 2}}) == \
        "baseline text_only none seed 2"
    assert baseline({"baseline": "text_only", "config": {"condition": "none", "seed": 2, "dataset": "mine"}}) == \
        "baseline text_only none seed 2 on mine"
    # the kinds whose lines named the dataset already
    assert kinds.get("probe").describe({"lm": "smollm2-135m", "lm_init": "pretrained", "dataset": "mine"}) == \
        "probe smollm2-135m on mine"
    assert kinds.get("coherence").describe({"dataset": "mine", "encoder": "e", "seed": 0}).startswith("coherence mine")


def test_evaluate_jobs_name_the_dataset_of_their_run(tmp_path):
    import json
    describe = kinds.get("evaluate").describe
    for name, dataset in (("r_mine", "mine"), ("r_default", "concepts")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"dataset": dataset, "seed": 0}))
    assert describe({"run": str(tmp_path / "r_mine"), "split": "test"}) == "evaluate r_mine on test (dataset mine)"
    assert describe({"run": str(tmp_path / "r_default"), "split": "val"}) == "evaluate r_default on val"
    assert describe({"run": str(tmp_path / "gone"), "split": "test"}) == "evaluate gone on test"
    # a run folder not readable yet (mid-copy) is read again once it is: a failed read is not cached
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "config.json").write_text(json.dumps({"dataset": "mine", "seed": 0}))
    assert describe({"run": str(tmp_path / "gone"), "split": "test"}) == "evaluate gone on test (dataset mine)"


def test_a_failed_jobs_error_splits_into_its_message_and_traceback():
    from core.jobs import error_parts as split_error
    from core.jobs.store import TRACEBACK_MARK

    trace = 'Traceback (most recent call last):\n  File "a.py", line 1, in f\n    g()\nKeyError: \'x\''
    assert split_error(f"KeyError: 'x'\n\n{trace}") == ("KeyError: 'x'", trace)
    assert split_error(trace) == ("KeyError: 'x'", trace)                     # a bare traceback: its last line
    cut = '  File "a.py", line 1, in f\n    g()\nKeyError: \'x\''             # the runner keeps its tail only
    assert split_error(f"KeyError: 'x'\n\n{cut}") == ("KeyError: 'x'", cut)
    listed = "import of 'mine' refused, 2 problem(s):\n  - a.png: unreadable\n  - b.png: unreadable"
    assert split_error(listed) == (listed, "")                                # no traceback: all of it
    assert split_error("cancelled by request") == ("cancelled by request", "")
    # a chained traceback cut inside its first part (review): the message is the first line only
    chained = ('  File "a.py", line 1, in f\nKeyError: \'x\'\n\nThe above exception was the direct cause of the '
               'following exception:\n\nTraceback (most recent call last):\n  File "b.py", line 2, in g\nValueError: bad')
    assert split_error(f"ValueError: bad\n\n{chained}") == ("ValueError: bad", chained)
    # what the runner records now: the mark splits it, whatever the message holds
    message = "import refused:\n\n  File listing: a.png"
    assert split_error(f"{message}{TRACEBACK_MARK}{trace}") == (message, trace)
