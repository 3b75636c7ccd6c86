"""The NER app's CoNLL reader and its tfds builder, on generated files.

Documents, blank lines, `-DOCSTART-`, 2- and 4-column files, the tag column option,
malformed lines and invalid IOB2 transitions (an error naming file and line, or the IOB1
repair), the tag set read from the data, and the offline catalog failing fast.
"""

import os

import pytest

from apps.common import data as common_data
from apps.common.errors import CatalogUnavailableError, DataError
from apps.ner import data
from apps.ner.config import NerDataConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_CONLL = os.path.join(os.path.dirname(ROOT), "shared", "data", "conll2003")

FOUR_COLUMNS = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
.

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER


-DOCSTART- -X- -X- O
BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_four_column_file_with_documents_and_blank_lines(tmp_path):
    text = FOUR_COLUMNS.replace(".\n\nPeter", ". . O O\n\nPeter")
    sentences = data.read_conll(write(tmp_path, "train.txt", text))
    assert [(line, tokens) for line, tokens, _ in sentences] == [
        (3, ["EU", "rejects", "German", "call", "."]),
        (9, ["Peter", "Blackburn"]),
        (14, ["BRUSSELS", "1996-08-22"]),  # no blank line after -DOCSTART-, none at the end
    ]
    assert sentences[0][2] == ["B-ORG", "O", "B-MISC", "O", "O"]
    assert sentences[1][2] == ["B-PER", "I-PER"]
    # Another column holds the tag: the chunk tags.
    chunks = data.read_conll(write(tmp_path, "chunks.txt", text), tag_column=2)
    assert chunks[0][2] == ["B-NP", "B-VP", "B-NP", "I-NP", "O"]


def test_wrong_number_of_columns_names_file_and_line(tmp_path):
    path = write(tmp_path, "train.txt", FOUR_COLUMNS)  # line 7 is a bare "."
    with pytest.raises(DataError, match=r"train.txt, line 7: expected 4 columns \(as on line 3\)"):
        data.read_conll(path)


def test_two_column_file_and_tab_separated_empty_token(tmp_path):
    path = write(tmp_path, "two.txt", "John B-PER\nlives O\nin O\nParis B-LOC\n\nHi O\n")
    sentences = data.read_conll(path)
    assert sentences[0][2] == ["B-PER", "O", "O", "B-LOC"] and sentences[1][1] == ["Hi"]
    assert data.read_conll(path, tag_column=1) == sentences
    tabs = write(tmp_path, "tabs.txt", "New York\tB-LOC\nCity\tI-LOC\n")
    assert data.read_conll(tabs, delimiter="\t")[0][1:] == (
        ["New York", "City"],
        ["B-LOC", "I-LOC"],
    )
    empty = write(tmp_path, "empty.txt", "New York\tB-LOC\n\tO\n")
    with pytest.raises(DataError, match=r"empty.txt, line 2: empty token in column 0"):
        data.read_conll(empty, delimiter="\t")
    with pytest.raises(DataError, match=r"two.txt, line 1: data.tag_column=3, but the line has 2"):
        data.read_conll(path, tag_column=3)


def test_tags_outside_iob_are_errors_naming_the_line(tmp_path):
    path = write(tmp_path, "bad.txt", "John B-PER\n\nMary PER\n")
    with pytest.raises(DataError, match=r"bad.txt, line 3: tag 'PER' is neither O nor B-<type>"):
        data.read_conll(path)


