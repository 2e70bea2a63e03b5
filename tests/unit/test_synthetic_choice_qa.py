"""The synthetic multiple-choice video QA set (testing/synthetic_qa.py): both answer styles score 1 with the
option reward on their own answers, and a wrong style is refused."""

import json

import pytest

from llamafactory_video.rewards.builtin import option_accuracy
from llamafactory_video.testing.synthetic_qa import make_choice_qa_dataset


@pytest.mark.parametrize("style", ["letter", "reasoned"])
def test_answers_score_one_with_the_option_reward(style, tmp_path):
    data = make_choice_qa_dataset(str(tmp_path), train_per_class=1, test_per_class=1, answer_style=style)
    rows = json.loads((tmp_path / f"{data['train_dataset']}.json").read_text(encoding="utf-8"))
    answers = [row["messages"][1]["content"] for row in rows]
    letters = [row["answer"] for row in rows]
    assert letters == data["letters"] and all(row["references"] == [row["answer"]] for row in rows)
    assert option_accuracy(answers, [[a] for a in letters], answer=letters).tolist() == [1.0] * len(rows)
    shuffled = letters[1:] + letters[:1]  # every answer against another question's letter
    assert option_accuracy(answers, [[a] for a in shuffled], answer=shuffled).tolist() == [0.0] * len(rows)
    if style == "reasoned":
        assert answers[1] == "A green circle. Answer: B" and "Answer:" in rows[0]["messages"][0]["content"]
    else:
        assert answers == letters


def test_unknown_answer_style_is_refused(tmp_path):
    with pytest.raises(ValueError, match="answer_style"):
        make_choice_qa_dataset(str(tmp_path), train_per_class=1, test_per_class=1, answer_style="essay")
