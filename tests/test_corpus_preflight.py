"""A local corpus source is checked before any job (issue 36, item 3): its path, the files its kind reads, their
encoding and header columns; a source list passes a missing local copy on to the next source, as the corpora job
does; a corpus already made is not checked (its source may be gone); the Snakefile refuses at DAG time."""

import json
import os

import pytest
import yaml
from conftest import snakemake

from repgeom.corpora import prepare
from repgeom.corpora.errors import DataError
from repgeom.corpora.preflight import source_problems

PAIRS = {
    "kind": "pairs",
    "format": {"delimiter": "\t"},
    "columns": {"sentence1": "s1", "sentence2": "s2", "score": "score"},
    "score_range": [0, 5],
}


def _pairs(tmp_path, header="s1\ts2\tscore", rows=("a b\tc d\t3.5",), name="t.tsv", **extra):
    folder = tmp_path / "pairs"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return {**PAIRS, "source": {"type": "local", "path": str(folder)}, **extra}


def test_a_good_local_table_has_no_problem_and_prepares(tmp_path):
    entry = _pairs(tmp_path)
    assert source_problems("p", entry) == []
    assert prepare("p", entry, tmp_path / "p.json")["rows"] == {"test": 1}


def test_a_missing_local_path_names_key_path_and_fix(tmp_path):
    [problem] = source_problems("p", {**PAIRS, "source": {"type": "local", "path": "no/such/dir"}})
    assert "data.p.source.path" in problem and "'no/such/dir'" in problem
    assert os.getcwd() in problem and "add a url or hf source" in problem


def test_a_missing_local_copy_before_a_download_is_fine(tmp_path):
    entry = {"source": [{"type": "local", "path": str(tmp_path / "gone")}, {"type": "url", "url": "https://x/y.tgz"}]}
    assert source_problems("stsb", entry) == []


def test_every_local_source_missing_lists_each(tmp_path):
    entry = {"source": [{"type": "local", "path": str(tmp_path / "a")}, {"type": "local", "path": str(tmp_path / "b")}]}
    problems = source_problems("stsb", entry)
    assert "none of its local sources" in problems[0]
    assert any("data.stsb.source[0].path" in p for p in problems) and any("source[1]" in p for p in problems)


def test_the_first_local_source_there_is_the_one_checked(tmp_path):
    bad = _pairs(tmp_path, header="x\ty\tz")
    entry = {**bad, "source": [{"type": "local", "path": str(tmp_path / "gone")}, bad["source"]]}
    [problem] = source_problems("p", entry)
    assert "data.p.source[1]" in problem and "no column 's1' for columns.sentence1" in problem
    assert "t.tsv:1" in problem and "the header has ['x', 'y', 'z']" in problem


def test_a_header_without_a_configured_column_fails_before_any_job(tmp_path):
    [problem] = source_problems("p", _pairs(tmp_path, header="s1\ts2\trelatedness"))
    assert "no column 'score' for columns.score" in problem


def test_an_undecodable_head_names_line_column_and_the_encoding_fix(tmp_path):
    entry = _pairs(tmp_path)
    path = tmp_path / "pairs/t.tsv"
    path.write_bytes("s1\ts2\tscore\ncaf\xe9\tb\t1\n".encode("latin-1"))
    [problem] = source_problems("p", entry)
    assert "t.tsv:2:4: not utf-8 text (bytes e9" in problem and "format.encoding" in problem
    entry["format"] = {**entry["format"], "encoding": "latin-1"}
    assert source_problems("p", entry) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_is_named(tmp_path):
    entry = _pairs(tmp_path)
    (tmp_path / "pairs/t.tsv").chmod(0)
    [problem] = source_problems("p", entry)
    assert "t.tsv: cannot be read" in problem


def test_a_folder_without_tables_says_what_it_looked_for(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "README.md").write_text("about the data\n")
    (folder / "README.txt").write_text("about the data\n")
    [problem] = source_problems("p", {**PAIRS, "source": {"type": "local", "path": str(folder)}})
    assert "no file matches *.tsv, *.csv, *.tab, *.txt" in problem and "set files:" in problem
    assert "None" not in problem


def test_a_readme_beside_the_tables_is_not_read(tmp_path):
    entry = _pairs(tmp_path)
    (tmp_path / "pairs/README.txt").write_text("These pairs were scored by three raters.\n")
    (tmp_path / "pairs/LICENSE").write_text("CC-BY\n")
    assert source_problems("p", entry) == []
    assert prepare("p", entry, tmp_path / "p.json")["rows"] == {"test": 1}


