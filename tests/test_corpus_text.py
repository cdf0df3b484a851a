"""Corpus files that used to be mangled or crash (issue 36, item 1): quotes inside tab-separated sentences, an
unbalanced quote under CSV quoting, a file in another encoding, a sentence over 128 KiB; every kind of table, every
error naming file, line (and column) and the fix."""

import json

import pytest

from repgeom.corpora import prepare
from repgeom.corpora.errors import DataError
from repgeom.corpora.parsers import parse_pairs_file, parse_stsb_file


def _spec(path, fmt=None, **entry):
    """A pairs entry for a table with the header ``s1 s2 y`` (scores 0–5)."""
    return {
        "kind": "pairs",
        "source": {"type": "local", "path": str(path)},
        "format": {"header": True, **(fmt or {})},
        "columns": {"sentence1": "s1", "sentence2": "s2", "score": "y"},
        "score_range": [0, 5],
        **entry,
    }


def _pairs(path, **fmt):
    spec = _spec(path, fmt)
    out = path.parent / f"{path.stem}.json"
    prepare("p", spec, out)
    return json.loads(out.read_text())["splits"]["test"]


def test_quotes_in_a_tsv_are_text_by_default(tmp_path):
    f = tmp_path / "q.tsv"
    f.write_text('s1\ts2\ty\n"Stop," he said.\tHe said stop.\t4.5\n"Unbalanced start\tsecond\t1.0\nplain\tthird\t2\n')
    rows = _pairs(f)
    assert [r["sentence1"] for r in rows] == ['"Stop," he said.', '"Unbalanced start', "plain"]
    assert [r["score"] for r in rows] == [4.5, 1.0, 2.0]  # no row swallowed


def test_csv_quoting_asked_for_refuses_a_field_over_several_lines(tmp_path):
    f = tmp_path / "q.tsv"
    f.write_text('s1\ts2\ty\nok\tfine\t1\n"Unbalanced start\tsecond\t1.0\nplain\tthird\t2\n')
    with pytest.raises(DataError, match=r"q.tsv:3: a quoted field runs over 2 lines .*quoting: none"):
        _pairs(f, quoting="csv")


def test_csv_quoting_asked_for_refuses_a_tab_inside_a_quoted_tsv_field(tmp_path):
    f = tmp_path / "q.tsv"
    f.write_text('s1\ts2\ty\n"a\tb"\tsecond\t1.0\n')
    with pytest.raises(DataError, match=r"q.tsv:2: a quoted field holds a tab.*quoting: none"):
        _pairs(f, quoting="csv")


def test_a_comma_csv_keeps_its_quoting(tmp_path):
    f = tmp_path / "q.csv"
    f.write_text('s1,s2,y\n"Stop, he said.",He stopped.,4\n')
    assert _pairs(f, delimiter=",")[0]["sentence1"] == "Stop, he said."


def test_another_encoding_is_named_by_line_column_and_bytes_and_can_be_set(tmp_path):
    f = tmp_path / "latin.tsv"
    f.write_bytes("s1\ts2\ty\nok\tfine\t1\nCaf\u00e9 au lait\tcoffee\t3\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.tsv:3:4: not utf-8 text \(bytes e9.*format.encoding"):
        _pairs(f)
    assert _pairs(f, encoding="latin-1")[1]["sentence1"] == "Caf\u00e9 au lait"
    u = tmp_path / "wide.tsv"
    u.write_bytes("s1\ts2\ty\nna\u00efve\tsimple\t2\n".encode("utf-16"))
    assert _pairs(u, encoding="utf-16")[0]["sentence1"] == "na\u00efve"
    with pytest.raises(DataError, match="unknown encoding"):
        _pairs(u, encoding="klingon")


def test_a_byte_order_mark_and_crlf_parse(tmp_path):
    f = tmp_path / "bom.tsv"
    f.write_bytes(b"\xef\xbb\xbfs1\ts2\ty\r\nA\tB\t1\r\n")
    assert _pairs(f) == [{"id": "bom-000002", "sentence1": "A", "sentence2": "B", "score": 1.0, "raw_score": 1.0}]


def test_a_very_long_sentence_is_data_not_a_crash(tmp_path):
    long = "word " * 60000  # 300 KB
    f = tmp_path / "long.csv"
    f.write_text(f's1,s2,y\n"{long.strip()}",short,1\n')
    assert len(_pairs(f, delimiter=",")[0]["sentence1"]) == len(long.strip())


def test_the_stsb_parser_names_line_and_column_of_a_byte_that_is_not_utf8(tmp_path):
    f = tmp_path / "sts-train.csv"
    f.write_bytes(b"main-news\tx\t2012\t1\t4.0\tA man\tA person\nmain-news\tx\t2012\t2\t3.0\tna\xefve\tsimple\n")
    with pytest.raises(DataError, match=r"sts-train.csv:2:26: not utf-8 text \(bytes ef.*iconv"):
        parse_stsb_file(f)


def test_parse_pairs_file_takes_the_encoding(tmp_path):
    f = tmp_path / "x.tsv"
    f.write_bytes("a\tb\t1\n".encode("latin-1"))
    rows = parse_pairs_file(
        f, delimiter="\t", header=False, quoting="auto", columns={"sentence1": 0, "sentence2": 1, "score": 2},
        score_range=(0, 5), encoding="latin-1",
    ).rows  # fmt: skip
    assert rows[0]["sentence1"] == "a"


def test_a_header_only_file_or_all_rows_skipped_is_an_error_naming_the_split(tmp_path):
    f = tmp_path / "empty.tsv"
    f.write_text("s1\ts2\ty\n")
    with pytest.raises(DataError, match=r"corpus 'p': no rows at all: its files hold no data rows \(header only\?\)"):
        _pairs(f)
    g = tmp_path / "bad.tsv"
    g.write_text("s1\ts2\ty\na\tb\tx\n")
    spec = _spec(g, on_bad_row="skip", max_bad_fraction=1.0)
    with pytest.raises(DataError, match=r"no rows at all: all 1 of its rows were skipped as bad \(.*bad.tsv:2: score"):
        prepare("p", spec, tmp_path / "p.json")


@pytest.mark.parametrize("on_duplicate", ["keep", "drop", "error"])
def test_repeated_pairs_are_counted_and_kept_dropped_or_refused(tmp_path, on_duplicate):
    f = tmp_path / "d.tsv"
    f.write_text("s1\ts2\ty\na\tb\t1\nc\td\t2\na\tb\t1\nb\ta\t1\nc\td\t4.5\ne\tf\t3\n")
    spec = _spec(f, on_duplicate=on_duplicate)
    if on_duplicate == "error":
        with pytest.raises(
            DataError, match=r"1 exact, 1 swapped and 1 conflicting repeated pairs.*on_duplicate: keep or drop"
        ):
            prepare("p", spec, tmp_path / "p.json")
        return
    meta = prepare("p", spec, tmp_path / "p.json")
    assert meta["duplicates"] == {"test": {"exact": 1, "swapped": 1, "conflicting": 1}}
    assert "d-000004 repeats d-000002 (exact)" in meta["summary"][0]
    rows = json.loads((tmp_path / "p.json").read_text())["splits"]["test"]
    assert [r["id"] for r in rows] == (
        ["d-000002", "d-000003", "d-000004", "d-000005", "d-000006", "d-000007"]
        if on_duplicate == "keep"
        else ["d-000002", "d-000003", "d-000007"]
    )
