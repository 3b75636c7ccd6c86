"""conlleval entity scoring (`apps.common.metrics`) on hand-worked cases, IOB1 and IOB2."""

import json
import re

import pytest

from apps.common.metrics import _split_tag, entity_confusion, entity_report, entity_spans


@pytest.mark.parametrize(
    "tags, expected",
    [
        (["B-PER", "I-PER", "O"], [("PER", 0, 2)]),
        # Entity at the sentence end.
        (["O", "B-LOC", "I-LOC"], [("LOC", 1, 3)]),
        (["O", "O", "B-LOC"], [("LOC", 2, 3)]),
        # Adjacent entities of the same type: B- starts a second one.
        (["B-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        (["B-PER", "I-PER", "B-PER", "I-PER"], [("PER", 0, 2), ("PER", 2, 4)]),
        # A type change inside a run of I- tags starts a new entity.
        (["B-PER", "I-ORG", "I-ORG"], [("PER", 0, 1), ("ORG", 1, 3)]),
        # conlleval counts a stray I- tag as the start of an entity.
        (["O", "I-MISC", "O"], [("MISC", 1, 2)]),
        ([], []),
        (["O", "O"], []),
    ],
)
def test_entity_spans_hand_worked(tags, expected):
    assert entity_spans(tags, scheme="iob2") == expected


def test_iob1_sentences_give_the_spans_of_their_iob2_conversion():
    # IOB1: I- everywhere, B- only between two adjacent entities of one type.
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "I-ORG", "O", "I-MISC"]
    iob2 = ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "I-ORG", "O", "B-MISC"]
    expected = [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5), ("ORG", 5, 7), ("MISC", 8, 9)]
    assert entity_spans(iob1, scheme="iob1") == expected
    assert entity_spans(iob2, scheme="iob2") == expected
    report = entity_report([iob1], [iob2], scheme="iob1")
    assert report["f1"] == 1.0 and report["true_entities"] == 5


def test_entity_report_partial_spans_and_type_mismatch_count_as_wrong():
    truth = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
    guess = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O"]]
    report = entity_report(truth, guess)
    # True: PER(0,2) LOC(3,4) | ORG(0,1) PER(2,3). Found: PER(0,2) ORG(3,4) | ORG(0,1).
    assert (report["true_entities"], report["predicted_entities"]) == (4, 3)
    assert report["correct_entities"] == 2
    assert report["precision"] == pytest.approx(2 / 3)
    assert report["recall"] == pytest.approx(1 / 2)
    assert report["f1"] == pytest.approx(4 / 7)
    assert report["token_accuracy"] == pytest.approx(5 / 7)
    per_type = report["per_type"]
    assert per_type["PER"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert per_type["ORG"]["precision"] == 0.5 and per_type["ORG"]["recall"] == 1.0
    assert per_type["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_entity_report_partial_overlap_is_neither_precision_nor_recall():
    # One token short at the end, one token too long at the start.
    report = entity_report(
        [["B-ORG", "I-ORG", "I-ORG", "O", "B-PER"]], [["B-ORG", "I-ORG", "O", "B-PER", "I-PER"]]
    )
    assert report["correct_entities"] == 0 and report["f1"] == 0.0
    assert report["token_accuracy"] == pytest.approx(2 / 5)


def test_adjacent_same_type_entities_merged_by_a_prediction_score_zero():
    report = entity_report([["B-PER", "B-PER"]], [["B-PER", "I-PER"]])
    assert (report["true_entities"], report["predicted_entities"]) == (2, 1)
    assert report["correct_entities"] == 0


def test_entity_report_rejects_mismatched_lengths_and_unknown_scheme():
    with pytest.raises(ValueError, match="sentence 0: 2 true tags, 1 predicted"):
        entity_report([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="scheme must be"):
        entity_spans(["O"], scheme="bilou")
    with pytest.raises(ValueError, match="neither O nor"):
        entity_spans(["PER"])


def test_entity_confusion_counts_type_swaps_misses_and_spurious_entities():
    truth = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "O"]]
    guess = [["B-ORG", "I-ORG", "O", "O"], ["B-MISC", "O"]]
    confusion = entity_confusion(truth, guess)
    labels = confusion["labels"]
    assert labels == ["LOC", "MISC", "ORG", "PER", "(none)"]
    matrix = confusion["matrix"]
    assert matrix[labels.index("PER")][labels.index("ORG")] == 1
    assert matrix[labels.index("LOC")][labels.index("(none)")] == 1
    assert matrix[labels.index("(none)")][labels.index("MISC")] == 1
    assert sum(map(sum, matrix)) == 3


def test_ner_help_answers_without_loading_tensorflow():
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        "import sys\nfrom apps.common.cli import main\nfrom apps.ner import APP\n"
        "for command in ('train', 'predict', 'evaluate', 'export', 'tune'):\n"
        "    try:\n        main(APP, [command, '--help'])\n    except SystemExit:\n        pass\n"
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "--file FILE" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize(
    "tag, expected",
    [
        ("O", ("O", None)),
        ("", ("O", None)),  # padding / an empty prediction is outside any entity
        (None, ("O", None)),
        ("B-PER", ("B", "PER")),
        ("I-PER", ("I", "PER")),
        ("B-WORK-OF-ART", ("B", "WORK-OF-ART")),  # the kind is all after the first hyphen
        ("I-WORK-OF-ART", ("I", "WORK-OF-ART")),
    ],
)
def test_split_tag_prefix_and_kind(tag, expected):
    assert _split_tag(tag) == expected


@pytest.mark.parametrize(
    "tag", ["PER", "X-PER", "b-PER", "-PER", "B-", "I-", "S-", "o", "E-PER", "S-PER"]
)
def test_split_tag_rejects_a_bad_prefix_or_a_missing_kind(tag):
    with pytest.raises(
        ValueError, match=f"^{re.escape(f'tag {tag!r} is neither O nor <B|I>-<type>')}$"
    ):
        _split_tag(tag)
    with pytest.raises(ValueError, match="neither O nor"):
        entity_spans(["O", tag])


def test_entity_spans_of_hyphenated_kinds_and_empty_tags():
    tags = ["O", "B-WORK-OF-ART", "I-WORK-OF-ART", "", "I-PER", "", "B-PER"]
    assert entity_spans(tags) == [("WORK-OF-ART", 1, 3), ("PER", 4, 5), ("PER", 6, 7)]
    assert entity_spans(["", ""]) == []


def test_entity_report_with_a_kind_never_predicted_and_one_never_true():
    # True: PER(0,2) LOC(3,4). Predicted: PER(0,2) MISC(2,3).
    report = entity_report([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "B-MISC", "O"]])
    assert report == {
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "per_type": {
            "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
            "MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
            "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
        },
        "true_entities": 2,
        "predicted_entities": 2,
        "correct_entities": 1,
        "token_accuracy": 0.5,
    }


