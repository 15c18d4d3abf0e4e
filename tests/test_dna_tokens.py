"""K-mer and BPE DNA tokenizers (hir_edge.dna.tokens)."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hir_edge.dna.tokens import BpeTokenizer, KmerTokenizer, tokenizer_from_dict
from hir_edge.errors import InputError

# ----------------------------------------------------------------------------- k-mers


def test_barcodebert_vocabulary_layout():
    tok = KmerTokenizer()  # k=5, BarcodeBERT paper layout: <MASK>, <CLS>, <UNK>, then k-mers
    assert (tok.vocab_size, tok.cls_id, tok.unk_id, tok.pad_id) == (1027, 1, 2, 2)
    assert tok.decode([0, 1, 2, 3, 4, 1026]) == [
        "<MASK>",
        "<CLS>",
        "<UNK>",
        "AAAAA",
        "AAAAC",
        "TTTTT",
    ]


def test_hand_computed_ids_k3_non_overlapping():
    tok = KmerTokenizer(k=3, max_length=10)
    # ACG = 0*16 + 1*4 + 2 = 6 -> 6+3 = 9; TTT = 63 -> 66; NAA -> <UNK> 2; "GG" is dropped.
    ids = tok.encode("ACGTTTNAAGG")
    assert ids.dtype == np.int64
    assert ids.tolist() == [1, 9, 66, 2]
    assert tok.decode(ids) == ["<CLS>", "ACG", "TTT", "<UNK>"]
    assert tok.encode("acgttt").tolist() == [1, 9, 66]


def test_hand_computed_ids_k3_overlapping():
    tok = KmerTokenizer(k=3, stride=1, max_length=10, add_special_tokens=False)
    # ACG 6, CGT 1*16+2*4+3 = 27, GTA 2*16+3*4 = 44, TAC 3*16+1 = 49; each +3.
    assert tok.encode("ACGTAC").tolist() == [9, 30, 47, 52]


def test_hand_computed_ids_k5():
    tok = KmerTokenizer(k=5)
    # ACGTT = 64+32+12+3 = 111, AGGCT = 128+32+4+3 = 167, TANAC -> <UNK>, GGATT = 512+128+15.
    assert tok.encode("ACGTTAGGCTTANACGGATT").tolist() == [1, 114, 170, 2, 658]
    overlapping = KmerTokenizer(k=5, stride=1, add_special_tokens=False)
    # ACGTT, CGTTA = 256+128+48+12+0 = 444 (-> 447), GTTAG = 512+192+48+0+2 = 754 (-> 757)
    assert overlapping.encode("ACGTTAG").tolist() == [114, 447, 757]


def test_any_non_acgt_base_gives_unk():
    tok = KmerTokenizer(k=3, add_special_tokens=False)
    assert tok.encode("ACNACRAC-ACUACG").tolist() == [2, 2, 2, 2, 9]


def test_padding_truncation_and_mask():
    tok = KmerTokenizer(k=3, max_length=5)
    ids, mask = tok.encode_batch(["ACGTTT", "A", "ACG" * 10])
    assert ids.dtype == mask.dtype == np.int64
    assert ids.tolist() == [[1, 9, 66, 2, 2], [1, 2, 2, 2, 2], [1, 9, 9, 9, 9]]
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]
    empty_ids, empty_mask = tok.encode_batch([])
    assert empty_ids.shape == empty_mask.shape == (0, 5)


def test_barcodebert_v2_layout_and_clibd_quirk():
    v2 = KmerTokenizer(k=4, specials=("<MASK>", "<UNK>"), add_special_tokens=False)
    assert (v2.vocab_size, v2.unk_id, v2.pad_id, v2.cls_id) == (258, 1, 1, None)
    assert v2.encode("ACGT").tolist() == [27 + 2]
    # CLIBD prepends id 0 (<MASK>) and takes 132 5-mers of a 660-nt window: 133 tokens.
    clibd = KmerTokenizer(k=5, max_length=133, cls_token="<MASK>")
    ids, _ = clibd.encode_batch(["ACGTA" * 200])
    assert ids.shape == (1, 133)
    assert ids[0, 0] == 0 and set(ids[0, 1:].tolist()) == {3 + 0 * 256 + 64 + 32 + 12 + 0}


def naive_kmer_ids(seq: str, tok: KmerTokenizer) -> list[int]:
    vocab = {"".join(p): i for i, p in enumerate(itertools.product("ACGT", repeat=tok.k))}
    ids = [tok.cls_id] if tok.add_special_tokens else []
    for start in range(0, len(seq) - tok.k + 1, tok.stride):
        kmer = seq[start : start + tok.k]
        ids.append(vocab[kmer] + len(tok.specials) if kmer in vocab else tok.unk_id)
    return ids[: tok.max_length]


@settings(max_examples=200, deadline=None)
@given(
    seq=st.text(alphabet="ACGTN", max_size=60),
    k=st.integers(1, 6),
    stride=st.integers(1, 7),
    max_length=st.integers(2, 30),
    special=st.booleans(),
)
def test_encode_matches_a_naive_tokenizer(seq, k, stride, max_length, special):
    tok = KmerTokenizer(k=k, stride=stride, max_length=max_length, add_special_tokens=special)
    ids = tok.encode(seq)
    assert ids.tolist() == naive_kmer_ids(seq, tok)
    decoded = tok.decode(ids[int(special) :])
    kmers = [seq[i : i + k] for i in range(0, len(seq) - k + 1, stride)]
    assert decoded == [m if "N" not in m else "<UNK>" for m in kmers][: len(decoded)]


def test_round_trip_through_dict():
    tok = KmerTokenizer(k=4, stride=2, max_length=17, specials=("<MASK>", "<UNK>", "<CLS>"))
    again = tokenizer_from_dict(tok.to_dict())
    assert isinstance(again, KmerTokenizer)
    assert (
        again.to_dict()
        == tok.to_dict()
        == {
            "kind": "kmer",
            "k": 4,
            "stride": 2,
            "max_length": 17,
            "add_special_tokens": True,
            "specials": ["<MASK>", "<UNK>", "<CLS>"],
            "cls_token": "<CLS>",
            "pad_token": "<UNK>",
            "mask_unknown": False,
        }
    )
    seqs = ["ACGTNACGTTTGCA", "GG"]
    for a, b in zip(tok.encode_batch(seqs), again.encode_batch(seqs)):
        np.testing.assert_array_equal(a, b)


def test_bad_settings_raise_with_the_reason():
    with pytest.raises(ValueError, match="k must be between 1 and 12, got 0"):
        KmerTokenizer(k=0)
    with pytest.raises(ValueError, match=r"specials must be distinct and include '<UNK>'"):
        KmerTokenizer(specials=("<MASK>",))
    with pytest.raises(ValueError, match=r"cls_token '\[CLS\]' is not one of the specials"):
        KmerTokenizer(cls_token="[CLS]")
    with pytest.raises(ValueError, match=r"unknown kmer tokenizer settings \['kmer_size'\]"):
        tokenizer_from_dict({"kind": "kmer", "kmer_size": 5})
    with pytest.raises(ValueError, match="tokenizer kind must be one of kmer, bpe, got 'char'"):
        tokenizer_from_dict({"kind": "char"})
    with pytest.raises(ValueError, match=r"token id 1027 is outside the vocabulary \(0..1026\)"):
        KmerTokenizer().decode([1027])


def test_edge_modules_import_no_heavy_stack():
    code = (
        "import sys, hir_edge.dna.io, hir_edge.dna.tokens;"
        "heavy = {'torch', 'tokenizers', 'transformers', 'open_clip', 'h5py'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- BPE


@pytest.fixture
def bpe_json(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="[UNK]"))
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=12,
        special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"],  # DNABERT-2's order
        show_progress=False,
    )
    seqs = ["ACGTACGTTTAAACCCGGGTATATAT" * 3, "TTTTAAAACCCCGGGG" * 4, "ACGACGACGTTT" * 5]
    tok.train_from_iterator(seqs, trainer)
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    return path, tok


def test_bpe_matches_the_library_and_pads(bpe_json):
    path, reference = bpe_json
    tok = BpeTokenizer(path, max_length=8)
    assert (tok.pad_id, tok.cls_id, tok.unk_id, tok.vocab_size) == (3, 1, 0, 12)
    short = "ACGTTA"
    expected = reference.encode(short).ids
    assert expected[0] == 1 and expected[-1] == 2 and len(expected) < 8
    assert tok.encode(short).tolist() == expected
    ids, mask = tok.encode_batch([short, "ACGTACGTTTAAACCCN"])
    assert ids.dtype == mask.dtype == np.int64 and ids.shape == (2, 8)
    n = len(expected)
    assert ids[0].tolist() == expected + [3] * (8 - n)
    assert mask[0].tolist() == [1] * n + [0] * (8 - n)
    # Truncation keeps [CLS] ... [SEP] and the first tokens of the read.
    full = reference.encode("ACGTACGTTTAAACCCN").ids
    assert len(full) > 8
    assert ids[1].tolist() == [*full[:7], 2]
    assert mask[1].tolist() == [1] * 8
    assert tok.decode(ids[1, :2]) == ["[CLS]", reference.id_to_token(full[1])]


def test_bpe_round_trip_and_relative_path(bpe_json):
    path, _ = bpe_json
    tok = BpeTokenizer(path, max_length=6)
    stored = {**tok.to_dict(), "path": path.name}
    again = tokenizer_from_dict(stored, root=path.parent)
    assert isinstance(again, BpeTokenizer)
    seqs = ["ACGTTTACG", "GG", ""]
    for a, b in zip(tok.encode_batch(seqs), again.encode_batch(seqs)):
        np.testing.assert_array_equal(a, b)


def test_bpe_bad_files(tmp_path, bpe_json):
    path, _ = bpe_json
    missing = tmp_path / "none.json"
    with pytest.raises(InputError) as err:
        BpeTokenizer(missing)
    assert str(err.value) == f"{missing}: does not exist (expected a tokenizers tokenizer.json)"
    with pytest.raises(InputError) as err:
        BpeTokenizer(path, pad_token="<pad>")
    assert str(err.value) == f"{path}: has no pad token '<pad>' in its vocabulary"
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    with pytest.raises(InputError, match=r"is not a tokenizers tokenizer\.json"):
        BpeTokenizer(junk)


def test_mask_unknown_hides_n_holding_kmers_from_attention():
    tok = KmerTokenizer(k=3, stride=1, max_length=8, add_special_tokens=False, mask_unknown=True)
    # ACG, CGN -> <UNK>, GNA -> <UNK>, NAC -> <UNK>, ACG; then padding (also <UNK>, mask 0)
    ids, mask = tok.encode_batch(["ACGNACG"])
    assert ids.tolist() == [[9, 2, 2, 2, 9, 2, 2, 2]]
    assert mask.tolist() == [[1, 0, 0, 0, 1, 0, 0, 0]]
    plain = KmerTokenizer(k=3, stride=1, max_length=8, add_special_tokens=False)
    assert plain.encode_batch(["ACGNACG"])[1].tolist() == [[1, 1, 1, 1, 1, 0, 0, 0]]
    assert tokenizer_from_dict(tok.to_dict()).mask_unknown is True
    # a manifest written before the setting existed reads as BarcodeBERT's behaviour
    old = {k: v for k, v in tok.to_dict().items() if k != "mask_unknown"}
    assert tokenizer_from_dict(old).mask_unknown is False
