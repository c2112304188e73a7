"""Text subsets of the demo corpus: an unlabelled pretraining corpus and two small labelled sets.

Subsets and columns:
    corpus (train only): `text` str, `source` str (`"pydoc"`, `"lee_background"`, `"wikipedia"`,
        `"wordnet"`). Paragraphs of the Python reference (stdlib `pydoc_data`), the 300 Lee news
        documents and the Wikipedia excerpt bundled with gensim, and WordNet 3.0 glosses read from
        `/usr/share/wordnet` (Debian `wordnet-base`). Strings under `MIN_CHARS` characters are dropped.
    sentiment: `text` str, `label` ClassLabel(["negative", "positive"]); gensim's `pang_lee_polarity.cor`.
    newsgroups: `text` str (body only: the headers name the newsgroup, i.e. the label),
        `label` ClassLabel(["alt.atheism", "sci.space"]); gensim's `mini_newsgroup`.
"""

from __future__ import annotations

import bz2
import io
import logging
import pickle
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Features, Value

from .sources import (
    BuildResult,
    SourceUnavailable,
    cap_indices,
    labelled_splits,
    make_splits,
    require_file,
    require_module,
    subset_rng,
)

logger = logging.getLogger(__name__)

MIN_CHARS = 30
WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_MAX_GLOSSES = 20_000
WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
GENSIM_INSTALL = "pip install gensim"
WORDNET_INSTALL = "apt-get install wordnet-base"


def _clean(text: str) -> str:
    """Collapse whitespace to single spaces: rows are single-line records."""
    return " ".join(text.split())


def _paragraphs(text: str) -> list[str]:
    return [_clean(p) for p in re.split(r"\n\s*\n", text)]


def pydoc_paragraphs() -> list[str]:
    """Paragraphs of the Python language reference topics shipped in the stdlib (`pydoc_data`)."""
    import pydoc_data.topics

    return [p for topic in pydoc_data.topics.topics.values() for p in _paragraphs(topic)]


def lee_documents() -> list[str]:
    """The 300 news documents of gensim's `lee_background.cor`, one string each."""
    utils = require_module("gensim.test.utils", GENSIM_INSTALL)
    with open(utils.datapath("lee_background.cor"), encoding="utf8") as f:
        return [_clean(line) for line in f]


_WIKI_HEADING = re.compile(r"^\s*=+[^=].*=+\s*$")


def wikipedia_paragraphs(limit: int | None = None) -> Iterator[str]:
    """Paragraphs of the Wikipedia excerpt bundled with gensim, markup stripped by `filter_wiki`.

    Redirects and articles under 500 characters are dropped; heading lines, bold/italic quotes and list
    bullets are removed. Stops after `limit` paragraphs of at least `MIN_CHARS` characters (parsing
    the whole file takes ~3 s, so capped test builds stop early).
    """
    utils = require_module("gensim.test.utils", GENSIM_INSTALL)
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    count = 0
    with bz2.open(utils.datapath(WIKI_FILE)) as f:
        for _, markup, _ in extract_pages(f, filter_namespaces=("0",)):
            article = filter_wiki(markup)
            if article.lstrip().lower().startswith("#redirect") or len(article) <= 500:
                continue
            for para in re.split(r"\n\s*\n", article):
                lines = [ln.lstrip("*#:; ") for ln in para.splitlines() if not _WIKI_HEADING.match(ln)]
                text = _clean(" ".join(lines).replace("'''", "").replace("''", ""))
                if len(text) >= MIN_CHARS:
                    yield text
                    count += 1
                    if limit is not None and count >= limit:
                        return


def wordnet_glosses(max_glosses: int, rng: np.random.Generator) -> list[str]:
    """`"lemma, lemma: gloss"` strings from the WordNet 3.0 `data.*` files, a seeded sample of `max_glosses`.

    nltk cannot read Debian's WordNet (it refuses roots outside its data directories and the package has
    no `lexnames`), so the database lines are parsed directly: fields are
    `offset lex_filenum ss_type w_cnt(hex) word lex_id ... | gloss`; licence lines start with spaces.
    """
    glosses = []
    for pos in ("noun", "verb", "adj", "adv"):
        path = require_file(WORDNET_DIR / f"data.{pos}", WORDNET_INSTALL)
        with open(path, encoding="utf8") as f:
            for line in f:
                if line.startswith(" ") or " | " not in line:
                    continue
                fields, gloss = line.split(" | ", 1)
                parts = fields.split()
                n_words = int(parts[3], 16)
                # adjective lemmas may carry a syntactic marker such as "(a)"; drop it
                words = [re.sub(r"\(\w+\)$", "", w).replace("_", " ") for w in parts[4 : 4 + 2 * n_words : 2]]
                glosses.append(f"{', '.join(words[:3])}: {gloss.strip()}")
    if len(glosses) > max_glosses:
        keep = np.sort(rng.choice(len(glosses), size=max_glosses, replace=False))
        glosses = [glosses[i] for i in keep]
    return glosses


