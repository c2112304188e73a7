"""Demo corpus: small real datasets per modality, built offline from installed packages and programs.

    from mmfm.data.demo import build_demo_corpus, load_demo_dataset, load_demo_tokenizer
    build_demo_corpus()                                  # or: python -m mmfm.data.demo
    digits = load_demo_dataset("vision", "digits")       # DatasetDict with "train" and "test"

`DEMO_SUBSETS` lists the subsets per modality; each modality module (`text`, `vision`, `audio`,
`graph`, `timeseries`) documents its subsets' columns and shapes.
"""

from .corpus import (
    DEMO_SUBSETS,
    build_demo_corpus,
    demo_corpus_dir,
    load_demo_dataset,
    load_demo_tokenizer,
    read_manifest,
)

__all__ = [
    "DEMO_SUBSETS",
    "build_demo_corpus",
    "demo_corpus_dir",
    "load_demo_dataset",
    "load_demo_tokenizer",
    "read_manifest",
]
