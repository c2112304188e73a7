"""Time-series subsets of the demo corpus.

Columns shared by all subsets:
    past_values: List(List(float32)) of shape `[L][C]`, time-major like the `past_values` input of
        Hugging Face's PatchTST (L time steps, C channels). Missing values are NaN.
    dataset: str, the source series or dataset name.

Subsets:
    ucr: the UCR/UEA classification sets bundled with sktime (`UCR_DATASETS`); `label` ClassLabel over
        the union of "Dataset/class" names, `class_name` str (the class part), `caption` (a description of
        the recording written from the dataset's documented classes). Train/test are the source splits.
    forecasting (train only): long real series bundled with statsmodels and sktime (one row per series),
        `frequency` str ("yearly", "quarterly", "monthly", "weekly").
    captioned: generated univariate series of `CAPTIONED_LENGTH` daily steps, each with a `caption` that
        describes its trend, cycle, level shift and spike ("a noisy rising series with a weekly cycle and a
        sudden drop near the end"); `label` ClassLabel(TRENDS), `period` int (0: no cycle); `dataset` is
        "synthetic". Seeded; stratified 80/20 split (600 / 150 rows).
"""

from __future__ import annotations

import logging

import numpy as np
from datasets import ClassLabel, Features, List, Value

from .sources import (
    BuildResult,
    SourceUnavailable,
    cap_indices,
    labelled_splits,
    list_array,
    make_splits,
    require_module,
    subset_rng,
)

logger = logging.getLogger(__name__)

SKTIME_INSTALL = "pip install sktime"
STATSMODELS_INSTALL = "pip install statsmodels"

# Class names and captions per source label, written from the class descriptions in each `.ts` header.
# BasicMotions ships string labels. For the numeric ones the mapping follows the order in which the
# header lists the classes (GunPoint "Gun-Draw and Point"; ItalyPowerDemand "Oct to March ... April to
# September"; ArrowHead "Avonlea, Clovis and Mix"; OSULeaf's six species), which is how the UCR archive
# documents them; it is not stated next to the numbers themselves.
_GUNPOINT = "x-axis position of an actor's right hand"
_ITALY = "24 hourly readings of one day's electrical power demand in Italy"
_ARROW = "angle-based outline of a"
_WATCH = "smart-watch accelerometer and gyroscope recording of a person"
_LEAF = "outline of a leaf of"
UCR_DATASETS: dict[str, dict[str, tuple[str, str]]] = {
    "GunPoint": {
        "1": ("gun", f"{_GUNPOINT} drawing a replica gun from a hip holster, aiming it and holstering it"),
        "2": ("point", f"{_GUNPOINT} pointing an index finger at a target and lowering the hand"),
    },
    "ItalyPowerDemand": {
        "1": ("october_to_march", f"{_ITALY} on a day between October and March"),
        "2": ("april_to_september", f"{_ITALY} on a day between April and September"),
    },
    "ArrowHead": {
        "0": ("avonlea", f"{_ARROW} projectile point of the Avonlea type"),
        "1": ("clovis", f"{_ARROW} projectile point of the Clovis type"),
        "2": ("mix", f"{_ARROW} projectile point of neither the Avonlea nor the Clovis type"),
    },
    "BasicMotions": {
        "standing": ("standing", f"{_WATCH} standing still"),
        "walking": ("walking", f"{_WATCH} walking"),
        "running": ("running", f"{_WATCH} running"),
        "badminton": ("badminton", f"{_WATCH} playing badminton"),
    },
    "OSULeaf": {
        "1": ("acer_circinatum", f"{_LEAF} vine maple (Acer circinatum)"),
        "2": ("acer_glabrum", f"{_LEAF} Rocky Mountain maple (Acer glabrum)"),
        "3": ("acer_macrophyllum", f"{_LEAF} bigleaf maple (Acer macrophyllum)"),
        "4": ("acer_negundo", f"{_LEAF} box elder (Acer negundo)"),
        "5": ("quercus_garryana", f"{_LEAF} Oregon white oak (Quercus garryana)"),
        "6": ("quercus_kelloggii", f"{_LEAF} California black oak (Quercus kelloggii)"),
    },
}
UCR_CLASS_NAMES = [f"{d}/{name}" for d, classes in UCR_DATASETS.items() for name, _ in classes.values()]


def _ucr_split(split: str, max_samples: int | None, rng: np.random.Generator) -> dict:
    datasets_mod = require_module("sktime.datasets", SKTIME_INSTALL)
    values, names, class_names, captions, labels = [], [], [], [], []
    for name, classes in UCR_DATASETS.items():
        X, y = datasets_mod.load_UCR_UEA_dataset(name, split=split, return_X_y=True, return_type="numpy3D")
        for series, raw in zip(X, y):
            class_name, caption = classes[str(raw)]
            values.append(np.asarray(series, dtype=np.float32).T)  # (C, L) -> (L, C)
            names.append(name)
            class_names.append(class_name)
            captions.append(caption)
            labels.append(UCR_CLASS_NAMES.index(f"{name}/{class_name}"))
    # Round-robin over datasets so a capped split keeps every dataset it can.
    keep = cap_indices(names, max_samples, rng)
    return {
        "past_values": list_array([values[i] for i in keep], "float32"),
        "dataset": [names[i] for i in keep],
        "label": [labels[i] for i in keep],
        "class_name": [class_names[i] for i in keep],
        "caption": [captions[i] for i in keep],
    }