def test_snli_and_stsb_files_are_found_as_the_job_finds_them(tmp_path):
    (tmp_path / "snli").mkdir()
    (tmp_path / "snli/snli_test.csv").write_text("label,premise,hypothesis\n")
    [problem] = source_problems("snli", {"source": {"type": "local", "path": str(tmp_path / "snli")}})
    assert "snli_test.csv:1: header lacks ['gold_label', 'sentence1', 'sentence2']" in problem
    (tmp_path / "stsb").mkdir()
    (tmp_path / "stsb/sts-train.csv").write_text("")
    [problem] = source_problems("stsb", {"source": {"type": "local", "path": str(tmp_path / "stsb")}})
    assert "no sts-dev.csv" in problem


def test_a_missing_split_value_lists_the_values_found(tmp_path):
    entry = _pairs(
        tmp_path,
        header="s1\ts2\tscore\tset",
        rows=("a\tb\t1\tTRAIN", "c\td\t2\tTRIAL"),
        columns={**PAIRS["columns"], "split": "set"},
        splits={"train": "TRAIN", "test": "TEST"},
        on_bad_row="skip",
        max_bad_fraction=1.0,
    )
    with pytest.raises(DataError) as e:
        prepare("p", entry, tmp_path / "p.json")
    assert "no row of split(s) ['test'] (values ['TEST'])" in str(e.value) and "['TRAIN', 'TRIAL']" in str(e.value)


def test_the_workflow_refuses_a_bad_header_at_dag_time_and_skips_a_made_corpus(tmp_path):
    entry = _pairs(tmp_path, header="s1\ts2\trelatedness")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"mine": entry}}))
    wd = tmp_path / "wd"
    wd.mkdir()
    proc = snakemake(wd, "-n", "resources/data/mine.json", configfile=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "a corpus cannot be read" in out and "no column 'score'" in out, out
    assert "Job stats" not in out and not (wd / "logs").exists()
    # a corpus already made is not checked again: its source may have gone since
    (wd / "resources/data").mkdir(parents=True)
    (wd / "resources/data/mine.json").write_text("{}")
    proc = snakemake(wd, "-n", "resources/data/mine.json", configfile=cfg, check=False)
    assert "a corpus cannot be read" not in proc.stdout + proc.stderr


def test_delimiter_auto_reads_a_csv_copy_and_a_tsv_archive_alike(tmp_path):
    """`format.delimiter: auto` goes by each file's suffix, so that one entry reads SNLI's CSV copy and the canonical
    archive's tab-separated file (the tour's transfer set); a suffix that names no delimiter is an error."""
    rows = [("entailment", 'A man says "hi".', "A man speaks."), ("contradiction", "A dog, wet.", "A cat.")]
    csv_path, tsv_path = tmp_path / "t.csv", tmp_path / "snli_1.0_test.txt"
    with open(csv_path, "w", newline="") as fh:
        import csv

        w = csv.writer(fh)
        w.writerow(["gold_label", "sentence1", "sentence2"])
        w.writerows(rows)
    tsv_path.write_text("gold_label\tsentence1_parse\tsentence1\tsentence2\n" + "".join(
        f"{g}\t( x )\t{a}\t{b}\n" for g, a, b in rows))  # fmt: skip
    entry = {
        "kind": "pairs",
        "format": {"delimiter": "auto"},
        "columns": {"sentence1": "sentence1", "sentence2": "sentence2", "score": "gold_label"},
        "score_range": [0, 1],
        "labels": {"entailment": 1, "neutral": 0.5, "contradiction": 0},
    }
    got = []
    for path in (csv_path, tsv_path):
        e = {**entry, "source": {"type": "local", "path": str(path)}}
        assert source_problems("s", e) == []
        prepare("s", e, tmp_path / f"{path.stem}.json")
        data = json.loads((tmp_path / f"{path.stem}.json").read_text())["splits"]["test"]
        got.append([(r["sentence1"], r["sentence2"], r["score"]) for r in data])
    assert got[0] == got[1] == [('A man says "hi".', "A man speaks.", 5.0), ("A dog, wet.", "A cat.", 0.0)]
    (tmp_path / "t.dat").write_text("x")
    [problem] = source_problems("s", {**entry, "source": {"type": "local", "path": str(tmp_path / "t.dat")}})
    assert "format.delimiter is auto, but .dat names no delimiter" in problem
