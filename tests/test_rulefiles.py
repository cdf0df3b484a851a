"""repgeom.rulefiles: the wrapper script each rule runs, read from the rules files as Snakemake reads them."""

from conftest import ROOT

from repgeom.rulefiles import rule_scripts


def test_every_script_rule_maps_to_its_wrapper_and_every_wrapper_to_a_rule():
    got = rule_scripts(ROOT)
    assert got["corpora"] == ROOT / "workflow/scripts/corpora.py"
    assert got["activation_part"].name == "activations.py" and got["merging_scores"].exists()
    assert all(p.exists() for p in got.values())
    text = "".join(p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk"))
    assert len(got) == text.count('script:\n        "../scripts/')  # one entry per script rule
    # every wrapper in workflow/scripts is run by some rule (the Snakefile's own target rules run none)
    wrappers = {p.stem for p in (ROOT / "workflow/scripts").glob("*.py")}
    assert {p.stem for p in got.values()} == wrappers