def build_ucr(max_samples: int | None, seed: int) -> BuildResult:
    """UCR/UEA classification sets with source train/test splits; `max_samples` caps each split."""
    from datasets import Dataset, DatasetDict

    rng = subset_rng(seed, "timeseries/ucr")
    features = Features(
        {
            "past_values": List(List(Value("float32"))),
            "dataset": Value("string"),
            "label": ClassLabel(names=UCR_CLASS_NAMES),
            "class_name": Value("string"),
            "caption": Value("string"),
        }
    )
    dataset = DatasetDict(
        {s: Dataset.from_dict(_ucr_split(s, max_samples, rng), features=features) for s in ("train", "test")}
    )
    return BuildResult(
        dataset=dataset,
        source="sktime bundled UCR/UEA archive sets " + ", ".join(UCR_DATASETS) + " (source train/test "
        "splits); captions written from the class descriptions in the .ts headers",
        license="sktime BSD-3 package; UCR/UEA archive data",
    )


# --------------------------------------------------------------------------------------- forecasting


def _statsmodels_series() -> list[tuple[str, np.ndarray, str]]:
    """(name, values `(L, C)`, frequency) for the long series bundled with statsmodels."""

    def load(name):
        # elec_equip is not imported by `statsmodels.datasets`' __init__, so import each submodule.
        module = require_module(f"statsmodels.datasets.{name}", STATSMODELS_INSTALL)
        return module.load_pandas().data if hasattr(module, "load_pandas") else module.load().data

    elnino = load("elnino").drop(columns="YEAR").to_numpy()  # one row per year, one column per month
    macro = load("macrodata").drop(columns=["year", "quarter"])
    return [
        ("sunspots", load("sunspots")[["SUNACTIVITY"]].to_numpy(), "yearly"),
        ("co2", load("co2")[["co2"]].to_numpy(), "weekly"),  # 59 NaN kept as missing
        ("nile", load("nile")[["volume"]].to_numpy(), "yearly"),
        ("elnino", elnino.reshape(-1, 1), "monthly"),
        ("macrodata", macro.to_numpy(), "quarterly"),
        ("elec_equip", load("elec_equip").to_numpy(), "monthly"),
        ("interest_inflation", load("interest_inflation")[["Dp", "R"]].to_numpy(), "quarterly"),
        ("danish_data", load("danish_data").to_numpy(), "quarterly"),
    ]


def _sktime_series() -> list[tuple[str, np.ndarray, str]]:
    """(name, values `(L, C)`, frequency) for sktime's bundled forecasting series."""
    ds = require_module("sktime.datasets", SKTIME_INSTALL)
    consumption, others = ds.load_uschange()
    return [
        ("airline", ds.load_airline().to_numpy()[:, None], "monthly"),
        ("lynx", ds.load_lynx().to_numpy()[:, None], "yearly"),
        ("shampoo_sales", ds.load_shampoo_sales().to_numpy()[:, None], "monthly"),
        ("pbs", ds.load_PBS_dataset().to_numpy()[:, None], "monthly"),
        ("uschange", np.column_stack([consumption.to_numpy(), others.to_numpy()]), "quarterly"),
    ]


def build_forecasting(max_samples: int | None, seed: int) -> BuildResult:
    """One row per real series (13 in all); sources are optional one by one."""
    series, notes = [], []
    for loader in (_statsmodels_series, _sktime_series):
        try:
            series.extend(loader())
        except SourceUnavailable as err:
            logger.warning("timeseries/forecasting: %s", err)
            notes.append(str(err))
    if not series:
        raise SourceUnavailable("; ".join(notes))
    keep = cap_indices([s[0] for s in series], max_samples, subset_rng(seed, "timeseries/forecasting"))
    series = [series[i] for i in keep]
    columns = {
        "past_values": list_array([np.asarray(s[1], dtype=np.float32) for s in series], "float32"),
        "dataset": [s[0] for s in series],
        "frequency": [s[2] for s in series],
    }
    features = Features(
        {
            "past_values": List(List(Value("float32"))),
            "dataset": Value("string"),
            "frequency": Value("string"),
        }
    )
    return BuildResult(
        dataset=make_splits(columns, features),
        source="statsmodels datasets (sunspots, co2, nile, elnino, macrodata, elec_equip, "
        "interest_inflation, danish_data) and sktime bundled series (airline, lynx, shampoo_sales, pbs, "
        "uschange)",
        license="statsmodels: module COPYRIGHT says mostly public domain; sktime BSD-3 package",
        notes=notes,
    )


