"""F1 score: the harmonic mean of precision and recall, per class then averaged.

A local `evaluate` metric module shipped with mmfm, so `evaluate.load(<this folder>)` works offline
(the evaluate wheel ships no metric scripts). Self-contained on purpose: evaluate copies only this file.
"""

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = """
F1 = 2 * (precision * recall) / (precision + recall), computed with scikit-learn's `f1_score`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted labels, shape (N,).
    references (`list` of `int`): reference labels, shape (N,).
    labels (`list` of `int`, *optional*): the classes to average over; default: every class seen in
        `predictions` or `references`.
    pos_label (`int`): the positive class when `average="binary"` (1).
    average (`str`): "macro" (default: unweighted mean over classes), "micro", "weighted", "binary" or
        None (one score per class).
    sample_weight (`list` of `float`, *optional*): weight of each prediction, shape (N,).
    zero_division (`float` or `"warn"`): the value for a class with no predicted and no true samples (0.0).

Returns:
    f1 (`float`, or `list` of `float` when `average` is None): in [0, 1].
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
class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"
            ],
        )

    def _compute(
        self,
        predictions,
        references,
        labels=None,
        pos_label=1,
        average="macro",
        sample_weight=None,
        zero_division=0.0,
    ):
        score = f1_score(
            references,
            predictions,
            labels=labels,
            pos_label=pos_label,
            average=average,
            sample_weight=sample_weight,
            zero_division=zero_division,
        )
        return {"f1": float(score) if getattr(score, "size", 1) == 1 else score.tolist()}
