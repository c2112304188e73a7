"""Accuracy: the fraction of predictions equal to their reference label.

A local `evaluate` metric module shipped with mmfm, so `evaluate.load(<this folder>)` works offline
(the evaluate wheel ships no metric scripts). Self-contained on purpose: evaluate copies only this file.
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score

_DESCRIPTION = """
Accuracy = (number of correct predictions) / (number of predictions), computed with
scikit-learn's `accuracy_score`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted labels, shape (N,).
    references (`list` of `int`): reference labels, shape (N,).
    normalize (`bool`): return the fraction (True, default) or the count (False) of correct predictions.
    sample_weight (`list` of `float`, *optional*): weight of each prediction, shape (N,).

Returns:
    accuracy (`float`): in [0, 1] when `normalize` is True.
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
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"
            ],
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        score = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
        return {"accuracy": float(score)}
