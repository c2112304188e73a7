"""Encode real demo samples of every modality with mmfm's encoders (the main job until the training
recipe lands).

What it shows:
1. each encoder's size at the tiny, small and base presets (counted on the meta device);
2. a composite `MMFMModel` with all five encoders built from its config, and the processors that match;
3. real paired samples from the demo corpus (shape images and their captions, spoken digits and their
   transcripts, molecules and their names, sensor series and their descriptions) processed and encoded:
   token and embedding shapes per modality, and a text-vs-modality cosine-similarity table for each pair;
4. the model and processors saved to one folder and reloaded with `AutoModel`, with identical embeddings.

The encoders are randomly initialised here, so similarities are near zero and carry no meaning yet: the
contrastive objectives of a later issue train them.

Run with `make demo` (sets up and builds the demo corpus first) or, after that,
`python examples/encode_demo.py [--preset small] [--output outputs/demo_model]`.
"""

import argparse
import time
from pathlib import Path

import torch
from transformers import AutoModel

import mmfm
from mmfm.data.demo import load_demo_dataset, load_demo_tokenizer
from mmfm.modalities import get_modality, modality_specs
from mmfm.processing import MMFMProcessor

PAIRS = {  # modality -> (demo subset, column holding the paired text, processor options)
    "vision": ("shapes", "caption", {}),
    "audio": ("spoken_digits", "transcript", {}),
    "graph": ("molecule_names", "caption", {}),
    # UCR recordings are up to a few hundred steps: keep the most recent `context_length` (tiny: 64).
    "timeseries": ("ucr", "caption", {"truncation": True}),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small", choices=sorted(mmfm.models.ENCODER_PRESETS))
    parser.add_argument("--samples", type=int, default=3, help="paired samples per modality")
    parser.add_argument(
        "--output", default="outputs/demo_model", help="where the model and processors are saved"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def parameter_table(fixed: dict[str, dict]) -> None:
    """Parameters of every encoder at every preset, without allocating weights."""
    presets = sorted(mmfm.models.ENCODER_PRESETS, key=lambda p: mmfm.models.ENCODER_PRESETS[p]["hidden_size"])
    print(f"{'encoder':<12}" + "".join(f"{p:>14}" for p in presets))
    for modality, spec in modality_specs().items():
        counts = []
        for preset in presets:
            with torch.device("meta"):
                model = spec.encoder_class(spec.config_class.from_preset(preset, **fixed[modality]))
            counts.append(sum(p.numel() for p in model.parameters()))
        print(f"{modality:<12}" + "".join(f"{c / 1e6:>13.2f}M" for c in counts))


def fixed_fields(pairs: dict, tokenizer) -> dict[str, dict]:
    """Encoder fields that the demo data fixes whatever the preset, per modality: the tokenizer's
    vocabulary, and what each modality's spec reads off a row (the graph's node-feature width)."""
    fields = {}
    for modality, spec in modality_specs().items():
        if spec.tokenized:
            fields[modality] = {"vocab_size": len(tokenizer)}
        else:
            fields[modality] = dict(spec.fields_from_data(pairs[modality][0][0]))
    return fields


def load_pairs(count: int) -> dict[str, tuple[list, list[str]]]:
    """`count` (sample, paired text) rows per modality from the demo corpus."""
    pairs = {}
    for modality, (subset, text_column, _) in PAIRS.items():
        dataset = load_demo_dataset(modality, subset)
        rows = dataset["test" if "test" in dataset else "train"]
        if modality in ("vision", "audio"):  # one sample per class, for a recognisable table
            wanted = {"vision": [0, 1, 2], "audio": [3, 5, 7]}[modality][:count]
            picked = [next(i for i, label in enumerate(rows["label"]) if label == w) for w in wanted]
        elif modality == "timeseries":  # univariate recordings from different UCR sets
            names = ["GunPoint", "ArrowHead", "OSULeaf"][:count]
            picked = [rows["dataset"].index(name) for name in names]
        else:
            picked = list(range(0, len(rows), max(1, len(rows) // count)))[:count]
        selected = rows.select(picked)
        pairs[modality] = (selected, list(selected[text_column]))
    return pairs


def modality_inputs(modality: str, rows) -> dict:
    """The processor input for a modality from demo rows, through the modality's row adapter (the one
    training and evaluation use): `{modality: items, "<modality>_kwargs": options}`."""
    items, options = get_modality(modality).row_adapter(rows[:], "text")
    return {modality: items, f"{modality}_kwargs": {**options, **PAIRS[modality][2]}}


def similarity_table(
    modality: str, texts: list[str], text_embeddings: torch.Tensor, embeddings: torch.Tensor
) -> None:
    similarities = text_embeddings @ embeddings.T
    labels = [t[:38] for t in texts]
    print(f"\ncosine similarity, text (rows) vs {modality} (columns):")
    for label, row in zip(labels, similarities):
        print(f"  {label:<40}" + "".join(f"{v:>8.3f}" for v in row.tolist()))


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    tokenizer = load_demo_tokenizer()
    pairs = load_pairs(args.samples)
    fixed = fixed_fields(pairs, tokenizer)
    print("Encoder sizes (parameters) by preset:")
    parameter_table(fixed)

    sub_configs = {
        f"{m}_config": spec.config_class.from_preset(args.preset, **fixed[m])
        for m, spec in modality_specs().items()
    }
    config = mmfm.MMFMConfig(projection_dim=256, **sub_configs)
    model = mmfm.MMFMModel(config).eval()
    processor = MMFMProcessor.from_model_config(config, tokenizer)
    total = sum(p.numel() for p in model.parameters())
    print(f"\nMMFMModel ({args.preset} encoders, all five modalities): {total / 1e6:.1f}M parameters")
    print(processor)

    embeddings = {}
    with torch.no_grad():
        for modality, (rows, texts) in pairs.items():
            start = time.perf_counter()
            batch = processor(text=texts, **modality_inputs(modality, rows))
            outputs = model(**batch)
            seconds = time.perf_counter() - start
            embeddings[modality] = (outputs.embeddings["text"], outputs.embeddings[modality])
            shapes = {k: tuple(v.shape) for k, v in batch[modality].items()}
            tokens = tuple(outputs.encoder_outputs[modality].last_hidden_state.shape)
            print(
                f"\n[{modality}] {len(texts)} samples from demo/{modality}/{PAIRS[modality][0]} ({seconds:.2f}s)"
            )
            print(f"  inputs: {shapes}")
            print(f"  encoder tokens: {tokens}   embedding: {tuple(outputs.embeddings[modality].shape)}")
            similarity_table(modality, texts, *embeddings[modality])

    output = Path(args.output)
    model.save_pretrained(output)
    processor.save_pretrained(output)
    reloaded = AutoModel.from_pretrained(output).eval()
    reloaded_processor = MMFMProcessor.from_pretrained(output)
    rows, texts = pairs["vision"]
    with torch.no_grad():
        again = reloaded(**reloaded_processor(text=texts, **modality_inputs("vision", rows)))
    difference = (again.embeddings["vision"] - embeddings["vision"][1]).abs().max().item()
    print(
        f"\nSaved to {output}/ and reloaded with AutoModel.from_pretrained: {type(reloaded).__name__}, "
        f"max embedding difference {difference:.1e}"
    )


if __name__ == "__main__":
    main()
