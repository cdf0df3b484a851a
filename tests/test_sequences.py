import itertools

import pytest

from repgeom.artifacts import ArtifactError
from repgeom.sequences import FAMILIES, build, load_dataset, render, window_starts, write_dataset

KNOWN = {
    "consecutive": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    "even": [2, 4, 6, 8, 10, 12, 14, 16, 18, 20],
    "odd": [1, 3, 5, 7, 9, 11, 13, 15, 17, 19],
    "primes": [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71],
    "composites": [4, 6, 8, 9, 10, 12, 14, 15, 16, 18, 20, 21, 22, 24, 25, 26, 27, 28, 30, 32],
    # OEIS A005132, first 20 terms
    "recaman": [0, 1, 3, 6, 2, 7, 13, 20, 12, 21, 11, 22, 10, 23, 9, 24, 8, 25, 43, 62],
    "squares": [1, 4, 9, 16, 25, 36, 49, 64, 81, 100],
    "fibonacci": [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89],
    "triangular": [1, 3, 6, 10, 15, 21, 28, 36, 45, 55],
    "powers_of_two": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_family_known_terms(name):
    assert FAMILIES[name].terms(len(KNOWN[name])) == KNOWN[name]


def test_every_registered_family_is_tested():
    assert set(FAMILIES) == set(KNOWN)


def test_terms_with_start_is_a_slice():
    assert FAMILIES["primes"].terms(5, start=10) == KNOWN["primes"][10:15]


def test_primes_and_composites_partition_the_integers_from_2():
    p = FAMILIES["primes"].terms(200)
    c = FAMILIES["composites"].terms(1000)
    top = min(p[-1], c[-1])
    ps, cs = {n for n in p if n <= top}, {n for n in c if n <= top}
    assert not (ps & cs)
    assert ps | cs == set(range(2, top + 1))


def test_recaman_revisits_values_but_windows_are_index_disjoint():
    recs = build({"families": ["recaman", "even"], "n_sequences": 5, "length": 10, "max_chars": 10_000})
    recs = [r for r in recs if r.family == "recaman"]
    spans = [set(range(r.first_index, r.first_index + r.n_terms)) for r in recs]
    for a, b in itertools.combinations(spans, 2):
        assert not (a & b)
    assert FAMILIES["recaman"].terms(25)[20] == FAMILIES["recaman"].terms(25)[24] == 42


@pytest.mark.parametrize("gap,offset", [(0, 0), (3, 0), (0, 7), (2, 5)])
def test_windows_non_overlapping_and_consecutive(gap, offset):
    starts = window_starts(4, 50, offset, gap)
    assert starts[0] == offset
    assert all(b - a == 50 + gap for a, b in zip(starts, starts[1:]))
    recs = build(
        {
            "families": ["primes", "even"],
            "n_sequences": 4,
            "length": 50,
            "max_chars": 100_000,
            "start_offset": offset,
            "gap": gap,
        }
    )
    for fam in ("primes", "even"):
        terms = FAMILIES[fam].terms(offset + 4 * (50 + gap))
        fam_recs = [r for r in recs if r.family == fam]
        assert [r.first_index for r in fam_recs] == starts
        for r in fam_recs:
            assert r.text == ", ".join(map(str, terms[r.first_index : r.first_index + 50]))
        values = [set(map(int, r.text.split(", "))) for r in fam_recs]
        for a, b in itertools.combinations(values, 2):
            assert not (a & b)  # these families are strictly increasing: values disjoint too


def test_family_offsets_override_the_start():
    recs = build(
        {
            "families": ["odd", "even"],
            "n_sequences": 1,
            "length": 3,
            "max_chars": 100,
            "start_offset": 0,
            "family_offsets": {"odd": 10},
        }
    )
    assert recs[0].text == "21, 23, 25" and recs[1].text == "2, 4, 6"


def test_render_caps_at_whole_terms():
    text, n, cut = render([100, 200, 300, 400], max_chars=12)
    assert (text, n, cut) == ("100, 200", 2, True)
    assert len(text) <= 12
    text, n, cut = render([100, 200, 300], max_chars=13)
    assert (text, n, cut) == ("100, 200, 300", 3, False)


def test_render_never_splits_a_single_long_term():
    assert render([123456789], max_chars=3) == ("123456789", 1, False)


def test_dataset_artifact_roundtrip_and_truncation_count(tmp_path):
    spec = {"families": ["consecutive", "powers_of_two"], "n_sequences": 2, "length": 30, "max_chars": 60}
    meta = write_dataset(spec, tmp_path / "d.json", "d")
    m2, recs = load_dataset(tmp_path / "d.json")
    assert m2["texts_sha256"] == meta["texts_sha256"]
    assert meta["n_truncated"] == sum(r["truncated"] for r in recs) > 0
    assert all(len(r["text"]) <= 60 for r in recs)
    assert [r["id"] for r in recs] == ["consecutive_000", "consecutive_001", "powers_of_two_000", "powers_of_two_001"]


def test_dataset_artifact_edit_is_detected(tmp_path):
    write_dataset(
        {"families": ["even", "odd"], "n_sequences": 1, "length": 3, "max_chars": 100}, tmp_path / "d.json", "d"
    )
    p = tmp_path / "d.json"
    p.write_text(p.read_text().replace('"2, 4, 6"', '"2, 4, 8"'))
    with pytest.raises(ArtifactError, match="sha256"):
        load_dataset(p)