@pytest.mark.parametrize(
    "truth, guess, counts",
    [
        ([["O", "O"]], [["B-PER", "O"]], (0, 1, 0)),  # nothing true: recall 0.0, not 0/0
        ([["B-PER", "O"]], [["O", "O"]], (1, 0, 0)),  # nothing predicted: precision 0.0
        ([["O", "O"]], [["O", "O"]], (0, 0, 0)),
    ],
)
def test_entity_report_scores_are_zero_without_true_or_predicted_entities(truth, guess, counts):
    report = entity_report(truth, guess)
    assert (report["precision"], report["recall"], report["f1"]) == (0.0, 0.0, 0.0)
    assert (
        report["true_entities"],
        report["predicted_entities"],
        report["correct_entities"],
    ) == counts
    for figures in report["per_type"].values():
        assert (figures["precision"], figures["recall"], figures["f1"]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("sentences", [[], [[]], [[], []]])
def test_entity_report_of_no_tokens_is_all_zero(sentences):
    assert entity_report(sentences, sentences) == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "per_type": {},
        "true_entities": 0,
        "predicted_entities": 0,
        "correct_entities": 0,
        "token_accuracy": 0.0,
    }


@pytest.mark.parametrize("score", [entity_report, entity_confusion])
@pytest.mark.parametrize(
    "truth, guess",
    [([["O"]], []), ([], [["B-PER"]]), ([["O"], ["O"]], [["O"]])],
    ids=["guess-short", "truth-short", "one-missing"],
)
def test_a_different_number_of_sentences_is_an_error(score, truth, guess):
    with pytest.raises(ValueError):
        score(truth, guess)


def test_entity_report_rejects_a_later_sentence_of_another_length():
    with pytest.raises(ValueError, match="^sentence 1: 2 true tags, 1 predicted$"):
        entity_report([["O"], ["B-PER", "O"]], [["O"], ["B-PER"]])


@pytest.mark.parametrize("score", [entity_report, entity_confusion])
def test_an_unknown_scheme_is_reported_before_the_tags_are_read(score):
    # The scheme reaches entity_spans: a bad scheme is the error, not the bad tag.
    with pytest.raises(ValueError, match="^scheme must be 'iob1' or 'iob2', got 'iobes'$"):
        score([["X-"]], [["O"]], scheme="iobes")
    with pytest.raises(ValueError, match="^scheme must be"):
        score([["B-PER"]], [["B-PER"]], scheme="bilou")


def test_entity_confusion_counts_every_pair():
    truth = [
        ["B-PER", "I-PER", "O", "B-LOC", "O", "B-PER"],
        ["B-LOC", "O", "O"],
        ["B-PER", "O", "B-PER"],
    ]
    guess = [
        ["B-ORG", "I-ORG", "O", "O", "B-MISC", "B-ORG"],
        ["O", "B-MISC", "O"],
        ["B-PER", "O", "B-PER"],
    ]
    confusion = entity_confusion(truth, guess, scheme="iob1")
    assert confusion == entity_confusion(truth, guess)
    assert confusion["labels"] == ["LOC", "MISC", "ORG", "PER", "(none)"]
    assert confusion["matrix"] == [
        [0, 0, 0, 0, 2],  # LOC missed twice
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 2, 2, 0],  # PER taken for ORG twice, found twice
        [0, 2, 0, 0, 0],  # MISC spurious twice
    ]
    assert json.dumps(confusion["matrix"][3]) == "[0, 0, 2, 2, 0]"
    assert all(type(count) is int for row in confusion["matrix"] for count in row)


def test_entity_confusion_of_no_entities():
    assert entity_confusion([["O"], []], [["O"], []]) == {"labels": ["(none)"], "matrix": [[0]]}
