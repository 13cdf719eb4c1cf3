"""Data generators behind ``sqlmr gen``.

``sqlmr gen amplab`` (:mod:`sqlmr.gen.amplab`) writes the AMPLab Big Data Benchmark's
``rankings`` and ``uservisits`` tables at any scale, with the benchmark's distributions.
"""

DATASETS = ("amplab",)
