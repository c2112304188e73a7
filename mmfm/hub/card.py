"""The model card (README.md) of a published mmfm model: metadata for the Hub (library, pipeline, tags,
datasets, base model, license, `model-index` of the run's evaluation) and a text that says what the model is,
how to load it with and without mmfm, how it was trained (hyperparameters, loss plot) and its limits.

    card = build_model_card(resolve_source("outputs/default"), "me/clip-demo")
    card.save("README.md")          # ModelCard.load("README.md").data.eval_results round-trips

The text comes from `model_card_template.md` (Jinja, shipped with the package); the facts from
`mmfm.hub.facts`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from . import facts
from .source import LOSS_PLOT, PublishSource

TEMPLATE = Path(__file__).with_name("model_card_template.md")
DEFAULT_LICENSE = "apache-2.0"
# Processors by modality, when they load without mmfm: the transformers Auto class that reads them.
PROCESSOR_AUTO_CLASSES = {"text": "AutoTokenizer", "vision": "AutoImageProcessor"}


def build_model_card(
    source: PublishSource,
    repo_id: str | None = None,
    *,
    license: str = DEFAULT_LICENSE,
    base_model: str | None = None,
    loss_plot: str | None = LOSS_PLOT,
) -> ModelCard:
    """The card of `source` as it will be published under `repo_id` (a placeholder name when None).

    Args:
        source: the resolved folder (`mmfm.hub.resolve_source`).
        repo_id: the Hub repository the card's code examples load from.
        license: an SPDX-style Hub license id (`apache-2.0`, `mit`, `other`, ...).
        base_model: a Hub id replacing the recorded base model (an adapter's base or the run's `init_from`),
            needed when that is a local folder.
        loss_plot: the loss plot's file name next to the card (None: no plot).
    """
    repo = repo_id or f"<user>/{_default_name(source)}"
    found = facts.modalities(source.config)
    recorded_base = facts.base_model(source, base_model)
    hub_base = recorded_base if recorded_base and facts.is_hub_id(recorded_base) else None
    results = facts.eval_results(source)
    data = ModelCardData(
        license=license,
        library_name="peft" if source.adapter is not None else "transformers",
        pipeline_tag=facts.pipeline_tag(source),
        tags=_tags(source, found),
        datasets=facts.dataset_ids(source) or None,
        base_model=hub_base,
        model_name=repo.split("/")[-1] if results else None,
        eval_results=results or None,
        **(
            {"base_model_relation": "adapter" if source.adapter is not None else "finetune"}
            if hub_base
            else {}
        ),
    )
    return ModelCard.from_template(
        data,
        template_path=str(TEMPLATE),
        title=repo.split("/")[-1],
        summary=_summary(source, found),
        base_model_note=_base_model_note(source, recorded_base, hub_base),
        model_rows=[
            (name, _format(value)) for name, value in _model_rows(source, found, hub_base or recorded_base)
        ],
        usage_with_mmfm=_usage(source, repo, hub_base, with_mmfm=True),
        usage_without_mmfm=_usage(source, repo, hub_base, with_mmfm=False),
        code_note=(
            "The base model's repository carries its model code, so transformers and PEFT alone load it with "
            "`trust_remote_code=True`"
            if source.adapter is not None
            else "The model code ships in this repository, "
            "so transformers alone loads it with `trust_remote_code=True`"
        ),
        processor_note=_processor_note(source),
        training_data=facts.training_data(source),
        hyperparameters=[(name, _format(value)) for name, value in facts.hyperparameters(source)],
        loss_plot=loss_plot if loss_plot and source.loss_plot is not None else None,
        eval_rows=[
            {
                "task": r.task_name or r.task_type,
                "dataset": f"{r.dataset_name} ({r.dataset_split})",
                "metric": r.metric_name or r.metric_type,
                "value": _format(r.metric_value),
            }
            for r in results
        ],
        baseline_rows=[{k: _format(v) for k, v in row.items()} for row in facts.baselines(source)],
        limitations=_limitations(source, found, recorded_base, hub_base, bool(results)),
    )


def _default_name(source: PublishSource) -> str:
    if source.run_dir is not None:
        return source.run_dir.name + (f"-{source.task}" if source.folder.parent.name == "model" else "")
    return source.folder.name


def _tags(source: PublishSource, found: list[str]) -> list[str]:
    tags = ["mmfm", *found]
    objective = facts.objective(source)
    if objective:
        tags.append(objective)
    architecture = facts.architecture(source.config) or ""
    if objective and not architecture.endswith(("Classification", "Regression")):
        tags.append("self-supervised")
    if len(found) > 1:
        tags.append("multimodal")
    if source.finetune_section:
        tags.append("fine-tuned")
    if source.adapter is not None:
        tags += ["peft", str(source.adapter.get("peft_type") or "adapter").lower()]
    if source.config.get("auto_map") and source.adapter is None:
        tags.append("custom_code")
    return list(dict.fromkeys(tags))


def _summary(source: PublishSource, found: list[str]) -> str:
    what = f"`{facts.architecture(source.config) or 'A model'}`"
    if source.adapter is not None:
        what = f"A PEFT adapter ({source.adapter.get('peft_type') or 'unknown type'})"
    modality = " and ".join(found) or "an unrecorded modality"
    objective = facts.objective(source)
    description = facts.objective_description(objective)
    text = f"{what} for {modality}"
    if objective:
        text += f", trained with mmfm's `{objective}` objective" + (
            f" ({description})" if description else ""
        )
    tune = source.finetune_section
    if tune:
        text += f", fine-tuned with a {tune.get('head')} head on `{source.data_section.get('label_column')}`"
    steps = (source.metrics or {}).get("steps")
    if steps is not None:
        text += f", {steps} optimizer steps"
    return text + "."


def _base_model_note(source: PublishSource, recorded: str | None, hub_base: str | None) -> str | None:
    if recorded is None:
        return None
    relation = "adapts" if source.adapter is not None else "continues training from"
    if hub_base:
        return f"This model {relation} [`{hub_base}`](https://huggingface.co/{hub_base})."
    return (
        f"This model {relation} a local folder (`{Path(recorded).name}`), which is not on the Hub. Replace it by the "
        "base model's Hub id: publish again with `mmfm-publish ... --base-model <user>/<base>` (this also sets the "
        "card's `base_model` metadata)."
    )


def _model_rows(source: PublishSource, found: list[str], base: str | None) -> list[tuple[str, Any]]:
    config = source.config
    # An adapter's config is its base model's.
    of = "base " if source.adapter is not None else ""
    if base and not facts.is_hub_id(base):
        base = f"a local folder (`{Path(base).name}`)"
    rows: list[tuple[str, Any]] = [
        (f"{of}architecture", facts.architecture(config)),
        (f"{of}model type", config.get("model_type")),
        ("modalities", ", ".join(found) or None),
        ("adapter parameters" if of else "parameters", _millions(facts.count_parameters(source.folder))),
        ("run task", source.task if source.task_section else None),
        ("base model", base),
    ]
    if source.adapter is not None:
        adapter = source.adapter
        rows += [("adapter", adapter.get("peft_type")), ("rank", adapter.get("r")),
                 ("target modules", adapter.get("target_modules")), ("PEFT task type", adapter.get("task_type"))]  # fmt: skip
    if config.get("model_type") == "mmfm":
        rows.append(("projection dim", config.get("projection_dim")))
        rows += [(f"{m} tower", _shape(config.get(f"{m}_config") or {})) for m in found]
    elif found:
        rows.append((f"{of}encoder", _shape(config)))
    return [(name, value) for name, value in rows if value not in (None, "", [])]


def _shape(config: dict[str, Any]) -> str | None:
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    if not all(k in config for k in keys):
        return None
    return "hidden {} x {} layers, {} heads, MLP {}".format(*(config[k] for k in keys))


def _millions(count: int | None) -> str | None:
    return None if count is None else f"{count / 1e6:.2f} M" if count >= 1_000_000 else f"{count:,}"


def _usage(source: PublishSource, repo: str, hub_base: str | None, *, with_mmfm: bool) -> str:
    remote = "" if with_mmfm else ", trust_remote_code=True"
    lines = ["import mmfm  # registers mmfm's models and processors with transformers"] if with_mmfm else []
    if source.adapter is not None:
        base, auto_class = hub_base or "<base model id>", _adapter_base_class(source)
        return "\n".join(lines + [
            "from peft import PeftModel", f"from transformers import {auto_class}", "",
            f'base = {auto_class}.from_pretrained("{base}"{remote})', f'model = PeftModel.from_pretrained(base, "{repo}")',
        ])  # fmt: skip
    auto_map = source.config.get("auto_map") or {}
    # Auto classes that load more than `AutoModel` does (a pretraining or task head).
    heads = [
        c
        for c, target in auto_map.items()
        if c not in ("AutoConfig", "AutoModel") and target != auto_map.get("AutoModel")
    ]
    composite = (source.folder / "processor_config.json").is_file()
    processors = ["AutoProcessor"] if with_mmfm or composite else []
    imports = ", ".join(["AutoModel", *heads[:1], *processors, *_processor_classes(source, with_mmfm)])
    lines += [f"from transformers import {imports}"]
    lines += [
        "",
        f'model = AutoModel.from_pretrained("{repo}"{remote})  # the encoder(s): features, embeddings',
    ]
    if heads:
        lines.append(f'with_head = {heads[0]}.from_pretrained("{repo}"{remote})  # with its trained head(s)')
    if with_mmfm:
        # mmfm's processor for every modality of the model (an MMFMProcessor for a composite)
        lines.append(f'processor = AutoProcessor.from_pretrained("{repo}")')
    else:
        if composite:
            lines.append(f'processor = AutoProcessor.from_pretrained("{repo}"{remote})  # every modality')
        for modality, auto_class in _processor_loaders(source):
            name = "tokenizer" if modality == "text" else f"{modality}_processor"
            lines.append(
                f'{name} = {auto_class}.from_pretrained("{repo}"{"" if modality == "text" else remote})'
            )
    tag = facts.pipeline_tag(source)
    if not with_mmfm and tag == "zero-shot-image-classification" and _processors_without_mmfm(source):
        lines += ["", "from transformers import pipeline", "",
                  f'classify = pipeline("{tag}", model="{repo}", trust_remote_code=True)',
                  'classify(image, candidate_labels=["a cat", "a dog"])']  # fmt: skip
    return "\n".join(lines)


def _adapter_base_class(source: PublishSource) -> str:
    """The Auto class that loads the model the adapter was trained on: PEFT records its class
    (`auto_mapping.base_model_class`), the base config's `auto_map` says which Auto class builds it."""
    trained_on = ((source.adapter or {}).get("auto_mapping") or {}).get("base_model_class")
    auto_map = source.config.get("auto_map") or {}
    found = [c for c, target in auto_map.items() if c != "AutoConfig" and target.split(".")[-1] == trained_on]
    return "AutoModel" if not found or "AutoModel" in found else found[0]


