"""A property of the pair-table parser (issue 36, item 7): a generated table, in every supported layout, with
quotes, tabs, CR/LF/CRLF line ends, a byte-order mark, non-ASCII text, empty and very long fields, parses to exactly
the generated rows (sentences stripped, as documented), or stops with an error that names the file and a line of
it. Never a silent difference."""

import codecs
import csv
import io
import re

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from repgeom.corpora.errors import DataError  # noqa: E402
from repgeom.corpora.parsers import parse_pairs_file  # noqa: E402

TEXT = st.text(alphabet=st.sampled_from(list("ab \"',;\t\r\n\u00e9\u4e2d\U0001f600 xyz1.3")), max_size=12)
LONG = st.builds(lambda c, n: c * n, st.sampled_from(["w ", "\u00e9", '"']), st.integers(70_000, 80_000))
FIELD = st.one_of(TEXT, TEXT, TEXT, LONG)
ROW = st.tuples(FIELD, FIELD, st.floats(0, 5, allow_nan=False).map(repr))
LAYOUT = st.fixed_dictionaries(
    {
        "delimiter": st.sampled_from(["\t", ","]),
        "quoting": st.sampled_from(["auto", "csv", "none"]),
        "header": st.booleans(),
        "newline": st.sampled_from(["\n", "\r\n"]),
        "bom": st.booleans(),
        "encoding": st.sampled_from(["utf-8", "utf-16"]),
    }
)


def _write(rows, lay) -> bytes:
    """The table as a writer of that layout makes it: quoted where CSV quoting is on, else fields as they are."""
    quoting = lay["quoting"] if lay["quoting"] != "auto" else ("none" if lay["delimiter"] == "\t" else "csv")
    buf = io.StringIO()
    if quoting == "csv":
        w = csv.writer(buf, delimiter=lay["delimiter"], lineterminator=lay["newline"])
        if lay["header"]:
            w.writerow(["s1", "s2", "y"])
        w.writerows(rows)
    else:
        if lay["header"]:
            buf.write(lay["delimiter"].join(["s1", "s2", "y"]) + lay["newline"])
        for r in rows:
            buf.write(lay["delimiter"].join(r) + lay["newline"])
    data = buf.getvalue().encode(lay["encoding"])
    if lay["bom"] and lay["encoding"] == "utf-8":
        data = codecs.BOM_UTF8 + data
    return data


def _representable(rows, lay) -> bool:
    """Without a header and without quoting, a delimiter inside a sentence shifts the columns after it, and nothing in
    the file tells (real STS files have rows of 7 and of 9 fields): such tables are not generated; the README says
    to give such a table a header, under which the row is refused."""
    quoting = lay["quoting"] if lay["quoting"] != "auto" else ("none" if lay["delimiter"] == "\t" else "csv")
    return lay["header"] or quoting == "csv" or not any(lay["delimiter"] in f for r in rows for f in r[:2])


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(ROW, min_size=1, max_size=6), lay=LAYOUT)
def test_parsed_rows_equal_the_generated_ones_or_an_error_names_file_and_line(tmp_path, rows, lay):
    hypothesis.assume(_representable(rows, lay))
    path = tmp_path / "table.txt"
    data = _write(rows, lay)
    path.write_bytes(data)
    cols = (
        {"sentence1": "s1", "sentence2": "s2", "score": "y"}
        if lay["header"]
        else {"sentence1": 0, "sentence2": 1, "score": 2}
    )
    try:
        got = parse_pairs_file(
            path, delimiter=lay["delimiter"], header=lay["header"], quoting=lay["quoting"], columns=cols,
            score_range=(0, 5), encoding=lay["encoding"],
        ).rows  # fmt: skip
    except DataError as e:
        m = re.search(re.escape(str(path)) + r":(\d+)", str(e))
        n_lines = data.decode(lay["encoding"]).replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1
        assert m and 1 <= int(m.group(1)) <= n_lines, str(e)
        hypothesis.event(f"refused: {str(e).split(': ', 1)[1][:24]}")
        return
    want = [(a.strip(), b.strip(), float(y)) for a, b, y in rows]
    assert [(r["sentence1"], r["sentence2"], r["raw_score"]) for r in got] == want
    hypothesis.event("parsed: equal to the generated rows")