def build_corpus(max_samples: int | None, seed: int) -> BuildResult:
    """Unlabelled text corpus from four sources; each source is optional except the stdlib one."""
    rng = subset_rng(seed, "text/corpus")
    # With a cap, every source gets an equal share so a tiny build still mixes all of them.
    share = None if max_samples is None else max(1, -(-max_samples // 4))
    texts: list[str] = []
    sources: list[str] = []
    notes: list[str] = []
    loaders = {
        "pydoc": lambda: pydoc_paragraphs(),
        "lee_background": lambda: lee_documents(),
        "wikipedia": lambda: list(wikipedia_paragraphs(limit=share)),
        "wordnet": lambda: wordnet_glosses(min(WORDNET_MAX_GLOSSES, share or WORDNET_MAX_GLOSSES), rng),
    }
    for name, load in loaders.items():
        try:
            rows = [t for t in load() if len(t) >= MIN_CHARS]
        except SourceUnavailable as err:
            logger.warning("text/corpus: leaving out %s: %s", name, err)
            notes.append(f"left out {name}: {err}")
            continue
        rows = rows[:share] if share is not None else rows
        texts.extend(rows)
        sources.extend([name] * len(rows))
    if max_samples is not None and len(texts) > max_samples:
        keep = cap_indices(sources, max_samples, rng)
        texts, sources = [texts[i] for i in keep], [sources[i] for i in keep]
    features = Features({"text": Value("string"), "source": Value("string")})
    return BuildResult(
        dataset=make_splits({"text": texts, "source": sources}, features),
        source="stdlib pydoc_data.topics paragraphs; gensim test data lee_background.cor and the bundled "
        "Wikipedia excerpt (filter_wiki, paragraphs); WordNet 3.0 glosses (/usr/share/wordnet, "
        f"seeded sample of {WORDNET_MAX_GLOSSES})",
        license="pydoc_data: PSF; gensim test data: gensim LGPL-2.1, data licence not stated; Wikipedia "
        "excerpt: CC BY-SA (not stated in the package); WordNet 3.0 licence (permissive)",
        notes=notes,
    )


def build_sentiment(max_samples: int | None, seed: int) -> BuildResult:
    """Pang & Lee polarity sentences (200, balanced), 80/20 stratified split."""
    utils = require_module("gensim.test.utils", GENSIM_INSTALL)
    texts, labels = [], []
    # The file is latin-1, not UTF-8; each line is `__label__pos|neg text`.
    with open(utils.datapath("pang_lee_polarity.cor"), encoding="latin-1") as f:
        for line in f:
            tag, _, text = line.strip().partition(" ")
            texts.append(text.strip())
            labels.append({"__label__neg": 0, "__label__pos": 1}[tag])
    rng = subset_rng(seed, "text/sentiment")
    keep = cap_indices(labels, max_samples, rng)
    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    columns = {"text": [texts[i] for i in keep], "label": [labels[i] for i in keep]}
    return BuildResult(
        dataset=labelled_splits(columns, features, "label", rng),
        source="gensim test data pang_lee_polarity.cor (Pang & Lee movie-review sentences); seeded "
        "stratified 80/20 split",
        license="gensim LGPL-2.1 package; data licence not stated",
    )


class _BunchShim(pickle.Unpickler):
    """Unpickles gensim's Python-2 pickle of an old sklearn `Bunch` (module renamed since)."""

    def find_class(self, module, name):
        if (module, name) == ("sklearn.datasets.base", "Bunch"):
            return dict
        return super().find_class(module, name)

    def load_bunch(self) -> dict:
        bunch = self.load()
        # An old Bunch pickles as a dict subclass; with `dict` substituted, state lands in the dict.
        return dict(bunch)


def build_newsgroups(max_samples: int | None, seed: int) -> BuildResult:
    """gensim's mini 20-newsgroups (alt.atheism vs sci.space, 100 each), headers removed, 80/20 split."""
    utils = require_module("gensim.test.utils", GENSIM_INSTALL)
    with open(utils.datapath("mini_newsgroup"), "rb") as f:
        raw = zlib.decompress(f.read())
    bunch = _BunchShim(io.BytesIO(raw), encoding="latin-1").load_bunch()
    names = list(bunch["target_names"])
    if names != ["alt.atheism", "sci.space"]:
        raise RuntimeError(f"Unexpected newsgroups in gensim's mini_newsgroup: {names}.")
    # Headers ("Newsgroups: sci.space", "Path: ...") give the label away; keep the body, as
    # sklearn's fetch_20newsgroups(remove=("headers",)) does.
    # One message repeats its headers inside the body, so "Newsgroups:" lines are dropped everywhere.
    bodies = [doc.partition("\n\n")[2] for doc in bunch["data"]]
    texts = ["\n".join(ln for ln in b.splitlines() if "Newsgroups:" not in ln).strip() for b in bodies]
    labels = [int(t) for t in bunch["target"]]
    rng = subset_rng(seed, "text/newsgroups")
    keep = cap_indices(labels, max_samples, rng)
    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
    columns = {"text": [texts[i] for i in keep], "label": [labels[i] for i in keep]}
    return BuildResult(
        dataset=labelled_splits(columns, features, "label", rng),
        source="gensim test data mini_newsgroup (20 Newsgroups subset), message bodies; seeded stratified "
        "80/20 split",
        license="not stated (20 Newsgroups)",
    )


SUBSETS = {"corpus": build_corpus, "sentiment": build_sentiment, "newsgroups": build_newsgroups}
