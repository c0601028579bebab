"""Findings: strategy clusters of the maps of each explained class (SpRAy-style spectral
clustering on a bounded sample), every example assigned to one, and each cluster's hot region
proved or refuted by occluding it.

The maths modules (``small_maps``, ``clustering``, ``assignment``, ``regions``, ``rules``,
``analysis``) use numpy, scipy and scikit-learn only (imported lazily, so ``import pipeline``
and the loaders stay light); ``stage`` is the Beam part.
"""
