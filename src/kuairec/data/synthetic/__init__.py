"""Synthetic KuaiRec 2.0: the project's embedded default data (see docs/synthetic.md).

``generate(out_dir, scale=0.2, seed=0)`` writes the seven KuaiRec files with the real
schema and quirks, plus ``small_matrix_truth.csv`` (expected watch_ratio per small pair).
"""

from kuairec.data.synthetic.pipeline import generate

__all__ = ["generate"]
