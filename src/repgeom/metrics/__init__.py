"""Scores: the clustering geometry of an embedding matrix against its family labels, and similarity agreement.

``clusters``     silhouette, Davies-Bouldin, ARI, NMI with within-family bootstrap intervals
                 (:func:`cluster_metrics`, :class:`MetricError`)
``layers``       the same scores for every layer of a decoder, one shard at a time (:func:`layer_metrics`,
                 :func:`best_layer`, :func:`layers_markdown`)
``tables``       the per-model score table, TSV and Markdown (:func:`summary_frame`, :func:`write_summary`)
``correlation``  Pearson and Spearman of predicted against gold scores (:func:`correlations`, :func:`best_result`)

The names below are exported lazily (:data:`_EXPORTS`): nothing here imports torch, and a wrapper that needs only
the tables does not depend on the clustering code.
"""

from __future__ import annotations

from ..lazy import lazy_exports

#: public name → the submodule that defines it (read by :mod:`repgeom.codeversion` without importing)
_EXPORTS = {
    "SCORES": "clusters",
    "HIGHER_IS_BETTER": "clusters",
    "MetricError": "clusters",
    "score_labels": "clusters",
    "kmeans_labels": "clusters",
    "bootstrap_ci": "clusters",
    "cluster_metrics": "clusters",
    "SCORE_COLUMNS": "tables",
    "TSV_COLUMNS": "tables",
    "MD_COLUMNS": "tables",
    "summary_frame": "tables",
    "markdown_table": "tables",
    "write_summary": "tables",
    "format_ci": "tables",
    "LAYER_COLUMNS": "layers",
    "layer_metrics": "layers",
    "best_layer": "layers",
    "layers_markdown": "layers",
    "correlations": "correlation",
    "best_result": "correlation",
}
_SUBMODULES = ("clusters", "tables", "layers", "correlation")

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
