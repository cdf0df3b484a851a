"""The FREEZE study: frozen decoder-LM features for semantic textual similarity (STS-B).

Seed paper: "FREEZE! Pretrained Language Models as Frozen Feature Extractors". The
features are the per-layer activation shards of :mod:`repgeom.activations` (the
residual stream after every block, at the last token or averaged over tokens); the LM
itself never runs here. Every probe is trained on the STS-B train split, its epoch (and,
for the single-layer baseline, its layer) chosen on dev, and scored once on test; scores
are normalised to [0, 1] (``score / 5``).

The progression (each a *variant* in the config, ``sts.variants``; its ``head`` is a key of
:data:`HEADS`, its ``pretrain`` a key of :data:`PRETRAIN`):

``best_layer``   cosine of the two sentences' latents at one layer vs the score (the paper's
                 Figure 1 is the curve over layers); the layer with the best dev Pearson is
                 the baseline. No training, so no seed spread.
``mlp``          a one-hidden-layer MLP over the n_layers cosines, sigmoid output.

Both take ``standardize: true`` (an extension, not in the paper): the cosine of latents standardised
per layer and dimension with train-split statistics, which removes the residual stream's few huge
outlier dimensions that push every raw cosine towards 1.

``siamese``      one network per layer (``Linear(d, width)`` + activation, the same net for
                 both sentences), per-layer cosines of their outputs, then the MLP; trained end
                 to end.
``autoencoder``  as ``siamese``, with each layer's network initialised from the encoder of an
                 autoencoder pretrained to reconstruct that layer's latent on GenericsKB
                 sentences (``width`` = ``bottleneck``, ``bottleneck_late`` for the later half of
                 the layers); ``ae_loss`` is ``mse`` or ``logvar`` (log Var(prediction − target)).
``snli``         (optional) as ``siamese``, the networks first trained on SNLI pairs
                 (entailment 1, neutral 0.5, contradiction 0).

The training ``loss`` of any trained variant is ``mse`` or ``logvar``. Inputs are standardised
per layer and dimension (the residual stream has a few huge outlier dimensions): the autoencoder variants with
the statistics of their GenericsKB pretraining sentences, ``siamese`` and ``snli`` with those of the STS-B train
pairs' sentences (SNLI pretraining keeps them). Training is deterministic on CPU for a seed and uses the GPU when
there is one.

Submodules, one concept each (torch and pandas are imported lazily, inside the functions; the public names below
are exported lazily too, through ``_EXPORTS``, so that a wrapper's code version covers only the submodules whose
names it imports, see :mod:`repgeom.codeversion`):

:mod:`.errors`        :class:`STSError`
:mod:`.data`          latents from the shards, pair rows, per-layer pair cosines, the layer curve
:mod:`.nets`          per-layer encoders/decoders, the MLP and cosine heads, the losses
:mod:`.training`      deterministic seeding, progress bars, the pair-training loop, prediction, calibration
:mod:`.autoencoders`  pretraining the layerwise autoencoders, their artifact and curves, loading into a probe
:mod:`.job`           :class:`~.job.Job`: what one variant's runs share
:mod:`.pretrain`      :data:`PRETRAIN`: ``none``, ``autoencoder``, ``snli``
:mod:`.probes`        :class:`Probe`: a trained probe saved with everything it reads, :func:`load_probe` (latents → scores)
:mod:`.heads`         :data:`HEADS`: ``best_layer``, ``mlp``, ``siamese``; the per-seed runs and their summary
:mod:`.variants`      :func:`run_variant`, the probe stage
:mod:`.tables`        the progression, zero-shot and worst-errors tables
:mod:`.transfer`      every saved probe applied, unchanged, to other similarity sets (``sts.transfer``)
"""

from __future__ import annotations

from ..lazy import lazy_exports

#: public name → the submodule that defines it (read by :mod:`repgeom.codeversion` without importing)
_EXPORTS = {
    "STSError": "errors",
    "load_latents": "data",
    "rows_for": "data",
    "standardised": "data",
    "pair_cosines": "data",
    "layer_curve": "data",
    "LOSSES": "nets",
    "layer_widths": "nets",
    "build_modules": "nets",
    "loss_fn": "nets",
    "train_pairs": "training",
    "ArtifactError": "autoencoders",
    "pretrain_autoencoders": "autoencoders",
    "train_autoencoders": "autoencoders",
    "load_autoencoders": "autoencoders",
    "autoencoder_curve_rows": "autoencoders",
    "PRETRAIN": "pretrain",
    "HEADS": "heads",
    "summarise_runs": "heads",
    "Probe": "probes",
    "load_probe": "probes",
    "save_probe": "probes",
    "run_variant": "variants",
    "PAPER_GPT2_MEDIUM": "tables",
    "progression_frame": "tables",
    "progression_markdown": "tables",
    "zero_shot_frame": "tables",
    "zero_shot_markdown": "tables",
    "worst_errors": "tables",
    "transfer_scores": "transfer",
    "transfer_frame": "transfer",
    "transfer_markdown": "transfer",
    "worst_errors_markdown": "tables",
    "write_tables": "tables",
}
_SUBMODULES = (
    "errors",
    "data",
    "nets",
    "training",
    "autoencoders",
    "job",
    "pretrain",
    "probes",
    "heads",
    "variants",
    "tables",
    "transfer",
)

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