def _processor_loaders(source: PublishSource) -> list[tuple[str, str]]:
    """`(modality, Auto class)` of the processors transformers loads from the folder without mmfm."""
    loaders = []
    found = facts.modalities(source.config)
    if "text" in found and (source.folder / "tokenizer_config.json").is_file():
        loaders.append(("text", "AutoTokenizer"))
    # An encoder's processor is in `preprocessor_config.json`; a composite's settings are all in
    # `processor_config.json`, from which AutoImageProcessor / AutoFeatureExtractor read their own entry.
    saved = [source.folder / name for name in ("preprocessor_config.json", "processor_config.json")]
    if any(path.is_file() and json.loads(path.read_text()).get("auto_map") for path in saved):
        for modality in found:
            if modality != "text":
                loaders.append((modality, PROCESSOR_AUTO_CLASSES.get(modality, "AutoFeatureExtractor")))
    return loaders


def _processor_classes(source: PublishSource, with_mmfm: bool) -> list[str]:
    return [] if with_mmfm else list(dict.fromkeys(c for _, c in _processor_loaders(source)))


def _processors_without_mmfm(source: PublishSource) -> bool:
    return {m for m, _ in _processor_loaders(source)} >= set(facts.modalities(source.config))


def _processor_note(source: PublishSource) -> str | None:
    missing = sorted(set(facts.modalities(source.config)) - {m for m, _ in _processor_loaders(source)})
    if source.adapter is not None or not missing:
        return None
    return (
        f"The {' and '.join(missing)} processor of this model is mmfm code that is not in this repository "
        "(`preprocessor_config.json` has no `auto_map`): preprocess with mmfm's `MMFMProcessor` as above, or "
        "reproduce the settings of `preprocessor_config.json`."
    )


