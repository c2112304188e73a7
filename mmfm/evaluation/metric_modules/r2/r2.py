"""Coefficient of determination R^2 of predicted against reference values.

A local `evaluate` metric module shipped with mmfm, so `evaluate.load(<this folder>)` works offline
(the evaluate wheel ships no metric scripts). Self-contained on purpose: evaluate copies only this file.
"""

import datasets
import evaluate
from sklearn.metrics import r2_score

_DESCRIPTION = """
R^2 = 1 - sum((reference - prediction) ** 2) / sum((reference - mean(reference)) ** 2), computed with
scikit-learn's `r2_score`. 1 is perfect, 0 is as good as predicting the mean, and it can be negative.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): predicted values, shape (N,).
    references (`list` of `float`): reference values, shape (N,).
    sample_weight (`list` of `float`, *optional*): weight of each value, shape (N,).

Returns:
    r2 (`float`): at most 1.
"""

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class R2(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.r2_score.html"
            ],
        )

    def _compute(self, predictions, references, sample_weight=None):
        return {"r2": float(r2_score(references, predictions, sample_weight=sample_weight))}
