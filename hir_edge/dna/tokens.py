"""DNA tokenizers for the barcode encoder: BarcodeBERT-style k-mers and DNABERT-2's BPE.

Both turn clean reads (``hir_edge.dna.io``) into fixed-shape ``int64`` id and attention-mask
arrays, the inputs of the ONNX DNA encoder, so the edge runtime needs numpy only (the
``tokenizers`` library is imported inside ``BpeTokenizer``).

K-mer vocabulary layout, chosen so BarcodeBERT's published embedding rows line up. Read in
``Kari-Genomics-Lab/BarcodeBERT`` ``barcodebert/inference.py`` (commit 0985981) and
``barcodebert/datasets.py``, and in ``bioscan-ml/clibd`` ``bioscanclip/model/dna_encoder.py``:

* The vocabulary is torchtext's ``build_vocab_from_iterator`` over ``product("ACGT",
  repeat=k)`` with specials first. Every k-mer occurs once, so torchtext's frequency sort
  keeps them in lexicographic A<C<G<T order: id = n_specials + the k-mer read as a base-4
  number (A=0, C=1, G=2, T=3; first base most significant).
* The paper checkpoints (``--from_paper``, used by CLIBD with k=5) have specials
  ``<MASK>, <CLS>, <UNK>`` (ids 0, 1, 2; vocab 4**k + 3 = 1027 for k=5); later BarcodeBERT
  checkpoints drop ``<CLS>`` (``specials=("<MASK>", "<UNK>")``, no special tokens added).
* Any k-mer holding a non-ACGT base (N) is ``<UNK>``. There is no pad token: sequences are
  padded with N to ``max_len`` nucleotides, so padding positions hold the ``<UNK>`` id with
  attention mask 0. Our default ``pad_token`` is therefore ``<UNK>``.
* k-mers are non-overlapping (stride k) and a trailing partial k-mer is dropped (it would be
  N-padded to ``<UNK>`` under mask 0 there: the same ids and mask).
* ``max_len`` counts nucleotides there (660 -> 132 5-mers); our ``max_length`` counts tokens,
  the special token included: CLIBD's input is 1 + 132 = 133 tokens.
* CLIBD prepends id 0 (which is ``<MASK>`` in that vocabulary, not ``<CLS>``) and feeds no
  attention mask. To reproduce its inputs exactly use ``cls_token="<MASK>"``,
  ``max_length=133`` and an all-ones mask.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from hir_edge.dna.qc import BASE_CODE
from hir_edge.errors import InputError

BARCODEBERT_SPECIALS = ("<MASK>", "<CLS>", "<UNK>")
UNK_TOKEN = "<UNK>"
MAX_K = 12  # 4**12 = 16.8 M rows is already far beyond any published k-mer model

_BASES = "ACGT"


def _pad_batch(rows: Sequence[np.ndarray], length: int, pad_id: int) -> tuple[np.ndarray, ...]:
    ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


class KmerTokenizer:
    """BarcodeBERT-style k-mer tokenizer (see the module docstring for the vocabulary layout).

    Args:
        k: k-mer length.
        stride: step between k-mers; None means k (non-overlapping, BarcodeBERT), 1 overlapping.
        max_length: tokens per sequence, the special token included; longer reads are
            truncated, shorter ones padded in ``encode_batch``.
        add_special_tokens: prepend ``cls_token``.
        specials: special tokens, in id order, before the k-mers; must hold ``<UNK>``.
        cls_token: the special prepended when ``add_special_tokens``.
        pad_token: the special that fills padding positions (mask 0 there).
        mask_unknown: give ``<UNK>`` k-mers (any N) attention mask 0, so the encoder neither
            attends to nor pools an unread stretch. Off: BarcodeBERT's inputs, where they
            count as tokens.
    """

    kind = "kmer"

    def __init__(
        self,
        k: int = 5,
        stride: int | None = None,
        max_length: int = 256,
        add_special_tokens: bool = True,
        specials: Sequence[str] = BARCODEBERT_SPECIALS,
        cls_token: str = "<CLS>",
        pad_token: str = UNK_TOKEN,
        mask_unknown: bool = False,
    ):
        specials = tuple(specials)
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
        if stride is not None and stride < 1:
            raise ValueError(f"stride must be >= 1 (or None for k), got {stride}")
        if max_length < 1 + add_special_tokens:
            raise ValueError(f"max_length is too small for any k-mer: {max_length}")
        if len(set(specials)) != len(specials) or UNK_TOKEN not in specials:
            raise ValueError(f"specials must be distinct and include {UNK_TOKEN!r}: {specials}")
        for name, token in (("pad_token", pad_token), ("cls_token", cls_token)):
            if token not in specials and (name == "pad_token" or add_special_tokens):
                raise ValueError(f"{name} {token!r} is not one of the specials {specials}")
        self.k = k
        self.stride = k if stride is None else stride
        self.max_length = max_length
        self.add_special_tokens = add_special_tokens
        self.specials = specials
        self.cls_token = cls_token
        self.pad_token = pad_token
        self.mask_unknown = mask_unknown
        self._powers = 4 ** np.arange(k - 1, -1, -1, dtype=np.int64)

    @property
    def vocab_size(self) -> int:
        return len(self.specials) + 4**self.k

    @property
    def unk_id(self) -> int:
        return self.specials.index(UNK_TOKEN)

    @property
    def pad_id(self) -> int:
        return self.specials.index(self.pad_token)

    @property
    def cls_id(self) -> int | None:
        return self.specials.index(self.cls_token) if self.cls_token in self.specials else None

    def encode(self, seq: str) -> np.ndarray:
        """Token ids of one read, truncated to ``max_length`` but not padded."""
        n_prefix = int(self.add_special_tokens)
        budget = self.max_length - n_prefix
        used = min(len(seq), (budget - 1) * self.stride + self.k)  # enough for ``budget`` k-mers
        codes = BASE_CODE[np.frombuffer(seq[:used].encode("ascii", "replace"), dtype=np.uint8)]
        if len(codes) >= self.k:
            windows = np.lib.stride_tricks.sliding_window_view(codes, self.k)[:: self.stride]
            kmers = np.where(
                (windows >= 0).all(axis=1), windows @ self._powers + len(self.specials), self.unk_id
            )
        else:
            kmers = np.zeros(0, dtype=np.int64)
        prefix = [self.cls_id] if n_prefix else []
        return np.concatenate([np.asarray(prefix, dtype=np.int64), kmers[:budget]])

    def encode_batch(self, seqs: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, attention mask), both ``int64 [B, max_length]``; padding holds ``pad_id``,
        and with ``mask_unknown`` every ``<UNK>`` k-mer has mask 0 too."""
        ids, mask = _pad_batch([self.encode(s) for s in seqs], self.max_length, self.pad_id)
        if self.mask_unknown:
            mask[ids == self.unk_id] = 0
        return ids, mask

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Token strings of ids (specials by name, k-mers as bases)."""
        tokens = []
        for token_id in np.asarray(list(ids), dtype=np.int64).tolist():
            if not 0 <= token_id < self.vocab_size:
                raise ValueError(
                    f"token id {token_id} is outside the vocabulary (0..{self.vocab_size - 1})"
                )
            if token_id < len(self.specials):
                tokens.append(self.specials[token_id])
                continue
            value = token_id - len(self.specials)
            tokens.append("".join(_BASES[(value // 4**p) % 4] for p in range(self.k - 1, -1, -1)))
        return tokens

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "k": self.k,
            "stride": self.stride,
            "max_length": self.max_length,
            "add_special_tokens": self.add_special_tokens,
            "specials": list(self.specials),
            "cls_token": self.cls_token,
            "pad_token": self.pad_token,
            "mask_unknown": self.mask_unknown,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "kind")
        return f"KmerTokenizer({args})"


class BpeTokenizer:
    """DNABERT-2's BPE tokenizer, from the ``tokenizer.json`` its hub repository ships.

    The file's post-processor adds ``[CLS]`` and ``[SEP]``; truncation keeps them (the
    ``tokenizers`` library truncates the sequence part), and padding uses the file's pad token.

    Args:
        path: the ``tokenizer.json``.
        max_length: tokens per sequence, specials included.
        pad_token: the padding token in that vocabulary.
    """

    kind = "bpe"

    def __init__(self, path: str | Path, max_length: int = 512, pad_token: str = "[PAD]"):
        from tokenizers import Tokenizer

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(self.path, "does not exist (expected a tokenizers tokenizer.json)")
        try:
            tokenizer = Tokenizer.from_file(str(self.path))
        except Exception as exc:  # the library raises a bare Exception on malformed JSON
            raise InputError(self.path, f"is not a tokenizers tokenizer.json ({exc})") from exc
        pad_id = tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise InputError(self.path, f"has no pad token {pad_token!r} in its vocabulary")
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding(length=max_length, pad_id=pad_id, pad_token=pad_token)
        self._tokenizer = tokenizer
        self.max_length = max_length
        self.pad_token = pad_token
        self.pad_id = pad_id
        unk = getattr(tokenizer.model, "unk_token", None)
        self.unk_id = tokenizer.token_to_id(unk) if unk else None
        self.cls_id = tokenizer.token_to_id("[CLS]")

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, seq: str) -> np.ndarray:
        """Token ids of one read, truncated to ``max_length`` but not padded."""
        encoding = self._tokenizer.encode(seq)
        ids = np.asarray(encoding.ids, dtype=np.int64)
        return ids[np.asarray(encoding.attention_mask, dtype=bool)]

    def encode_batch(self, seqs: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, attention mask), both ``int64 [B, max_length]``; padding holds ``pad_id``."""
        encodings = self._tokenizer.encode_batch(list(seqs))
        if not encodings:
            empty = np.zeros((0, self.max_length), dtype=np.int64)
            return empty, empty.copy()
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    def decode(self, ids: Iterable[int]) -> list[str]:
        tokens = []
        for token_id in np.asarray(list(ids), dtype=np.int64).tolist():
            token = self._tokenizer.id_to_token(token_id)
            if token is None:
                raise ValueError(f"token id {token_id} is outside the vocabulary of {self.path}")
            tokens.append(token)
        return tokens

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "path": str(self.path),
            "max_length": self.max_length,
            "pad_token": self.pad_token,
        }


