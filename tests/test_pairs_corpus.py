"""The generic sentence-pair corpus kind (``kind: pairs``): STS-B re-expressed in other layouts (CSV with a header
and a split column on another score scale, TSV without a header by column index in one file per split, one file as
the test split) reads back as the very pairs the STS-B parser gives; bad rows and bad settings are named."""

import csv

import numpy as np
import pytest
from conftest import SHARED

from repgeom.configure.config import ConfigError, validate_config
from repgeom.corpora import prepare, snli_pairs, stsb_pairs
from repgeom.corpora.errors import DataError

pytestmark = pytest.mark.skipif(not (SHARED / "stsb").is_dir(), reason="needs ../shared/data/stsb")
SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def stsb(tmp_path_factory):
    """The STS-B corpus artifact from the shared copy, and its pairs by split."""
    out = tmp_path_factory.mktemp("stsb") / "stsb.json"
    prepare("stsb", {"source": {"type": "local", "path": str(SHARED / "stsb")}}, out)
    return out, stsb_pairs(out)


def _same_pairs(got, want, splits=SPLITS):
    assert set(got) == set(splits)
    for s in splits:
        assert got[s]["s1"] == want[s]["s1"] and got[s]["s2"] == want[s]["s2"], s
        np.testing.assert_allclose(got[s]["y"], want[s]["y"], atol=1e-6)
        assert got[s]["id1"] == want[s]["id1"]  # sentence ids: the same activation rows


def test_csv_with_header_split_column_and_another_scale(stsb, tmp_path):
    """SICK's layout: a CSV, named columns, a split column (TRAIN/TRIAL/TEST), relatedness on 1–5."""
    _, want = stsb
    path = tmp_path / "sick_like.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["pair_ID", "sentence_A", "sentence_B", "relatedness_score", "SemEval_set"])
        for s, tag in zip(SPLITS, ("TRAIN", "TRIAL", "TEST")):
            for i, (a, b, y) in enumerate(zip(want[s]["s1"], want[s]["s2"], want[s]["y"])):
                w.writerow([f"{s}{i}", a, b, repr(1 + 4 * float(y)), tag])
    spec = {
        "kind": "pairs",
        "source": {"type": "local", "path": str(path)},
        "format": {"delimiter": ","},
        "columns": {"sentence1": "sentence_A", "sentence2": "sentence_B", "score": "relatedness_score", "split": "SemEval_set"},
        "score_range": [1, 5],
        "splits": {"train": "TRAIN", "dev": "TRIAL", "test": "TEST"},
    }  # fmt: skip
    meta = prepare("sick_like", spec, tmp_path / "a.json")
    assert meta["type"] == "pairs" and meta["rows"] == {s: len(want[s]["y"]) for s in SPLITS}
    _same_pairs(stsb_pairs(tmp_path / "a.json"), want)


def test_tsv_without_header_by_index_one_file_per_split(stsb, tmp_path):
    _, want = stsb
    folder = tmp_path / "tsv"
    folder.mkdir()
    for s in SPLITS:
        with open(folder / f"{s}.tsv", "w", encoding="utf-8") as fh:
            for a, b, y in zip(want[s]["s1"], want[s]["s2"], want[s]["y"]):
                fh.write(f"{repr(5 * float(y))}\t{a}\t{b}\n")
    spec = {
        "kind": "pairs",
        "source": {"type": "local", "path": str(folder)},
        "format": {"header": False, "quoting": "none"},
        "columns": {"score": 0, "sentence1": 1, "sentence2": 2},
        "score_range": [0, 5],
        "splits": {s: f"{s}.tsv" for s in SPLITS},
    }
    prepare("tsv_like", spec, tmp_path / "b.json")
    _same_pairs(stsb_pairs(tmp_path / "b.json"), want)


def test_one_file_is_the_test_split(stsb, tmp_path):
    _, want = stsb
    path = tmp_path / "test_only.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["s1", "s2", "sim"])
        for a, b, y in zip(want["test"]["s1"], want["test"]["s2"], want["test"]["y"]):
            w.writerow([a, b, repr(float(y))])
    spec = {
        "kind": "pairs",
        "source": {"type": "local", "path": str(path)},
        "format": {"delimiter": ","},
        "columns": {"sentence1": "s1", "sentence2": "s2", "score": "sim"},
        "score_range": [0, 1],
    }
    prepare("test_only", spec, tmp_path / "c.json")
    _same_pairs(stsb_pairs(tmp_path / "c.json", ("test",)), want, ("test",))


