"""Mean absolute error between predicted and reference values.

A local `evaluate` metric module shipped with mmfm, so `evaluate.load(<this folder>)` works offline
(the evaluate wheel ships no metric scripts). Self-contained on purpose: evaluate copies only this file.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
MAE = mean(|prediction - reference|), optionally weighted, over flat lists of numbers.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): predicted values, shape (N,).
    references (`list` of `float`): reference values, shape (N,).
    sample_weight (`list` of `float`, *optional*): weight of each value, shape (N,).

Returns:
    mae (`float`): the (weighted) mean absolute error.
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Mae(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
        )

    def _compute(self, predictions, references, sample_weight=None):
        errors = np.abs(np.asarray(predictions, dtype=np.float64) - np.asarray(references, dtype=np.float64))
        return {"mae": float(np.average(errors, weights=sample_weight))}