# ------------------------------------------------------------------------------------------ captioned

CAPTIONED_LENGTH = 256  # the recipes' `context_length`, so the encoder sees each series whole
NUM_CAPTIONED = 750
TRENDS = ("rising", "falling", "flat")
CYCLES = {7: "weekly", 14: "fortnightly", 30: "monthly"}  # period in (daily) steps -> caption word
PLACES = {"near the start": (0.08, 0.25), "in the middle": (0.4, 0.6), "near the end": (0.75, 0.92)}
# Magnitudes in units of the series before its random scale and offset. A trend rises or falls by at
# least TREND_RISE[0] over the series and a level shift moves by at most SHIFT_SIZE[1]; a least-squares line
# picks up at most 1.5x a step's height, so the fitted slope always has the sign the caption names.
TREND_RISE = (6.0, 10.0)
CYCLE_AMPLITUDE = (1.0, 2.5)
SHIFT_SIZE = (2.0, 3.0)
SPIKE_SIZE = (6.0, 9.0)
NOISE = {"smooth": 0.15, "noisy": 0.6}


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def captioned_series(trend: str, rng: np.random.Generator) -> tuple[np.ndarray, str, int]:
    """One generated series `(CAPTIONED_LENGTH, 1)` of trend `trend`, its caption and its period (0: none).

    The series is trend + optional cycle + optional level shift + optional one- or two-step spike + noise,
    then scaled by a random positive factor and offset (so the level and scale say nothing about the
    caption). Shift and spike never fall in the same place, so the caption's "near the end" is one event.
    """
    length = CAPTIONED_LENGTH
    steps = np.arange(length)
    direction = {"rising": 1.0, "falling": -1.0, "flat": 0.0}[trend]
    values = direction * rng.uniform(*TREND_RISE) * steps / (length - 1)
    noise_name = list(NOISE)[rng.integers(len(NOISE))]
    events, period = [], 0
    if rng.random() < 0.75:
        period = list(CYCLES)[rng.integers(len(CYCLES))]
        phase = rng.uniform(0, 2 * np.pi)
        values += rng.uniform(*CYCLE_AMPLITUDE) * np.sin(2 * np.pi * steps / period + phase)
        events.append(f"a {CYCLES[period]} cycle")
    places = [list(PLACES)[i] for i in rng.permutation(len(PLACES))[:2]]
    if rng.random() < 0.4:
        place, sign = places[0], rng.choice([-1.0, 1.0])
        start = int(rng.uniform(*PLACES[place]) * length)
        values[start:] += sign * rng.uniform(*SHIFT_SIZE)
        events.append(f"a sudden {'jump' if sign > 0 else 'drop'} {place}")
    if rng.random() < 0.4:
        place, sign = places[1], rng.choice([-1.0, 1.0])
        start = int(rng.uniform(*PLACES[place]) * length)
        values[start : start + int(rng.integers(1, 3))] += sign * rng.uniform(*SPIKE_SIZE)
        events.append(f"a brief {'spike' if sign > 0 else 'dip'} {place}")
    values += rng.normal(0.0, NOISE[noise_name] * rng.uniform(0.8, 1.2), length)
    values = values * rng.uniform(0.5, 20.0) + rng.uniform(-50.0, 50.0)
    caption = f"a {noise_name} {trend} series" + (f" with {_join(events)}" if events else "")
    return values.astype(np.float32)[:, None], caption, period


def build_captioned(max_samples: int | None, seed: int) -> BuildResult:
    """`NUM_CAPTIONED` generated series with captions, as many per trend; seeded stratified 80/20 split."""
    rng = subset_rng(seed, "timeseries/captioned")
    # Shuffled, so the rows of a split are not sorted by trend.
    labels = rng.permutation([k for k in range(len(TRENDS)) for _ in range(NUM_CAPTIONED // len(TRENDS))])
    labels = [int(labels[i]) for i in cap_indices(labels.tolist(), max_samples, rng)]
    rows = [captioned_series(TRENDS[k], rng) for k in labels]
    columns = {
        "past_values": list_array([r[0] for r in rows], "float32"),
        "dataset": ["synthetic"] * len(rows),
        "label": labels,
        "caption": [r[1] for r in rows],
        "period": [r[2] for r in rows],
    }
    features = Features(
        {
            "past_values": List(List(Value("float32"))),
            "dataset": Value("string"),
            "label": ClassLabel(names=list(TRENDS)),
            "caption": Value("string"),
            "period": Value("int64"),
        }
    )
    return BuildResult(
        dataset=labelled_splits(columns, features, "label", rng),
        source=f"{len(rows)} generated series of {CAPTIONED_LENGTH} steps (trend, cycle, level shift, spike, "
        "noise; seeded) with captions describing them; seeded stratified 80/20 split",
        license="generated",
    )


SUBSETS = {"ucr": build_ucr, "forecasting": build_forecasting, "captioned": build_captioned}