def test_invalid_iob2_transition_is_an_error_or_repaired_as_iob1(tmp_path):
    text = "The O\nEU I-ORG\nsaid O\n\nJohn I-PER\nSmith I-PER\nand O\nMary I-PER\nBlack B-PER\n"
    path = write(tmp_path, "iob1.txt", text)
    with pytest.raises(
        DataError, match=r"iob1.txt, line 2: tag 'I-ORG' after 'O' is not valid IOB2"
    ):
        data.read_conll(path)
    with pytest.raises(DataError, match="set data.tag_scheme=iob1"):
        data.read_conll(path)
    # An I- tag continuing another type is as invalid as one after O.
    mixed = write(tmp_path, "mixed.txt", "John B-PER\nCorp I-ORG\n")
    with pytest.raises(DataError, match=r"line 2: tag 'I-ORG' after 'B-PER'"):
        data.read_conll(mixed)
    sentences = data.read_conll(path, tag_scheme="iob1")
    assert sentences[0][2] == ["O", "B-ORG", "O"]
    assert sentences[1][2] == ["B-PER", "I-PER", "O", "B-PER", "B-PER"]


def test_local_directory_becomes_a_tfds_dataset_with_the_datas_own_tags(tmp_path):
    source = tmp_path / "genes"
    source.mkdir()
    write(
        source,
        "train.txt",
        "BRCA1 B-GENE\nbinds O\np53 B-GENE\n\nthe O\nTP53 B-GENE\ngene I-GENE\n",
    )
    write(source, "valid.txt", "KRAS B-GENE\nand O\naspirin B-DRUG\n")
    config = NerDataConfig(source=str(source), data_dir=str(tmp_path / "tfds"))
    loaded = data.load(config)
    names = loaded.info["tag_names"]
    assert names == ["O", "B-DRUG", "B-GENE", "I-GENE"]
    assert loaded.info["num_examples"] == {"train": 2, "validation": 1}
    assert loaded.info["prepared"] == "now"
    train = sorted(
        ([t.decode() for t in e["tokens"]], [names[i] for i in e["tags"]])
        for e in loaded.splits["train"].as_numpy_iterator()
    )
    assert train[0] == (["BRCA1", "binds", "p53"], ["B-GENE", "O", "B-GENE"])
    element = next(loaded.splits["validation"].as_numpy_iterator())
    assert element["tags"].dtype.name == "int64" and element["tokens"].dtype == object
    assert data.load(config).info["prepared"] == "reused"


def test_single_file_gets_validation_carved_and_bad_file_fails_before_tfds(tmp_path):
    lines = "".join(f"w{i} O\nCity{i} B-LOC\n\n" for i in range(10))
    config = NerDataConfig(
        source=str(write(tmp_path, "all.conll", lines)),
        data_dir=str(tmp_path / "tfds"),
        validation_fraction=0.2,
    )
    loaded = data.load(config)
    assert loaded.info["num_examples"] == {"train": 8, "validation": 2}
    broken = NerDataConfig(
        source=str(write(tmp_path, "broken.txt", "a O\nb I-X\n")), data_dir=str(tmp_path / "tfds")
    )
    with pytest.raises(DataError, match=r"broken.txt, line 2"):
        data.load(broken)
    assert not (tmp_path / "tfds" / data.BUILDER_NAME / "broken").exists()


def test_offline_catalog_fails_fast_naming_the_local_files(tmp_path, monkeypatch):
    monkeypatch.setattr(common_data, "network_available", lambda urls, timeout=5.0: False)
    config = NerDataConfig(source="conll2003", data_dir=str(tmp_path / "tfds"))
    with pytest.raises(CatalogUnavailableError, match="--data ../shared/data/conll2003"):
        data.load(config)


@pytest.mark.skipif(not os.path.isdir(SHARED_CONLL), reason="no ../shared/data/conll2003")
def test_shared_conll2003_reads_without_errors():
    sentences = data.read_conll(os.path.join(SHARED_CONLL, "valid.txt"))
    assert len(sentences) == 3250
    tags = {tag for _, _, sentence in sentences for tag in sentence}
    assert data.order_tags(tags) == [
        "O",
        "B-LOC",
        "I-LOC",
        "B-MISC",
        "I-MISC",
        "B-ORG",
        "I-ORG",
        "B-PER",
        "I-PER",
    ]
