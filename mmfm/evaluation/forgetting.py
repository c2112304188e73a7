"""Forgetting in continued pretraining: the same frozen-feature probes of the model a run started from
(before) and of the model it exported (after), on the original domain (what continued training may forget)
and on the new domain (what it should learn).

    report = forgetting_report(before, after, domains={"digits/label": "original", "shapes/label": "new"})
    print(markdown_table(report))

`before` and `after` are evaluation results as a run writes them (`metrics.json` `evaluation.<task>`):
`{"<subset>/<label_column>": {probe: {"accuracy": ...} or {"r2": ...}}}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The number each probe is judged by (higher is better for all three).
PROBE_METRIC = {"knn": "accuracy", "linear_probe": "accuracy", "ridge": "r2"}
DOMAINS = ("original", "new")


def forgetting_report(
    before: Mapping[str, Mapping[str, Mapping[str, Any]]],
    after: Mapping[str, Mapping[str, Mapping[str, Any]]],
    domains: Mapping[str, str],
) -> dict[str, Any]:
    """Before/after rows of every probe both evaluations ran, with their change, and the mean change per
    domain.

    Args:
        before: the probes of the starting model, keyed by evaluation then probe.
        after: the same probes of the continued model.
        domains: evaluation key -> `original` or `new` (keys not listed count as `original`).

    Returns:
        `{"rows": [{"evaluation", "domain", "probe", "metric", "before", "after", "change"}, ...],
        "mean_change": {domain: mean of its rows' changes}}`; `change` is after - before (negative: forgotten).

    Raises:
        ValueError: a domain other than `original`/`new`, or an evaluation or probe missing from `before`.
    """
    strange = sorted({d for d in domains.values() if d not in DOMAINS})
    if strange:
        raise ValueError(f"`domains` must map evaluations to {DOMAINS}, got {strange}.")
    rows = []
    for key, probes in after.items():
        for probe, metrics in probes.items():
            if key not in before or probe not in before[key]:
                raise ValueError(
                    f"The starting model has no {probe!r} result for {key!r}: evaluate both alike."
                )
            metric = PROBE_METRIC[probe]
            old, new = float(before[key][probe][metric]), float(metrics[metric])
            rows.append({
                "evaluation": key, "domain": domains.get(key, "original"), "probe": probe, "metric": metric,
                "before": old, "after": new, "change": new - old,
            })  # fmt: skip
    rows.sort(key=lambda row: (DOMAINS.index(row["domain"]), row["evaluation"], row["probe"]))
    mean_change = {}
    for domain in DOMAINS:
        changes = [row["change"] for row in rows if row["domain"] == domain]
        if changes:
            mean_change[domain] = sum(changes) / len(changes)
    return {"rows": rows, "mean_change": mean_change}


def markdown_table(report: Mapping[str, Any], before: str = "before", after: str = "after") -> str:
    """The report as a Markdown table, one row per probe, original domain first."""
    lines = [
        f"| domain | evaluation | probe | metric | {before} | {after} | change |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        lines.append(
            f"| {row['domain']} | {row['evaluation']} | {row['probe']} | {row['metric']} | {row['before']:.3f} | "
            f"{row['after']:.3f} | {row['change']:+.3f} |"
        )
    means = ", ".join(f"{domain} {change:+.3f}" for domain, change in report["mean_change"].items())
    return "\n".join(lines) + (f"\n\nMean change: {means}.\n" if means else "\n")


__all__ = ["DOMAINS", "PROBE_METRIC", "forgetting_report", "markdown_table"]
