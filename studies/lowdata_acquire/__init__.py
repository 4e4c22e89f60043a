"""The low-data acquisition study: with n labelled images per class and a generator trained only on them, does
adding its samples help, and does choosing them by acquisition beat choosing them at random?

Per repeat r (`studies.lowdata_acquire.study.run_repeat`):
  L       n real images per class, drawn class-balanced from the training split by a seed keyed by r
          (gans.subset; the record proves the other images stayed unseen)
  G       a generator of `family` trained on L alone (gans.fit, the low-data recipe), saved float16 and always
          sampled from that file
  pool    L (the 'raw' source) and G's samples; the run's `initial` is |L|, so round 0 trains on L alone and every
          later round's k acquisitions are generated images (no real image outside L is ever a candidate)
  runs    'plain' (Gal's CNN and its Adam recipe) with the plain acquisitions, and 'augmented' (the same, every
          batch randomly rotated, shifted and zoomed: acquire.augment) with the augmented acquisitions; both
          paired-seeded, so every arm of repeat r shares initialisations and training draws
Arms for the analysis: none (plain round 0), classical (augmented round 0), each plain acquisition, and
classical+each augmented acquisition (`arms`). Test: the full real test split, balanced accuracy.
"""