def _table(tmp_path, lines, name="t.tsv"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


SPEC = {
    "kind": "pairs",
    "columns": {"sentence1": "a", "sentence2": "b", "score": "y"},
    "score_range": [0, 5],
}


@pytest.mark.parametrize(
    "lines,error",
    [
        (["a\tb\ty", "one\ttwo\tfour"], r"t.tsv:2: score 'four' is not a number"),
        (["a\tb\ty", "one\ttwo\t1", "one\ttwo\t7"], r"t.tsv:3: score 7.0 is outside score_range \[0, 5\]"),
        (["a\tb\ty", "one\t\t1"], r"t.tsv:2: empty sentence"),
        (["a\tb\ty", "one\ttwo"], r"t.tsv:2: 2 fields"),
        (
            ["a\tc\ty", "one\ttwo\t1"],
            r"t.tsv:1: no column 'b' for columns.sentence2 \(the header has \['a', 'c', 'y'\]\)",
        ),
    ],
)
def test_bad_rows_are_named_by_file_and_line(tmp_path, lines, error):
    path = _table(tmp_path, lines)
    with pytest.raises(DataError, match=error):
        prepare("bad", {**SPEC, "source": {"type": "local", "path": str(path)}}, tmp_path / "x.json")


def test_skipped_rows_are_counted_and_split_values_checked(tmp_path):
    path = _table(tmp_path, ["a\tb\ty\tset", "one\ttwo\t1\tT", "three\tfour\tx\tT", "five\tsix\t2\tQ"])
    spec = {**SPEC, "source": {"type": "local", "path": str(path)}, "on_bad_row": "skip",
            "columns": {**SPEC["columns"], "split": "set"}, "splits": {"test": "T"}}  # fmt: skip
    with pytest.raises(DataError, match=r"2 of 3 rows are bad, more than max_bad_fraction 0.05; the first: .*t.tsv:3"):
        prepare("skip", spec, tmp_path / "s.json")  # most rows bad: refused, naming the first bad lines
    meta = prepare("skip", {**spec, "max_bad_fraction": 0.9}, tmp_path / "s.json")
    assert meta["rows"] == {"test": 1} and meta["n_skipped"] == 2
    assert any("split value 'Q'" in m for m in meta["skipped"])
    assert meta["summary"][0] == "corpus skip: skipped 2 of 3 rows as bad (on_bad_row: skip):"
    assert sorted(line.split(None, 1)[1] for line in meta["summary"][1:]) == [
        "score … is not a number",
        "split value … is none of […] (splits in the data entry)",
    ]


def test_config_checks_of_pairs_entries():
    base = {"models": {}, "sequences": {}}

    def check(entry):
        return validate_config({**base, "data": {"p": {"source": {"type": "local", "path": "x"}, **entry}}})

    check({**SPEC})
    with pytest.raises(ConfigError, match=r"data.p.columns': a pairs corpus needs \['score'\]"):
        check({**SPEC, "columns": {"sentence1": 0, "sentence2": 1}})
    with pytest.raises(ConfigError, match=r"data.p.score_range' = \[5, 0\]"):
        check({**SPEC, "score_range": [5, 0]})
    with pytest.raises(ConfigError, match=r"data.p.splits': columns.split needs"):
        check({**SPEC, "columns": {**SPEC["columns"], "split": 3}})
    with pytest.raises(ConfigError, match=r"format.header is false, so give 0-based indices"):
        check({**SPEC, "format": {"header": False}})
    with pytest.raises(ConfigError, match=r"data.p.score_range': only a pairs corpus"):
        check({"kind": "stsb", "score_range": [0, 5]})


@pytest.mark.skipif(not (SHARED / "snli").is_dir(), reason="needs ../shared/data/snli")
def test_text_labels_as_scores_read_snli_as_the_snli_kind_does(tmp_path):
    """An NLI table as a graded relatedness set: ``labels`` maps its gold labels onto score_range, a row without
    one ('-', as in SNLI's full release; this copy has none, so one is added) is skipped and counted, and the pairs
    and targets equal those the SNLI parser gives."""
    (tmp_path / "snli").mkdir()
    path = tmp_path / "snli" / "snli_test.csv"
    path.write_bytes((SHARED / "snli" / "snli_test.csv").read_bytes() + b"-,A man sleeps.,A man is awake.\n")
    spec = {
        "kind": "pairs",
        "source": {"type": "local", "path": str(path)},
        "format": {"delimiter": ","},
        "columns": {"sentence1": "sentence1", "sentence2": "sentence2", "score": "gold_label"},
        "score_range": [0, 1],
        "labels": {"entailment": 1, "neutral": 0.5, "contradiction": 0},
        "on_bad_row": "skip",
    }
    meta = prepare("snli_rel", spec, tmp_path / "p.json")
    snli_meta = prepare("snli", {"source": {"type": "local", "path": str(path.parent)}}, tmp_path / "s.json")
    got, want = stsb_pairs(tmp_path / "p.json", ("test",))["test"], snli_pairs(tmp_path / "s.json")
    assert meta["n_skipped"] == sum(snli_meta["no_gold_label"].values()) == 1
    assert "score label '-'" in meta["skipped"][0] and len(got["y"]) == 9824
    assert got["id1"] == want["id1"] and got["id2"] == want["id2"]
    np.testing.assert_allclose(got["y"], want["y"], atol=1e-6)  # entailment 1, neutral 0.5, contradiction 0
    assert sorted(set(np.round(got["y"], 6))) == [0.0, 0.5, 1.0]


def test_unknown_text_label_is_named_and_labels_are_checked(tmp_path):
    path = _table(tmp_path, ["a\tb\ty", "one\ttwo\tyes", "one\ttwo\tmaybe"])
    spec = {
        **SPEC,
        "source": {"type": "local", "path": str(path)},
        "score_range": [0, 1],
        "labels": {"yes": 1, "no": 0},
    }
    with pytest.raises(DataError, match=r"t.tsv:3: score label 'maybe' is none of \['no', 'yes'\]"):
        prepare("bad", spec, tmp_path / "x.json")
    base = {"models": {}, "sequences": {}}
    with pytest.raises(ConfigError, match=r"data.p.labels': \{'yes': 5\} lie outside score_range \[0, 1\]"):
        validate_config(
            {**base, "data": {"p": {**spec, "source": {"type": "local", "path": "x"}, "labels": {"yes": 5, "no": 0}}}}
        )
    with pytest.raises(ConfigError, match=r"data.p.labels': only a pairs corpus"):
        validate_config(
            {**base, "data": {"p": {"kind": "stsb", "source": {"type": "local", "path": "x"}, "labels": {"a": 1}}}}
        )
