"""The ``hf`` corpus source for real: ``datasets.load_dataset`` downloads, through ``HF_ENDPOINT``, from a loopback
server speaking the hub's dataset interface (:mod:`hub_server`), with parquet files in the layout of the real hub
repos (``sentence-transformers/stsb``, ``community-datasets/generics_kb``, ``stanfordnlp/snli``) written from slices
of ../shared/data. Each prepare runs in a fresh process with its own ``HF_HOME`` (``datasets`` and
``huggingface_hub`` read ``HF_ENDPOINT`` when imported), and must give the rows the local copy of the same slice
gives."""

import io
import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, SHARED
from hub_server import FakeHub

from repgeom.corpora import load_corpus, prepare

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("datasets")
pytestmark = pytest.mark.skipif(not SHARED.exists(), reason="../shared/data not present")

STSB, GKB, SNLI = "sentence-transformers/stsb", "community-datasets/generics_kb", "stanfordnlp/snli"
N = 200  # rows of each slice
MARK = "@@results "
RUN = """
import json, sys, time
from repgeom.corpora import DataError, prepare
jobs, fast_retries = json.loads(sys.argv[1])
if fast_retries:  # huggingface_hub's own back-off (1, 2, 4, 8, 8 s) is recorded, not slept
    import huggingface_hub.utils._http as http
    class Clock:
        waits = []
        def __getattr__(self, k):
            return getattr(time, k)
        def sleep(self, s):
            self.waits.append(s)
    http.time = Clock()
results = []
for name, spec, out in jobs:
    try:
        results.append({"rows": prepare(name, spec, out)["rows"]})
    except DataError as e:
        results.append({"error": str(e), "retryable": e.retryable})
waits = http.time.waits if fast_retries else []
print(MARK + json.dumps({"results": results, "waits": waits}))
""".replace("MARK", repr(MARK))


