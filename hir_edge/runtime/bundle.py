"""The bundle: the unit of deployment, read without torch.

A bundle is a folder (or a .tar of one) holding ``manifest.json`` — format version, model card,
provenance, preprocessing, tokenizer, scoring settings and the sha256 of every other file —
``taxonomy.json``, the per-rank prompt bank, ONNX graphs (fp32 and INT8), optionally TensorRT
engines and a reference library. Every file is checked against the manifest when the bundle is
opened, so a corrupted copy or an edited file is refused with the name of the file.
"""

from __future__ import annotations

import contextlib
import json
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from hir_edge.errors import BundleError
from hir_edge.io import safe_extract_tar, sha256_file
from hir_edge.taxonomy import Taxonomy

FORMAT = "hir-edge-bundle/1"
MANIFEST = "manifest.json"
PROMPTS = "prompts.npz"
REFERENCES = "references.npz"
TAXONOMY = "taxonomy.json"
MODEL_CARD = "MODEL_CARD.md"


def default_bundle() -> Path:
    """The demo bundle shipped inside the package (a generated world: demo taxa only)."""
    from importlib.resources import files

    return Path(str(files("hir_edge") / "bundles" / "demo"))


@dataclass(frozen=True)
class Graph:
    """One exported part (image, dna, fusion): its ONNX file per precision, and its I/O."""

    files: dict[str, str]
    inputs: dict[str, list] = field(default_factory=dict)
    outputs: dict[str, list] = field(default_factory=dict)
    token_multiple: int | None = None  # DNA: the token axis takes any multiple of it