def _limitations(
    source: PublishSource, found: list[str], recorded: str | None, hub_base: str | None, evaluated: bool
) -> list[str]:
    lines = []
    data = facts.training_data(source)
    steps = (source.metrics or {}).get("steps")
    if any(d["kind"] == "demo" for d in data):
        subsets = ", ".join(d["name"] for d in data)
        lines.append(
            f"Trained{f' for {steps} steps' if steps is not None else ''} on mmfm's small demo corpus ({subsets}), "
            "built offline from packaged datasets and generated data: it demonstrates the pipeline and is not a "
            "general-purpose model."
        )
    elif data:
        lines.append(
            f"Trained only on {', '.join(d['name'] for d in data)}; its behaviour elsewhere is unknown."
        )
    else:
        lines.append("Its training data is not recorded next to it (no run folder); ask its author.")
    if "text" in found and (source.task_section.get("model") or {}).get("tokenizer") == "demo":
        lines.append("Its tokenizer was trained on the demo corpus: a small vocabulary of English text.")
    lines.append(
        "Evaluated only on the held-out test splits listed above."
        if evaluated
        else "Not evaluated at the end of its run: measure it on your data before relying on it."
    )
    if recorded and not hub_base:
        lines.append(
            "Its base model is a local folder: the `base_model` metadata is missing until it is replaced."
        )
    if source.adapter is not None:
        lines.append("An adapter only: it runs on top of its base model, which must be loaded first.")
    if source.config.get("auto_map"):
        whose = "its base model's repository's" if source.adapter is not None else "this repository's"
        lines.append(f"Loading without mmfm runs {whose} Python code (`trust_remote_code=True`).")
    lines.append("No safety, bias or robustness evaluation was done.")
    return lines


def _format(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, separators=(", ", ": "))
    return str(value).replace("|", "\\|")  # a table cell ends at an unescaped `|`


__all__ = ["DEFAULT_LICENSE", "build_model_card"]