def hf_prepare(tmp_path, endpoint, jobs, home="hf", fast_retries=False):
    """Run ``prepare(name, spec, out)`` for each job in one process against ``endpoint`` with a fresh cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(tmp_path / home), HF_DATASETS_CACHE=str(tmp_path / home / "datasets"))
    env.update(HF_ENDPOINT=endpoint, HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(ROOT / "src"))
    cmd = [sys.executable, "-c", RUN, json.dumps([[[n, s, str(o)] for n, s, o in jobs], fast_retries])]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and MARK in proc.stdout, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split(MARK, 1)[1])
    return out["results"], out["waits"], proc.stderr


def parquet(columns: dict) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


def card(configs: dict) -> bytes:
    """A dataset card as the hub's parquet repos have it: ``dataset_info`` (features, split sizes) and
    ``configs`` (each split's files), per config: ``{config: (features, {split: (path glob, rows)})}``."""
    info = [
        {
            "config_name": c,
            "features": features,
            "splits": [{"name": s, "num_examples": n} for s, (_, n) in splits.items()],
        }
        for c, (features, splits) in configs.items()
    ]
    cfgs = [
        {"config_name": c, "data_files": [{"split": s, "path": p} for s, (p, _) in splits.items()]}
        for c, (_, splits) in configs.items()
    ]
    meta = {"license": "cc-by-sa-4.0", "dataset_info": info if len(info) > 1 else info[0], "configs": cfgs}
    return f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n\n# test copy\n".encode()


def string(*names):
    return [{"name": n, "dtype": "string"} for n in names]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The slices as hub repo files and as local copies: ``{kind: (repo files, local folder)}``."""
    root = tmp_path_factory.mktemp("slices")
    out = {}

    # STS-B: the first N rows of each split; sentence-transformers/stsb scores are the 0–5 scores / 5
    (root / "stsb").mkdir()
    files, splits = {}, {}
    for hf_split, split in (("train", "train"), ("validation", "dev"), ("test", "test")):
        lines = (SHARED / "stsb" / f"sts-{split}.csv").read_text(encoding="utf-8").splitlines(keepends=True)[:N]
        (root / "stsb" / f"sts-{split}.csv").write_text("".join(lines), encoding="utf-8")
        f = [line.rstrip("\r\n").split("\t") for line in lines]
        files[f"data/{hf_split}-00000-of-00001.parquet"] = parquet(
            {"sentence1": [r[5] for r in f], "sentence2": [r[6] for r in f], "score": [float(r[4]) / 5 for r in f]}
        )
        splits[hf_split] = (f"data/{hf_split}-*", len(f))
    feats = string("sentence1", "sentence2") + [{"name": "score", "dtype": "float64"}]
    out["stsb"] = ({"README.md": card({"default": (feats, splits)}), **files}, root / "stsb")

    # GenericsKB: config generics_kb_best holds N + 50 rows; another config (generics_kb) other rows
    (root / "genericskb").mkdir()
    lines = (SHARED / "genericskb" / "GenericsKB.txt").read_bytes().decode("utf-8").splitlines(keepends=True)
    (root / "genericskb" / "GenericsKB.txt").write_text("".join(lines[: N + 50]), encoding="utf-8", newline="")

    def gkb(rows):
        f = [line.rstrip("\r\n").split("\t") for line in rows]
        n = len(f)
        return parquet(
            {
                "source": ["Waterloo"] * n,
                "term": [r[0] for r in f],
                "quantifier_frequency": [""] * n,
                "quantifier_number": [""] * n,
                "generic_sentence": [r[1] for r in f],
                "score": [float(r[2]) for r in f],
            }
        )

    feats = string("source", "term", "quantifier_frequency", "quantifier_number", "generic_sentence")
    feats += [{"name": "score", "dtype": "float64"}]
    files = {
        "generics_kb_best/train-00000-of-00001.parquet": gkb(lines[: N + 50]),
        "generics_kb/train-00000-of-00001.parquet": gkb(lines[5000:5020]),
    }
    meta = {
        "generics_kb_best": (feats, {"train": ("generics_kb_best/train-*", N + 50)}),
        "generics_kb": (feats, {"train": ("generics_kb/train-*", 20)}),
    }
    out["genericskb"] = ({"README.md": card(meta), **files}, root / "genericskb")

    # SNLI: the test split is N rows of snli_test.csv and two without a gold label (-1); train and validation
    # are other rows of it
    (root / "snli").mkdir()
    text = (SHARED / "snli" / "snli_test.csv").read_text(encoding="utf-8-sig").splitlines(keepends=True)
    (root / "snli" / "snli_test.csv").write_text("".join(text[: N + 1]), encoding="utf-8")
    import csv

    rows = list(csv.DictReader(text))
    ids = {"entailment": 0, "neutral": 1, "contradiction": 2}

    def snli(rs, no_gold=0):
        rs = [(r["sentence1"], r["sentence2"], ids[r["gold_label"]]) for r in rs]
        rs += [(f"A premise {i} nobody agreed on.", f"A hypothesis {i}.", -1) for i in range(no_gold)]
        return parquet({"premise": [r[0] for r in rs], "hypothesis": [r[1] for r in rs], "label": [r[2] for r in rs]})

    label = {
        "name": "label",
        "dtype": {"class_label": {"names": {"0": "entailment", "1": "neutral", "2": "contradiction"}}},
    }
    files = {
        "plain_text/test-00000-of-00001.parquet": snli(rows[:N], no_gold=2),
        "plain_text/validation-00000-of-00001.parquet": snli(rows[N : N + 30]),
        "plain_text/train-00000-of-00001.parquet": snli(rows[N + 30 : N + 80]),
    }
    splits = {s: (f"plain_text/{s}-*", n) for s, n in (("train", 50), ("validation", 30), ("test", N + 2))}
    out["snli"] = ({"README.md": card({"plain_text": (string("premise", "hypothesis") + [label], splits)}), **files},
                   root / "snli")  # fmt: skip
    return out


def local(tmp_path, name, folder, **extra):
    out = tmp_path / f"local-{name}.json"
    prepare(name, {"source": {"type": "local", "path": str(folder)}, "verify_rows": False, **extra}, out)
    return load_corpus(out)


def test_hf_datasets_prepare_the_rows_of_the_local_copies(tmp_path, data):
    with FakeHub() as hub:
        commits = {kind: hub.push_dataset(repo, data[kind][0]) for kind, repo in zip(data, (STSB, GKB, SNLI))}
        src = {
            "stsb": {"type": "hf", "dataset": STSB, "revision": commits["stsb"]},
            "genericskb": {
                "type": "hf",
                "dataset": GKB,
                "config": "generics_kb_best",
                "revision": commits["genericskb"],
            },
            "snli": {"type": "hf", "dataset": SNLI, "revision": commits["snli"]},
        }
        fallback = [{"type": "local", "path": str(tmp_path / "not-here")}, src["stsb"]]
        jobs = [
            ("stsb", {"source": src["stsb"], "verify_rows": False}, tmp_path / "stsb.json"),
            ("genericskb", {"source": src["genericskb"], "max_rows": N}, tmp_path / "genericskb.json"),
            ("snli", {"source": src["snli"]}, tmp_path / "snli.json"),
            ("stsb", {"source": fallback, "verify_rows": False}, tmp_path / "fallback.json"),
        ]
        results, _, stderr = hf_prepare(tmp_path, hub.url, jobs)
    assert all("rows" in r for r in results), results
    assert results[0]["rows"] == {"train": N, "dev": N, "test": N} and results[1]["rows"] == {"train": N}
    assert results[2]["rows"] == {"train": 50, "dev": 30, "test": N}

    # the requests of datasets 5.2 for a pinned commit: the card, the repo's info, its listing, the parquet files
    c = commits["stsb"]
    seen = {(m, p) for m, p, _ in hub.requests}
    assert ("GET", f"/datasets/{STSB}/resolve/{c}/README.md") in seen
    assert ("GET", f"/api/datasets/{STSB}/revision/{c}") in seen
    assert ("GET", f"/api/datasets/{STSB}/tree/{c}?recursive=false&expand=false") in seen
    for split in ("train", "validation", "test"):
        assert ("GET", f"/datasets/{STSB}/resolve/{c}/data/{split}-00000-of-00001.parquet") in seen
    assert any(p.startswith(f"/datasets/{GKB}/resolve/{commits['genericskb']}/generics_kb_best/") for _, p in seen)
    assert not any("/generics_kb/train" in p for _, p in seen)  # the other config is not read

    # the same rows as the local copies of the slices: sentences, scores within 1e-6, labels
    meta, hf = load_corpus(tmp_path / "stsb.json")
    assert meta["source"] == src["stsb"]
    _, loc = local(tmp_path, "stsb", data["stsb"][1])
    for split in ("train", "dev", "test"):
        assert [(r["sentence1"], r["sentence2"]) for r in hf[split]] == [
            (r["sentence1"], r["sentence2"]) for r in loc[split]
        ]
        assert max(abs(a["score"] - b["score"]) for a, b in zip(hf[split], loc[split])) < 1e-6
    _, gkb = load_corpus(tmp_path / "genericskb.json")
    _, loc = local(tmp_path, "genericskb", data["genericskb"][1], max_rows=N)
    assert [r["sentence"] for r in gkb["train"]] == [r["sentence"] for r in loc["train"]]
    meta, snli = load_corpus(tmp_path / "snli.json")
    _, loc = local(tmp_path, "snli", data["snli"][1])
    assert meta["no_gold_label"]["test"] == 2
    key = ("sentence1", "sentence2", "label")
    assert [[r[k] for k in key] for r in snli["test"]] == [[r[k] for k in key] for r in loc["test"]]

    # a source list whose local copy is missing falls through to the hub
    meta, fell = load_corpus(tmp_path / "fallback.json")
    assert meta["source"] == src["stsb"] and fell == hf
    assert "source 1 of 2 (local) failed: local path" in stderr


def test_hf_errors_name_the_corpus_the_source_and_the_fix(tmp_path, data):
    def job(dataset=STSB, revision=None, out="bad"):
        spec = {"source": {"type": "hf", "dataset": dataset, "revision": revision}, "verify_rows": False}
        return ("stsb", spec, tmp_path / f"{out}.json")

    fix = "check the dataset id, config and revision on the hub, or use a local source"
    with FakeHub() as hub:
        commit = hub.push_dataset(STSB, data["stsb"][0])
        jobs = [job(revision=commit, out="ok"), job("sentence-transformers/nope", commit), job(revision="v9")]
        (ok, nope, v9, gone), _, _ = hf_prepare(tmp_path, hub.url, [*jobs, job(revision="f" * 40)])
        where = f"from {hub.url} with datasets: DatasetNotFoundError"
    assert ok == {"rows": {"train": N, "dev": N, "test": N}}
    assert nope["error"] == (
        f"corpus 'stsb': source 1 (hf): cannot load 'sentence-transformers/nope' (config None, revision {commit}, "
        f"split train) {where}: Dataset 'sentence-transformers/nope' doesn't exist on the Hub or cannot be accessed; "
        f"{fix}"
    )
    for rev, res in (("v9", v9), ("f" * 40, gone)):
        assert res["error"] == (
            f"corpus 'stsb': source 1 (hf): cannot load '{STSB}' (config None, revision {rev}, split train) {where}: "
            f"Revision '{rev}' doesn't exist for dataset '{STSB}' on the Hub; {fix}"
        )
    assert [r["retryable"] for r in (nope, v9, gone)] == [False] * 3  # a 404 is final (datasets: an OSError)

    # the server is down (connection refused): huggingface_hub tries 6 times, then an error a retry may pass
    (down,), waits, _ = hf_prepare(tmp_path, hub.url, [job(revision=commit)], home="cold", fast_retries=True)
    assert down["retryable"] is True and waits == [1, 2, 4, 8, 8]
    assert down["error"] == (
        f"corpus 'stsb': source 1 (hf): cannot load '{STSB}' (config None, revision {commit}, split train) from "
        f"{hub.url} with datasets: ConnectionError: Couldn't reach '{STSB}' on the Hub (LocalEntryNotFoundError); "
        "the hub did not answer: another try may work, or use a local source"
    )
    # down, with a warm cache: datasets falls back to its latest cached copy, whatever was pinned; the cached
    # commit is what was pinned: used; another commit: refused, not silently replaced by the cached one
    jobs = [job(revision=commit, out="cached"), job(revision="e" * 40)]
    (cached, other), _, stderr = hf_prepare(tmp_path, hub.url, jobs, fast_retries=True)
    assert "Using the latest cached version of the dataset" in stderr
    assert cached == ok and load_corpus(tmp_path / "cached.json")[1] == load_corpus(tmp_path / "ok.json")[1]
    assert other["retryable"] is True and other["error"] == (
        f"corpus 'stsb': source 1 (hf): cannot load '{STSB}' (config None, revision {'e' * 40}, split train) from "
        f"{hub.url}: the hub did not answer and datasets gave its cached copy of commit {commit}, not the pinned "
        "one; another try may work, or use a local source"
    )
    assert not (tmp_path / "bad.json").exists()
