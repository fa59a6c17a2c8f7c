"""bench.predict_shortlist's shorter ranking questions: what the bf16 pass asks in place of the scored one."""
import pytest

from bench import predict_shortlist as ps
from core.questions import question_text


@pytest.mark.parametrize("label, short, bare", [
    ("dog", "Is there a dog?", "Is there a dog"),
    ("scissors", "Is there a pair of scissors?", "Is there a pair of scissors"),
    ("grapes", "Are there grapes?", "Are there grapes"),
])
def test_shorter_questions_end_where_the_name_does(label, short, bare):
    q = question_text(label)
    assert ps.ranking_question(q) == q
    assert ps.ranking_question(q, "short") == short
    assert ps.ranking_question(q, "bare") == bare


def test_unknown_kinds_and_other_question_forms_are_refused():
    with pytest.raises(ValueError, match="unknown ranking question"):
        ps.ranking_question(question_text("dog"), "tiny")
    with pytest.raises(ValueError, match="does not end in"):
        ps.ranking_question("Is this a dog?", "short")