def tokenizer_from_dict(d: dict, root: str | Path | None = None) -> KmerTokenizer | BpeTokenizer:
    """Rebuild a tokenizer from ``to_dict()`` output (as stored in a bundle manifest).

    Args:
        d: ``{"kind": "kmer", ...}`` or ``{"kind": "bpe", "path": ..., "max_length": ...}``.
        root: folder that a relative BPE ``path`` is relative to (the bundle directory).

    Raises:
        ValueError: an unknown kind or an unknown key (named, with the keys allowed).
    """
    kinds = {"kmer": KmerTokenizer, "bpe": BpeTokenizer}
    settings = dict(d)
    kind = settings.pop("kind", None)
    if kind not in kinds:
        raise ValueError(f"tokenizer kind must be one of {', '.join(kinds)}, got {kind!r}")
    allowed = {
        "kmer": {
            "k",
            "stride",
            "max_length",
            "add_special_tokens",
            "specials",
            "cls_token",
            "pad_token",
            "mask_unknown",
        },
        "bpe": {"path", "max_length", "pad_token"},
    }[kind]
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ValueError(
            f"unknown {kind} tokenizer settings {unknown}; allowed: {', '.join(sorted(allowed))}"
        )
    if kind == "bpe":
        if "path" not in settings:
            raise ValueError("a bpe tokenizer needs 'path' (its tokenizer.json)")
        path = Path(settings.pop("path"))
        if root is not None and not path.is_absolute():
            path = Path(root) / path
        return BpeTokenizer(path, **settings)
    return KmerTokenizer(**settings)


__all__ = [
    "BARCODEBERT_SPECIALS",
    "UNK_TOKEN",
    "BpeTokenizer",
    "KmerTokenizer",
    "tokenizer_from_dict",
]
