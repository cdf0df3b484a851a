"""The text corpora of the STS study, parsed from the real copies in ../shared/data."""

import json
import shutil

import pytest
import yaml
from conftest import SHARED, snakemake

from repgeom.corpora import STSB_ROWS, DataError, load_corpus, prepare

pytestmark = pytest.mark.skipif(not SHARED.exists(), reason="../shared/data not present")


def test_stsb_canonical_splits(tmp_path):
    meta = prepare("stsb", {"source": {"type": "local", "path": str(SHARED / "stsb")}}, tmp_path / "s.json")
    assert meta["rows"] == STSB_ROWS and meta["n_skipped"] == 0
    assert meta["files"]["train"]["md5"] == "e0a88b5f5df2159a499edb6183bd6722"
    assert meta["files"]["test"]["md5"] == "f8c608a4dcfeff4ea11912ea72aacd6e"
    _, splits = load_corpus(tmp_path / "s.json")
    scores = [r["score"] for s in splits.values() for r in s]
    assert min(scores) == 0.0 and max(scores) == 5.0
    # a sentence with an unbalanced quote survives intact (no CSV quote handling)
    raw = [line.split("\t") for line in (SHARED / "stsb/sts-train.csv").read_text().splitlines()]
    quoted = next(f for f in raw if f[5].count('"') % 2 == 1)
    assert any(r["sentence1"] == quoted[5].strip() for r in splits["train"])


def test_genericskb_dedup_and_limit(tmp_path):
    meta = prepare(
        "genericskb",
        {"source": {"type": "local", "path": str(SHARED / "genericskb")}, "max_rows": 20000},
        tmp_path / "g.json",
    )
    assert meta["distinct_sentences"] == 56956 and meta["rows"] == {"train": 20000}
    _, splits = load_corpus(tmp_path / "g.json")
    sents = [r["sentence"] for r in splits["train"]]
    assert len(set(sents)) == len(sents) and all(s == s.strip() and "\r" not in s for s in sents)


def test_snli_test_split(tmp_path):
    meta = prepare("snli", {"source": {"type": "local", "path": str(SHARED / "snli")}}, tmp_path / "n.json")
    assert meta["rows"] == {"test": 9824}
    _, splits = load_corpus(tmp_path / "n.json")
    assert {r["label"] for r in splits["test"]} == {"entailment", "neutral", "contradiction"}
    assert not splits["test"][0]["sentence1"].startswith("\ufeff")


@pytest.fixture
def bad_stsb(tmp_path):
    d = tmp_path / "stsb"
    d.mkdir()
    for split in ("train", "dev", "test"):
        shutil.copy(SHARED / f"stsb/sts-{split}.csv", d / f"sts-{split}.csv")
    lines = (d / "sts-dev.csv").read_text().splitlines(keepends=True)
    f = lines[9].split("\t")
    f[4] = "7.5"
    lines[9] = "\t".join(f)
    f = lines[19].split("\t")
    f[5] = "  "
    lines[19] = "\t".join(f)
    (d / "sts-dev.csv").write_text("".join(lines))
    return d


def test_bad_rows_name_file_and_line(bad_stsb, tmp_path):
    with pytest.raises(DataError, match=r"sts-dev.csv:10: score 7.5 is outside \[0, 5\]"):
        prepare("stsb", {"source": {"type": "local", "path": str(bad_stsb)}}, tmp_path / "s.json")
    assert not (tmp_path / "s.json").exists()


def test_bad_rows_skipped_and_counted_when_asked(bad_stsb, tmp_path):
    meta = prepare(
        "stsb", {"source": {"type": "local", "path": str(bad_stsb)}, "on_bad_row": "skip"}, tmp_path / "s.json"
    )
    assert meta["n_skipped"] == 2 and meta["rows"]["dev"] == 1498
    assert any("sts-dev.csv:20: empty sentence" in s for s in meta["skipped"])


def test_row_count_verification(tmp_path):
    d = tmp_path / "stsb"
    d.mkdir()
    for split in ("train", "dev", "test"):
        lines = (SHARED / f"stsb/sts-{split}.csv").read_text().splitlines(keepends=True)
        (d / f"sts-{split}.csv").write_text("".join(lines[:100]))
    with pytest.raises(DataError, match="100 rows, the canonical STS-B train split has 5749"):
        prepare("stsb", {"source": {"type": "local", "path": str(d)}}, tmp_path / "s.json")
    meta = prepare("stsb", {"source": {"type": "local", "path": str(d)}, "verify_rows": False}, tmp_path / "s.json")
    assert meta["rows"]["train"] == 100


