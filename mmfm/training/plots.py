"""Loss curves of a run as a PNG, drawn without pyplot.

`matplotlib.figure.Figure` with the Agg canvas never opens a window, keeps no global figure state (so it
is safe from a background thread) and does not change the backend of a pyplot the user imported.
matplotlib is imported on first use because it is an optional dependency (`mmfm[demo]`).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

logger = logging.getLogger(__name__)

# Below this many points the raw curve is readable as is; above it an EMA shows the trend.
SMOOTH_MIN_POINTS = 20
# Spread of positive values (max / min) above which a log-scale y axis shows both ends of the curve.
LOG_SCALE_RATIO = 20.0


def _loss_series(history: list[dict[str, float]]) -> dict[str, tuple[list[float], list[float]]]:
    """(steps, values) of every key ending in "loss", non-finite values dropped and counted."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    dropped: dict[str, int] = {}
    for index, record in enumerate(history):
        for key, value in record.items():
            if not key.endswith("loss"):
                continue
            if "step" not in record:
                raise ValueError(f"history[{index}] has {key!r} but no 'step': log the step with each loss.")
            steps, values = series.setdefault(key, ([], []))
            value = float(value)
            if math.isfinite(value):
                steps.append(float(record["step"]))
                values.append(value)
            else:
                dropped[key] = dropped.get(key, 0) + 1
    for key, count in dropped.items():
        logger.warning("Dropped %d non-finite value(s) of %r from the loss plot.", count, key)
    return {key: points for key, points in series.items() if points[1]}


def _ema(values: list[float]) -> list[float]:
    """Exponential moving average over a window of ~5% of the points (5 to 100)."""
    window = min(100, max(5, len(values) // 20))
    alpha = 2.0 / (window + 1)
    smoothed = [values[0]]
    for value in values[1:]:
        smoothed.append(alpha * value + (1 - alpha) * smoothed[-1])
    return smoothed


def plot_loss_curve(
    history: list[dict[str, float]], path: str | os.PathLike, title: str = "Training loss"
) -> Path:
    """Plot every logged loss against the step and save a 150 dpi PNG.

    Args:
        history: one record per logged step, e.g. `{"step": 10, "loss": 3.2, "mlm/loss": 3.2, "lr": 1e-4}`;
            every key ending in "loss" is drawn. NaN/inf values are dropped (and counted in the log).
        path: where the PNG goes; missing parent folders are created.
        title: the figure title.

    Returns:
        The path written.

    Raises:
        ValueError: when the history is empty or holds no finite loss value.
    """
    if not history:
        raise ValueError("`history` is empty: log at least one step with a loss before plotting.")
    series = _loss_series(history)
    if not series:
        raise ValueError(
            f"`history` has no finite value under a key ending in 'loss' (keys of the first record: "
            f"{sorted(history[0])}): log the loss as 'loss' or '<objective>/loss'."
        )
    try:
        from matplotlib import rcParams
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("Plotting the loss curve needs matplotlib: pip install 'mmfm[demo]'.") from error

    figure = Figure(figsize=(8, 5), layout="tight")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colors = rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (key, (steps, values)) in enumerate(sorted(series.items())):
        color = colors[index % len(colors)]
        if len(values) > SMOOTH_MIN_POINTS:
            axes.plot(steps, values, color=color, alpha=0.3, linewidth=0.8)
            axes.plot(steps, _ema(values), color=color, linewidth=1.6, label=f"{key} (EMA)")
        else:
            axes.plot(steps, values, color=color, marker="o", markersize=3, label=key)
    every_value = [value for _, values in series.values() for value in values]
    if min(every_value) > 0 and max(every_value) / min(every_value) > LOG_SCALE_RATIO:
        axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=150, format="png")
    return path