@dataclass(frozen=True)
class ModelInfo:
    """The manifest's ``model`` section: what was exported, at what size."""

    embed_dim: int
    teacher_preset: str | None = None
    student_preset: str | None = None
    ranks: list[str] = field(default_factory=list)
    taxa: dict[str, int] = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    default_precision: str = "fp32"


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``, typed: every reader goes through :meth:`from_dict`, which refuses an
    unknown or missing key by name. Sections with loaders of their own stay plain dicts here:
    ``preprocess`` (PreprocessConfig), ``dna_tokenizer`` (tokenizer_from_dict), ``scoring``
    (ScoringSettings); so do the records for people (provenance, measurements, export log)."""

    format: str
    model: ModelInfo
    graphs: dict[str, Graph]
    files: dict[str, dict]
    preprocess: dict
    name: str = ""
    description: str = ""
    created: str = ""
    hir_edge_version: str | None = None
    dna_tokenizer: dict | None = None
    provenance: dict = field(default_factory=dict)
    scoring: dict = field(default_factory=dict)
    engines: dict = field(default_factory=dict)
    measurements: dict = field(default_factory=dict)
    export_log: list = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: object, where: str | Path = MANIFEST) -> Manifest:
        """Check the layout before anything reads it, and type it.

        Raises:
            BundleError: naming ``where`` and the key that is missing, unknown or of the wrong
                type.
        """
        if not isinstance(data, dict):
            raise BundleError(f"{where}: is not a JSON object")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise BundleError(
                f"{where}: unknown key {unknown[0]!r}; the bundle is from another hir-edge: "
                "upgrade hir-edge or re-export the bundle"
            )
        for key, kind in (("model", dict), ("graphs", dict), ("files", dict), ("preprocess", dict)):
            if not isinstance(data.get(key), kind):
                found = "missing" if key not in data else f"a {type(data[key]).__name__}"
                raise BundleError(
                    f"{where}: '{key}' is {found}, expected a {kind.__name__}; "
                    "the manifest is incomplete or not from hir-edge export"
                )
        model = data["model"]
        embed_dim = model.get("embed_dim")
        if not isinstance(embed_dim, int) or embed_dim < 1:
            raise BundleError(f"{where}: model.embed_dim is {embed_dim!r}, expected a count")
        graphs = {}
        for part, graph in data["graphs"].items():
            if not isinstance(graph, dict) or not isinstance(graph.get("files"), dict):
                raise BundleError(f"{where}: graph {part!r} lists no files")
            graphs[part] = _typed(Graph, graph, f"{where}: graph {part!r}")
        return cls(
            **{
                **data,
                "model": _typed(ModelInfo, model, f"{where}: model"),
                "graphs": graphs,
            }
        )

    def to_dict(self) -> dict:
        """The JSON form (what :meth:`from_dict` reads back)."""
        return asdict(self)


def _typed(kind, data: dict, where: str):
    """``kind`` from ``data`` by the project's one strict loader (an unknown key is refused by
    name)."""
    from hir_edge.config_loader import from_mapping

    return from_mapping(kind, data, where, error=BundleError, coerce=False)


@dataclass
class References:
    """Embeddings of labelled reference specimens (nearest-neighbour evidence).

    Attributes:
        ids: [M] specimen ids (BOLD process ids).
        labels: [M, L] label ids (-1 missing).
        dna: [M, d] normalised DNA embeddings (zero rows: no barcode).
        image: [M, d] normalised image embeddings, or None.
        barcodes: [M] cleaned reference barcodes (bytes), for k-mer evidence; or None.
        radii: [M, L] each reference's identity to its nearest barcode of another taxon per
            rank (:meth:`hir_edge.runtime.barcodes.LibraryBarcodes.radii`); None: not
            aligned (bundles exported before radii).
    """

    ids: np.ndarray
    labels: np.ndarray
    dna: np.ndarray | None
    image: np.ndarray | None = None
    barcodes: np.ndarray | None = None
    radii: np.ndarray | None = None

    def subset(self, keep: np.ndarray) -> References:
        """The references where ``keep`` (bool [M]) is true: a smaller library, e.g. only the
        training records when a benchmark asks about the others. Radii stay the whole
        library's: a reference's nearest relative may be gone from the subset, so they are at
        least as high as its own would be, and a read's margin at most as large (the
        placement usually answers less deep for it, though its network is not bound to)."""
        return References(
            *(None if a is None else a[keep] for a in (self.ids, self.labels, self.dna)),
            image=None if self.image is None else self.image[keep],
            barcodes=None if self.barcodes is None else self.barcodes[keep],
            radii=None if self.radii is None else self.radii[keep],
        )


@dataclass
class Bundle:
    """An opened, verified bundle."""

    root: Path
    manifest: Manifest
    taxonomy: Taxonomy
    prompt_banks: list[np.ndarray]
    references: References | None = None
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.manifest.name or self.root.name

    @property
    def embed_dim(self) -> int:
        return self.manifest.model.embed_dim

    def graph_path(self, part: str, precision: str) -> Path | None:
        """The ONNX file of ``part`` (image, dna, fusion) at ``precision`` (int8, fp32), if any."""
        graph = self.manifest.graphs.get(part)
        if graph is None or precision not in graph.files:
            return None
        return self.root / graph.files[precision]

    def precisions(self, part: str) -> list[str]:
        graph = self.manifest.graphs.get(part)
        return sorted(graph.files) if graph else []

    def has_part(self, part: str) -> bool:
        return part in self.manifest.graphs

    def size_bytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.manifest.files.values())

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _verify(root: Path, manifest: Manifest) -> None:
    # open_bundle has checked that the core files are listed: the list is never empty here
    for rel, info in manifest.files.items():
        path = (root / rel).resolve()
        if not path.is_relative_to(root.resolve()):
            raise BundleError(f"{root / MANIFEST}: file entry {rel!r} points outside the bundle")
        if not path.is_file():
            raise BundleError(f"{root}: {rel} is missing (listed in the manifest)")
        digest = sha256_file(path)
        if digest != info.get("sha256"):
            raise BundleError(
                f"{root}: {rel} does not match its checksum in the manifest "
                "(corrupted or modified); rebuild or re-copy the bundle"
            )


def open_bundle(
    path: str | Path, verify: bool = True, trusted_key: str | Path | None = None
) -> Bundle:
    """Open a bundle folder or .tar, check its format and every file's checksum, and, with a
    ``trusted_key``, that its owner signed the manifest (:mod:`hir_edge.signing`).

    Raises:
        BundleError: missing, not a bundle, unsupported format, or a file that fails its check.
    """
    path = Path(path)
    tmp = None
    if path.is_file() and tarfile.is_tarfile(path):
        tmp = tempfile.TemporaryDirectory(prefix="hir-edge-bundle-")
        try:
            safe_extract_tar(path, tmp.name)
        except ValueError as err:
            tmp.cleanup()
            raise BundleError(str(err)) from None
        entries = [p for p in Path(tmp.name).iterdir()]
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else Path(tmp.name)
    elif path.is_dir():
        root = path
    else:
        raise BundleError(f"{path}: no such bundle (a folder or .tar with {MANIFEST})")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{path}: not a hir-edge bundle ({MANIFEST} is missing)")
    raw = manifest_path.read_bytes()  # read once: what is verified is what is used
    if trusted_key is not None:  # before anything in the bundle is believed
        from hir_edge.signing import verify_signature

        verify_signature(root, Path(trusted_key), raw)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{manifest_path}: not valid JSON ({err})") from None
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt != FORMAT:
        raise BundleError(
            f"{manifest_path}: bundle format {fmt!r} is not supported by this hir-edge "
            f"(it reads {FORMAT!r}); upgrade hir-edge or re-export the bundle"
        )
    manifest = Manifest.from_dict(data, manifest_path)
    for core in (TAXONOMY, PROMPTS):  # read on every run: never unchecked
        if core not in manifest.files:
            raise BundleError(
                f"{manifest_path}: {core} is not among the checked files; the bundle may "
                "have been edited: rebuild or re-copy it"
            )
    if verify:
        _verify(root, manifest)
    try:
        taxonomy = Taxonomy.load(root / TAXONOMY)
    except (ValueError, KeyError, TypeError) as err:
        raise BundleError(f"{root / TAXONOMY}: not a valid taxonomy ({err})") from None
    with _npz(root / PROMPTS) as data:
        banks = [data[f"rank{level}"].astype(np.float32) for level in range(taxonomy.num_ranks)]
    references = None
    listed = manifest.files
    if REFERENCES in listed or (not verify and (root / REFERENCES).is_file()):
        with _npz(root / REFERENCES) as data:
            references = References(
                ids=data["ids"],
                labels=data["labels"],
                dna=data["dna"].astype(np.float32) if "dna" in data.files else None,
                image=data["image"].astype(np.float32) if "image" in data.files else None,
                barcodes=data["barcodes"] if "barcodes" in data.files else None,
                radii=data["radii"].astype(np.float32) if "radii" in data.files else None,
            )
    _check_shapes(root, manifest, taxonomy, banks, references)
    return Bundle(root, manifest, taxonomy, banks, references, tmp)


@contextlib.contextmanager
def _npz(path: Path) -> Iterator[np.lib.npyio.NpzFile]:
    """An npz of plain arrays (never pickled objects), or a one-line BundleError."""
    try:
        with np.load(path, allow_pickle=False) as data:
            yield data
    except KeyError as err:
        raise BundleError(f"{path}: has no array {err}") from None
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise BundleError(f"{path}: cannot be read as plain arrays ({err})") from None


def version_note(manifest: Manifest) -> str | None:
    """A word when the bundle was made by another hir-edge release than this one."""
    from hir_edge import __version__

    made_by = manifest.hir_edge_version
    if made_by is None or made_by == __version__:
        return None
    return (
        f"note: this bundle was exported by hir-edge {made_by}; this is hir-edge {__version__} "
        "(its format is read, but answers can differ from the exporting release)"
    )


def _check_shapes(root: Path, manifest: Manifest, taxonomy: Taxonomy, banks, references) -> None:
    """Parts that disagree with each other are refused with what disagrees, not a traceback."""
    d = manifest.model.embed_dim
    for level, (rank, bank) in enumerate(zip(taxonomy.ranks, banks)):
        if bank.shape != (taxonomy.size(level), d):
            raise BundleError(
                f"{root}: prompt bank of rank {rank} is {bank.shape}, expected "
                f"({taxonomy.size(level)}, {d}) from taxonomy.json and the manifest"
            )
    if references is not None:
        labels = references.labels
        if labels.ndim != 2 or labels.shape[1] != taxonomy.num_ranks:
            raise BundleError(f"{root}: reference labels have shape {labels.shape}")
        sizes = np.array([taxonomy.size(lv) for lv in range(taxonomy.num_ranks)])
        if (labels >= sizes[None, :]).any():
            raise BundleError(f"{root}: reference labels point past the taxonomy")
        for name in ("dna", "image"):
            emb = getattr(references, name)
            if emb is not None and emb.shape != (len(labels), d):
                raise BundleError(f"{root}: reference {name} embeddings are {emb.shape}")
        radii = references.radii
        if radii is not None and radii.shape != labels.shape:
            raise BundleError(f"{root}: reference radii are {radii.shape}, labels {labels.shape}")
    for part, graph in manifest.graphs.items():
        for rel in graph.files.values():
            if manifest.files and rel not in manifest.files:
                raise BundleError(f"{root}: the {part} graph {rel} is not among the checked files")