def test_missing_local_path_and_unreachable_url(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare("stsb", {"source": {"type": "local", "path": str(tmp_path / "nope")}}, tmp_path / "s.json")
    with pytest.raises(DataError, match="cannot download"):
        prepare(
            "stsb", {"source": {"type": "url", "url": "http://127.0.0.1:9/stsbenchmark.tar.gz"}}, tmp_path / "s.json"
        )


def test_corpora_rule_with_a_small_slice(tmp_path):
    cfg = {
        "data": {
            "stsb": {
                "source": {"type": "local", "path": str(SHARED / "stsb")},
                "limit": {"train": 300, "dev": 100, "test": 100},
            },
            "kb": {
                "kind": "genericskb",
                "source": {"type": "local", "path": str(SHARED / "genericskb")},
                "max_rows": 500,
            },
        }
    }
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    wd = tmp_path / "wd"
    wd.mkdir()
    snakemake(wd, configfile=p)
    meta = json.loads((wd / "resources/data/stsb.json").read_text())["meta"]
    assert meta["rows"] == {"train": 300, "dev": 100, "test": 100}
    assert json.loads((wd / "resources/data/kb.json").read_text())["meta"]["rows"] == {"train": 500}
    assert "Nothing to be done" in snakemake(wd, "--dry-run", configfile=p).stdout


def test_source_list_falls_back_in_order_and_records_the_one_used(tmp_path):
    spec = {
        "source": [
            {"type": "local", "path": str(tmp_path / "nowhere")},
            {"type": "local", "path": str(SHARED / "snli")},
        ]
    }
    meta = prepare("snli", spec, tmp_path / "n.json")
    assert meta["source"] == spec["source"][1] and meta["rows"] == {"test": 9824}
    spec = {"source": [{"type": "local", "path": str(tmp_path / "a")}, {"type": "local", "path": str(tmp_path / "b")}]}
    with pytest.raises(
        DataError,
        match=r"corpus 'snli': no source worked:\n.*source 1 \(local\).*'[^']*a' does not "
        r"exist\n.*source 2 \(local\)",
    ):
        prepare("snli", spec, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_snli_canonical_tab_separated_txt(tmp_path):
    """The canonical snli_1.0.zip holds tab-separated .txt files with more columns and unbalanced quotes."""
    src = tmp_path / "snli_1.0"
    src.mkdir()
    head = "gold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1\tsentence2\tcaptionID\tpairID"
    rows = [
        'neutral\t( A )\t( B )\tA "quoted man.\tA man.\t1\t1',
        "-\t( C )\t( D )\tC.\tD.\t2\t2",
        "contradiction\t( E )\t( F )\tE.\tF.\t3\t3",
    ]
    (src / "snli_1.0_dev.txt").write_text("\n".join([head, *rows]) + "\n")
    meta = prepare("snli", {"source": {"type": "local", "path": str(tmp_path)}}, tmp_path / "n.json")
    assert meta["rows"] == {"dev": 2} and meta["no_gold_label"] == {"dev": 1}
    _, splits = load_corpus(tmp_path / "n.json")
    assert splits["dev"][0]["sentence1"] == 'A "quoted man.' and splits["dev"][1]["label"] == "contradiction"


def test_hf_source_fails_clearly_when_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    spec = {"source": {"type": "hf", "dataset": "sentence-transformers/stsb"}}
    with pytest.raises(
        DataError,
        match=r"corpus 'stsb': .*(pip install datasets|cannot load "
        r"'sentence-transformers/stsb')",
    ):
        prepare("stsb", spec, tmp_path / "s.json")
    assert not (tmp_path / "s.json").exists()


def test_corpus_sentences_are_distinct_with_stable_ids(tmp_path):
    from repgeom.corpora import corpus_sentences, sentence_id

    prepare("stsb", {"source": {"type": "local", "path": str(SHARED / "stsb")}}, tmp_path / "s.json")
    ids, texts = corpus_sentences(tmp_path / "s.json")
    assert len(texts) == len(set(texts)) == len(set(ids)) == 15457  # distinct sentences over the three splits
    assert ids[:3] == [sentence_id(t) for t in texts[:3]] and len(ids[0]) == 16


def test_a_seeded_limit_samples_across_the_file_and_keeps_its_order():
    """`limit_seed` keeps a seeded sample in file order (STS-B's files are ordered by genre); without it, the first
    rows; the same seed, the same rows."""
    from repgeom.corpora.store import limit_rows

    rows = {"train": [{"genre": "captions" if i < 50 else "news", "i": i} for i in range(100)], "dev": [{"i": 0}]}
    first = limit_rows(rows, {"train": 10})
    assert [r["i"] for r in first["train"]] == list(range(10)) and first["dev"] == rows["dev"]
    got = limit_rows(rows, {"train": 10}, seed=0)["train"]
    idx = [r["i"] for r in got]
    assert len(idx) == 10 and idx == sorted(idx) and {r["genre"] for r in got} == {"captions", "news"}
    assert got == limit_rows(rows, {"train": 10}, seed=0)["train"] != limit_rows(rows, {"train": 10}, seed=1)["train"]


def test_the_bad_rows_share_is_of_the_rows_read_not_of_those_a_limit_keeps(tmp_path):
    from repgeom.corpora import prepare

    lines = ["s1\ts2\tscore"] + [f"a{i}\tb{i}\t{i % 5}" for i in range(97)] + ["x\ty\tbad"] * 3
    (tmp_path / "t.tsv").write_text("\n".join(lines) + "\n")
    spec = {
        "kind": "pairs",
        "source": {"type": "local", "path": str(tmp_path / "t.tsv")},
        "columns": {"sentence1": "s1", "sentence2": "s2", "score": "score"},
        "score_range": [0, 5],
        "on_bad_row": "skip",
        "limit": {"test": 10},
    }
    meta = prepare("p", spec, tmp_path / "p.json")  # 3 of 100 read are bad: under 5 %, though 3 > 5 % of 10
    assert meta["rows"] == {"test": 10} and meta["n_skipped"] == 3
