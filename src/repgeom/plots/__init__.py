"""Figures: headless (Agg), each written atomically; the t-SNE's parameters and the embedding's provenance go into
the PNG's metadata.

``figure``   shared plumbing: :func:`pyplot`, :func:`family_colors`, :func:`save_figure`, :func:`finish_axes`
``tsne``     :func:`plot_tsne` (one map per model) and :func:`plot_tsne_panels` (maps side by side)
``scores``   :func:`plot_bars` (true-label vs KMeans scores per model), :func:`plot_layer_curves` (over depth)
``sts``      :func:`plot_sts`, the STS study's figures; :func:`plot_zero_shot`, one model's zero-shot curves
``merging``  :func:`plot_merging_tradeoff`, the merging study's trade-off figure
"""

from __future__ import annotations

from ..lazy import lazy_exports

#: public name → the submodule that defines it (read by :mod:`repgeom.codeversion` without importing)
_EXPORTS = {
    "pyplot": "figure",
    "save_figure": "figure",
    "family_colors": "figure",
    "finish_axes": "figure",
    "tsne_perplexity": "tsne",
    "tsne": "tsne",
    "plot_tsne": "tsne",
    "plot_tsne_panels": "tsne",
    "plot_bars": "scores",
    "plot_layer_curves": "scores",
    "plot_sts": "sts",
    "plot_zero_shot": "sts",
    "plot_merging_tradeoff": "merging",
}
_SUBMODULES = ("figure", "tsne", "scores", "sts", "merging")

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
