"""Which layers of which models see the same geometry: representational similarity from cached representations.

For one text set, every pair of models' representations (each decoder layer at each pooling, from the activation
shards; each model's final embedding) is compared with linear CKA and debiased CKA (:mod:`.measures`, feature space,
linear in the text count), mutual k-nearest-neighbour alignment, RSA (:mod:`.rsa`, with rsatoolbox) and optionally
the orthogonal Procrustes distance; the headline numbers carry a bootstrap interval and a permutation null
(:mod:`.uncertainty`). One artifact per model pair (:mod:`.pairs`), so adding a model computes only its pairs; the
tables (:mod:`.tables`) and figures (:mod:`repgeom.plots.similarity`) gather them. :mod:`.merging` measures how far
each merged variant of the merging study sits from its base and its fine-tuned model.
"""
