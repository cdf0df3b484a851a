"""One registry per pluggable kind, and the config schema naming exactly its keys."""

import pytest

from repgeom.configure.config import load_schema
from repgeom.registry import Registry, UnknownNameError


def test_registry_lookup_did_you_mean_and_duplicates():
    r = Registry("family")
    r.register("primes", 1)

    @r.register("even")
    def even():
        return 2

    assert list(r) == ["primes", "even"] and r["even"] is even and len(r) == 2 and "primes" in r
    with pytest.raises(UnknownNameError) as e:
        r.get_or_raise("prime", "sequences.numbers.families")
    msg = str(e.value)
    assert (
        "sequences.numbers.families = 'prime'" in msg
        and "did you mean 'primes'" in msg
        and "known: primes, even" in msg
    )
    assert isinstance(e.value, ValueError) and isinstance(e.value, KeyError)
    assert "did you mean" not in r.unknown("zzz")
    with pytest.raises(ValueError, match="registered twice"):
        r.register("even", 3)


def _enum(schema, *path):
    node = schema
    for key in path:
        node = node[key]
    return node["enum"]


def test_schema_enums_equal_registry_keys():
    """A name lives in one place: the registry; the schema's enums are checked against it here."""
    from repgeom.corpora import CORPORA, SOURCES
    from repgeom.embeddings import RUNTIMES
    from repgeom.models import FETCHERS

    s = load_schema()
    d = s["$defs"]
    pairs = {
        "model runtime": (_enum(d, "model", "properties", "runtime"), RUNTIMES),
        "model source type": (_enum(d, "source", "properties", "type"), FETCHERS),
        "corpus kind": (_enum(d, "corpus", "properties", "kind"), CORPORA),
        "corpus source type": (_enum(d, "corpus_source", "properties", "type"), SOURCES),
    }
    from repgeom import sts

    pairs["STS head"] = (_enum(d, "sts_variant", "properties", "head"), sts.HEADS)
    pairs["STS pretraining"] = (_enum(d, "sts_variant", "properties", "pretrain"), sts.PRETRAIN)
    for what, (enum, reg) in pairs.items():
        assert sorted(enum) == sorted(reg), what


def test_families_are_checked_against_the_registry_with_a_suggestion():
    from repgeom.configure.config import ConfigError, validate_config

    with pytest.raises(ConfigError, match="did you mean 'primes'"):
        validate_config({"sequences": {"numbers": {"families": ["even", "prime"]}}})
