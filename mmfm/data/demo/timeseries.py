"""Time-series subsets of the demo corpus.

Columns shared by both subsets:
    past_values: List(List(float32)) of shape `[L][C]`, time-major like the `past_values` input of
        Hugging Face's PatchTST (L time steps, C channels). Missing values are NaN.
    dataset: str, the source series or dataset name.

Subsets:
    ucr: the UCR/UEA classification sets bundled with sktime (`UCR_DATASETS`); `label` ClassLabel over
        the union of "Dataset/class" names, `class_name` str (the class part), `caption` (a description of
        the recording written from the dataset's documented classes). Train/test are the source splits.
    forecasting (train only): long real series bundled with statsmodels and sktime (one row per series),
        `frequency` str ("yearly", "quarterly", "monthly", "weekly").
"""

from __future__ import annotations

import logging

import numpy as np
from datasets import ClassLabel, Features, List, Value

from .sources import (
    BuildResult,
    SourceUnavailable,
    cap_indices,
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


SUBSETS = {"ucr": build_ucr, "forecasting": build_forecasting}
