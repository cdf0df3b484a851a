"""The report's headlines: one line per study, each picking its row by the study's own rule (the STS variant by dev,
never by test), from tables in the studies' own formats."""

import pandas as pd

from repgeom.headlines import PAPER_BEST_PEARSON, write_headlines


def test_headlines_pick_by_the_studies_rules(tmp_path):
    num = tmp_path / "summary.tsv"
    pd.DataFrame(
        {"model": ["a", "b"], "silhouette_true": [0.1, 0.3], "silhouette_true_lo": [0.0, 0.2],
         "silhouette_true_hi": [0.2, 0.4], "dbi_true": [1.5, 2.0]}
    ).to_csv(num, sep="\t", index=False)  # fmt: skip
    lay = tmp_path / "layers.tsv"
    pd.DataFrame(
        {"model": ["m"] * 3, "layer": [0, 1, 2], "n_blocks": [2] * 3, "depth": [0, 0.5, 1],
         "silhouette_true": [0.5, 0.1, 0.2], "silhouette_true_lo": [0.4, 0, 0.1], "silhouette_true_hi": [0.6, 0.2, 0.3]}
    ).to_csv(lay, sep="\t", index=False)  # fmt: skip
    prog = tmp_path / "progression.tsv"
    pd.DataFrame(
        {"model": ["m", "m"], "template": ["plain", "prompteol"], "pooling": ["mean", "last"],
         "variant": ["ae_mse", "siamese"], "n_seeds": [3, 3], "test_pearson": [80.0, 70.0],
         "test_pearson_std": [0.3, 0.2], "test_spearman": [79.0, 69.0], "dev_pearson": [70.0, 75.0]}
    ).to_csv(prog, sep="\t", index=False)  # fmt: skip
    text = write_headlines(tmp_path / "h.md", numbers={"numbers": num}, layers={"numbers": lay}, sts_progression=prog)
    assert "families separate best in **b**" in text and "lowest Davies–Bouldin: a (1.50)" in text
    assert "separate best at the embedding output of 2" in text
    # the best on dev (prompteol / siamese, dev 75), not the best on test (80)
    assert "**m / prompteol / last / siamese**: test Pearson 70.00 ± 0.20" in text
    assert f"below the paper's best, {PAPER_BEST_PEARSON}" in text
    assert (tmp_path / "h.md").read_text() == text
    assert "No study ran." in write_headlines(tmp_path / "none.md")
    empty = tmp_path / "zero_shot.tsv"
    pd.DataFrame().to_csv(empty, sep="\t", index=False)  # a config without best_layer variants
    assert "Zero-shot" not in write_headlines(tmp_path / "z.md", sts_progression=prog, sts_zero_shot=empty)
    # a run on a sample of STS-B (the tour) is labelled and not set against the paper's whole-split numbers
    text = write_headlines(tmp_path / "t.md", sts_progression=prog, label="tour", sts_limit={"train": 9, "test": 5})
    assert text.startswith("# Headlines\n\n**Run: tour**") and "paper's best" not in text
    assert "on a sample of STS-B (train 9, test 5 pairs" in text and "not comparable" in text


def test_similarity_headlines_name_the_closest_pair_and_the_merges(tmp_path):
    models = tmp_path / "models.tsv"
    pd.DataFrame(
        {"model_a": ["a", "a", "b"], "model_b": ["b", "c", "c"], "cka": [0.4, 0.9, 0.2], "cka_sub": [0.4, 0.9, 0.2],
         "n_sub": [24] * 3, "ci_low": [0.3, 0.6, 0.1], "ci_high": [0.5, 0.95, 0.3], "null_q": [0.3, 0.3, 0.3],
         "too_wide": [False, True, False]}
    ).to_csv(models, sep="\t", index=False)  # fmt: skip
    merg = tmp_path / "merging.tsv"
    pd.DataFrame(
        {"variant": ["linear_0.25", "linear_0.5", "slerp_0.5", "soup"], "method": ["linear", "linear", "slerp", "soup"],
         "t": [0.25, 0.5, 0.5, None], "reference": ["base"] * 4, "cka": [0.99, 0.97, 0.96, 0.9]}
    ).to_csv(merg, sep="\t", index=False)  # fmt: skip
    text = write_headlines(tmp_path / "h.md", similarity={"numbers": models}, similarity_merging={"m": merg})
    assert "closest models at their outputs: **a × c** (linear CKA 0.90" in text and "farthest: b × c" in text
    assert "Intervals this wide mean little" in text
    assert "at t = 0.5 SLERP sits at CKA 0.960 from the base, linear interpolation at 0.970" in text


def test_a_merging_verdict_is_cut_at_its_own_colon_not_one_inside_parentheses(tmp_path):
    v = tmp_path / "verdict.tsv"
    pd.DataFrame(
        {"claim": ["soup", "task vectors"],
         "verdict": ["supported: the soup sits at 0.9", "the two differ (SLERP keeps length: compare the positions)"]}
    ).to_csv(v, sep="\t", index=False)  # fmt: skip
    text = write_headlines(tmp_path / "h.md", merging={"m": v})
    assert "soup: *supported*." in text
    assert "task vectors: *the two differ (SLERP keeps length: compare the positions)*." in text
