"""Reading, cleaning, QC and orientation of DNA reads (hir_edge.dna.io)."""

from __future__ import annotations

import csv
import gzip
import math
import random
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from hir_edge.dna.io import (
    COI_MARKOV,
    ID_COLUMNS,
    SEQUENCE_COLUMNS,
    Read,
    ReadReport,
    clean_read,
    iter_records,
    orient_coi,
    read_sequences,
    reverse_complement,
    stop_codon_counts,
    write_fasta,
)
from hir_edge.errors import InputError
from hir_edge.io import OutputExistsError

# The first 60 bases of a real Diptera COI barcode (BOLD SSJAE238-13), coding strand.
COI = "AACTTTATATTTTATTTTTGGGGCCTGATCTGGAATAGTAGGTACATCTCTTAGTATTTT"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def read_all(path: Path, **kwargs) -> tuple[list[Read], ReadReport]:
    report = ReadReport()
    reads = list(read_sequences(path, report=report, **kwargs))
    return reads, report


def messages(report: ReadReport) -> list[str]:
    return [str(e) for e in report.errors]


def coi_like(n: int, seed: int) -> str:
    """A synthetic coding-strand read drawn from the COI model itself (frame 0)."""
    rng = random.Random(seed)
    bases = [rng.choice("ACGT")]
    for j in range(1, n):
        weights = COI_MARKOV[j % 3, "ACGT".index(bases[-1])]
        bases.append(rng.choices("ACGT", weights=weights.tolist())[0])
    return "".join(bases)


# ----------------------------------------------------------------------------- cleaning


def test_clean_read_counts_and_converts():
    seq, qc = clean_read("ac-gu ry..N~\nNNt", min_length=5, max_n_fraction=0.4)
    # gaps - . . ~ removed (4), whitespace dropped, U->T, R/Y->N.
    assert seq == "ACGTNNNNNT"
    assert (qc.raw_length, qc.clean_length, qc.gaps_removed) == (16, 10, 4)
    assert (qc.n_count, qc.ambiguity_count, qc.longest_n_run) == (5, 2, 5)
    assert qc.n_fraction == 0.5
    assert qc.flags == ("many_n",)
    assert qc.to_dict()["flags"] == ["many_n"]


def test_clean_read_flags_short_and_stop_codons():
    # Every frame holds a TAA or TAG.
    seq, qc = clean_read("TAAGTAGCTAAA", min_length=20)
    assert seq == "TAAGTAGCTAAA"
    assert qc.stop_codons == 1
    assert qc.flags == ("short", "stop_codons")


def test_protein_sequence_is_named():
    with pytest.raises(ValueError) as err:
        clean_read("MKVLAAGIVALLLAAGCSSSKEETTQPFLE")
    assert str(err.value) == (
        "looks like a protein sequence (amino-acid letters E, F, I, L, …); expected DNA"
    )


def test_invalid_characters_are_named_with_positions():
    with pytest.raises(ValueError) as err:
        clean_read("ACGTACGTACGTACGTACGTAC1GTACGTACGTAC?GT1")
    assert str(err.value) == (
        "invalid characters '1' (first at position 23), '?' (first at position 36); "
        "expected DNA (A C G T/U, IUPAC codes, N, gaps - . ~)"
    )
    with pytest.raises(ValueError, match=r"^invalid character 'X' \(first at position 3\);"):
        clean_read("ACXGTACGTACGTACGTACGTACGTACGTACGT")


def test_empty_sequences():
    with pytest.raises(ValueError, match=r"^has no sequence$"):
        clean_read("  \n")
    with pytest.raises(ValueError, match=r"^has no sequence \(only gaps\)$"):
        clean_read("---..")


def test_reverse_complement_iupac():
    assert reverse_complement("ACGTRYKMBVDHNSW-") == "-WSNDHBVKMRYACGT"
    assert reverse_complement("acgu") == "acgt"


# ----------------------------------------------------------------------------- orientation


def test_stop_codon_counts_per_frame_and_strand():
    # Frames 0/1/2 of TAAGTAGCTAAA: TAA|GTA|GCT|AAA, AAG|TAG|CTA, AGT|AGC|TAA -> one stop each.
    # Reverse strand TTTAGCTACTTA: TTT|AGC|TAC|TTA, TTA|GCT|ACT, TAG|CTA|CTT -> 0, 0, 1.
    forward, reverse = stop_codon_counts("TAAGTAGCTAAA")
    assert forward.tolist() == [1, 1, 1]
    assert reverse.tolist() == [0, 0, 1]
    assert stop_codon_counts("TANTAG")[0].tolist() == [1, 0, 0]  # TAN is no stop
    assert stop_codon_counts("TA")[0].tolist() == [0, 0, 0]


def test_orientation_margin_by_hand():
    # "AC" has one transition, A->C; the best codon position gives P = 0.186 (2nd). Its
    # reverse complement "GT" has G->T, best P = 0.227 (2nd): the reverse strand is likelier.
    oriented, flipped, margin = orient_coi("AC")
    assert (oriented, flipped) == ("GT", True)
    assert margin == pytest.approx(math.log(0.227 / 0.186))
    # A palindrome scores the same on both strands: kept, with no evidence.
    assert orient_coi("ACGT") == ("ACGT", False, 0.0)
    uniform = np.full((3, 4, 4), 0.25)
    assert orient_coi("ACCTTG", model=uniform) == ("ACCTTG", False, 0.0)
    with pytest.raises(ValueError, match=r"a COI model is a \[3, 4, 4\] array"):
        orient_coi("ACGT", model=np.ones((3, 4)))


def test_orientation_of_a_synthetic_read_with_frameshifts():
    read = coi_like(600, seed=1)
    assert orient_coi(read)[:2] == (read, False)
    shifted = read[:200] + read[201:400] + "A" + read[400:]  # a deletion and an insertion
    oriented, flipped, margin = orient_coi(reverse_complement(shifted))
    assert (oriented, flipped) == (shifted, True)
    assert margin > 10


def test_uncertain_strand_is_flagged():
    _, qc = clean_read("NNNNNNNNNN", orient=True, min_length=5)
    assert qc.orientation_margin == 0.0
    assert qc.flags == ("many_n", "uncertain_strand")


@pytest.mark.realdata
def test_orientation_on_real_barcodes(bold_1826sp):
    reads = []
    for read in read_sequences(bold_1826sp):
        reads.append(read)
        if len(reads) == 200:
            break
    assert not any(r.qc.reverse_complemented for r in reads)
    for read in reads:
        oriented, flipped, _ = orient_coi(reverse_complement(read.sequence))
        assert flipped and oriented == read.sequence, read.id


def test_read_sequences_flips_reverse_reads(tmp_path):
    orf = coi_like(450, seed=2)
    path = write(tmp_path / "r.fa", f">fwd\n{orf}\n>rev\n{reverse_complement(orf)}\n")
    reads, _ = read_all(path)
    assert [r.sequence for r in reads] == [orf, orf]
    assert [r.qc.reverse_complemented for r in reads] == [False, True]
    assert reads[1].qc.flags == ("reverse_complemented",)
    reads, _ = read_all(path, orient=False)
    assert reads[1].sequence == reverse_complement(orf)


# ----------------------------------------------------------------------------- formats


def test_fasta_records_lines_and_descriptions(tmp_path):
    path = write(tmp_path / "a.fasta", f"\n>r1 Aedes sp.\n{COI[:30]}\n{COI[30:]}\n\n>r2\n{COI}\n")
    records = list(iter_records(path))
    assert [(r.id, r.description, r.index, r.line) for r in records] == [
        ("r1", "r1 Aedes sp.", 0, 2),
        ("r2", "r2", 1, 6),
    ]
    assert records[0].sequence == COI


def test_gzipped_fasta_and_fastq(tmp_path):
    fa = tmp_path / "reads.fa.gz"
    with gzip.open(fa, "wt") as handle:
        handle.write(f">a\n{COI}\n")
    fq = tmp_path / "reads.fastq.gz"
    with gzip.open(fq, "wt") as handle:
        handle.write(f"@b run=1\n{COI}\n+\n{'I' * len(COI)}\n")
    assert [(r.id, r.sequence) for r in read_sequences(fa)] == [("a", COI)]
    assert [(r.id, r.sequence) for r in read_sequences(fq)] == [("b", COI)]


def test_fastq_wrapped_and_bad_quality_records(tmp_path):
    text = (
        f"@r1\n{COI[:30]}\n{COI[30:]}\n+r1\n{'I' * 30}\n{'@' * 30}\n"  # wrapped, '@' quality
        f"@short_q\n{COI}\n+\n{'I' * 59}\n"
        f"@long_q\n{COI}\n+\n{'I' * 61}\n"
        f"@r4\n{COI}\n+\n{'#' * 60}\n"
        f"@no_plus\n{COI}\n"
        f"@r6\n{COI}\n+\n{'#' * 60}\n"
        "garbage line\n"
        f"@r7\n{COI}\n+\n{'#' * 60}\n"
        f"@cut\n{COI}\n"
    )
    path = write(tmp_path / "x.fq", text)
    reads, report = read_all(path)
    assert [r.id for r in reads] == ["r1", "r4", "r6", "r7"]
    assert reads[0].sequence == COI
    assert messages(report) == [
        f"{path}: record 'short_q': line 7: quality has 59 characters but the sequence has 60",
        f"{path}: record 'long_q': line 11: quality has 61 characters but the sequence has 60",
        f"{path}: record 'no_plus': line 19: has no '+' quality line",
        f"{path}: line 25: expected a FASTQ header starting with '@', found 'garbage line'",
        f"{path}: record 'cut': line 30: has no '+' quality line",
    ]
    assert (report.n_read, report.n_ok, report.n_skipped) == (9, 4, 5)


@pytest.mark.parametrize("column", SEQUENCE_COLUMNS)
@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
def test_tables_with_each_sequence_column(tmp_path, column, suffix):
    sep = "\t" if suffix == ".tsv" else ","
    rows = [["processid", "order_name", column], ["P1", "Diptera", COI], ["P2", "", COI[:45]]]
    path = write(tmp_path / f"t{suffix}", "".join(sep.join(r) + "\n" for r in rows))
    reads, report = read_all(path)
    assert [(r.id, r.sequence, r.index) for r in reads] == [("P1", COI, 0), ("P2", COI[:45], 1)]
    assert reads[0].fields == {"processid": "P1", "order_name": "Diptera"}
    assert report.n_skipped == 0


@pytest.mark.parametrize("column", ID_COLUMNS)
def test_table_id_columns_and_row_numbers(tmp_path, column):
    path = write(tmp_path / "t.tsv", f"{column}\tnucleotides\nX1\t{COI}\n")
    assert [r.id for r in read_sequences(path)] == ["X1"]
    path = write(tmp_path / "noid.csv", f"Nucleotides,note\n{COI},a\n{COI},b\n")
    assert [r.id for r in read_sequences(path)] == ["1", "2"]


def test_sniffing_without_a_known_extension(tmp_path):
    assert next(read_sequences(write(tmp_path / "a.txt", f">s\n{COI}\n"))).id == "s"
    assert next(read_sequences(write(tmp_path / "a.seq", f"@q\n{COI}\n+\n{'I' * 60}\n"))).id == "q"
    assert next(read_sequences(write(tmp_path / "b", f"sampleid,seq\nB7,{COI}\n"))).id == "B7"


def test_explicit_format_overrides_extension(tmp_path):
    path = write(tmp_path / "reads.dat", f"id\tbarcode\nZ\t{COI}\n")
    assert next(read_sequences(path, format="tsv")).id == "Z"
    with pytest.raises(ValueError, match="unknown sequence format 'genbank'; choose one of"):
        read_sequences(path, format="genbank")


# ----------------------------------------------------------------------------- whole-file errors


def fatal(path: Path, **kwargs) -> str:
    with pytest.raises(InputError) as err:
        read_sequences(path, **kwargs)
    return str(err.value)


def test_missing_and_directory(tmp_path):
    assert fatal(tmp_path / "nope.fa") == f"{tmp_path / 'nope.fa'}: does not exist"
    assert fatal(tmp_path) == f"{tmp_path}: is a directory, not a sequence file"


def test_empty_files(tmp_path):
    for name, text in [("e.fa", ""), ("w.fasta", "\n  \n"), ("e.tsv", "")]:
        path = write(tmp_path / name, text)
        assert fatal(path) == f"{path}: contains no records"
    path = write(tmp_path / "h.tsv", "processid\tnucleotides\n")
    with pytest.raises(InputError) as err:
        list(read_sequences(path))
    assert str(err.value) == f"{path}: contains no records (only a header line)"


def test_binary_files(tmp_path):
    png = tmp_path / "bug.fa"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert fatal(png) == f"{png}: is a binary file, not FASTA/FASTQ/TSV"
    latin = tmp_path / "bad.txt"
    latin.write_bytes(b">x\n\xff\xfe\xfaACGT\n")
    assert fatal(latin) == f"{latin}: is a binary file, not FASTA/FASTQ/TSV"
    gz = tmp_path / "bin.fq.gz"
    gz.write_bytes(gzip.compress(b"\x00\x01\x02"))
    assert fatal(gz) == f"{gz}: is a binary file, not FASTA/FASTQ/TSV"


def test_text_that_is_no_sequence_format(tmp_path):
    path = write(tmp_path / "notes.txt", "Collected near the river\nby hand\n")
    assert (
        fatal(path) == f"{path}: does not look like FASTA, FASTQ or a table with a sequence column"
    )
    bare = write(tmp_path / "bare.txt", f"{COI}\n{COI}\n")
    assert fatal(bare) == (
        f"{bare}: does not look like FASTA, FASTQ or a table with a sequence column; "
        "it looks like bare sequences: put a '>id' line before each"
    )


def test_extension_and_content_disagree(tmp_path):
    path = write(tmp_path / "reads.fasta", f"@q\n{COI}\n+\n{'I' * 60}\n")
    assert fatal(path) == (
        f"{path}: does not look like FASTA: its first line should start with '>' but reads '@q'"
    )


def test_table_without_sequence_column(tmp_path):
    path = write(tmp_path / "meta.tsv", "processid\torder_name\tgenus_name\nP1\tDiptera\tAedes\n")
    assert fatal(path) == (
        f"{path}: line 1: has no sequence column (accepted names: nucleotides, nuc, dna_barcode, "
        "barcode, sequence, seq; its columns: processid, order_name, genus_name)"
    )


def test_truncated_gzip(tmp_path):
    data = gzip.compress(("".join(f">r{i}\n{COI}\n" for i in range(2000))).encode())
    path = tmp_path / "cut.fa.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.fa\.gz: is a corrupt or truncated gzip file"):
        list(read_sequences(path))


# ----------------------------------------------------------------------------- per-record errors


def test_bad_records_are_skipped_and_reported(tmp_path):
    text = (
        f">ok1\n{COI}\n"
        ">empty\n\n"
        ">prot\nMKVLAAGIVALLLAAGCSSSKEETTQPFLE\n"
        f">junk\n{COI[:10]}J{COI[10:]}\n"
        f">ok1\n{COI}\n"
        ">\nACGT\n"
        f">ok2 second good one\n{COI.lower()}\n"
    )
    path = write(tmp_path / "mixed.fa", text)
    reads, report = read_all(path)
    assert [r.id for r in reads] == ["ok1", "ok2"]
    assert [r.index for r in reads] == [0, 6]
    assert reads[1].sequence == COI
    assert messages(report) == [
        f"{path}: record 'empty': line 3: has no sequence",
        f"{path}: record 'prot': line 5: looks like a protein sequence "
        "(amino-acid letters E, F, I, L, …); expected DNA",
        f"{path}: record 'junk': line 7: invalid character 'J' (first at position 11); "
        "expected DNA (A C G T/U, IUPAC codes, N, gaps - . ~)",
        f"{path}: record 'ok1': line 9: duplicate id (first seen at record 1)",
        f"{path}: record '#6': line 11: has an empty header (no id)",
    ]
    assert (report.n_read, report.n_ok, report.n_skipped) == (7, 2, 5)
    assert report.summary() == "7 records: 2 read, 5 skipped (flagged: 2 short)"


def test_bad_table_rows(tmp_path):
    text = f"processid\tnucleotides\nA\t{COI}\n\t{COI}\nC\t\nD\t{COI}\textra\nE\t{COI}\n"
    path = write(tmp_path / "rows.tsv", text)
    reads, report = read_all(path)
    assert [r.id for r in reads] == ["A", "E"]
    assert messages(report) == [
        f"{path}: record '#2': line 3: has an empty 'processid' column (no id)",
        f"{path}: record 'C': line 4: has no sequence",
        f"{path}: record '#4': line 5: has 3 columns but the header has 2",
    ]


@pytest.mark.parametrize("marker", ["marker_code", "markercode"])
def test_table_records_of_another_marker_are_skipped_by_name(tmp_path, marker):
    """A BOLD export (v5 data package: 'nuc' and 'marker_code') mixes markers; only COI-5P
    compares with a COI library, so an ITS record is a skipped record that says why."""
    text = (
        f"processid\t{marker}\tnuc\nA\tCOI-5P\t{COI}\nB\tITS\t{COI}\nC\t\t{COI}\nD\tcoi-5p\t{COI}\n"
    )
    path = write(tmp_path / "bold.tsv", text)
    reads, report = read_all(path)
    assert [r.id for r in reads] == ["A", "C", "D"]  # no marker given: taken as read
    assert messages(report) == [
        f"{path}: record 'B': line 3: is of marker ITS, not the COI-5P barcode"
    ]


def test_oversized_table_field_is_one_bad_row(tmp_path):
    text = f"processid\tnucleotides\nA\t{COI}\nB\t{'A' * 200_000}\nC\t{COI}\n"
    path = write(tmp_path / "big.tsv", text)
    previous = csv.field_size_limit(131072)  # process-wide; other readers may have raised it
    try:
        reads, report = read_all(path)
    finally:
        csv.field_size_limit(previous)
    assert [r.id for r in reads] == ["A", "C"]
    assert messages(report) == [
        f"{path}: line 3: cannot be read as a table row (field larger than field limit (131072))"
    ]


def test_header_line_number_after_blank_lines(tmp_path):
    path = write(tmp_path / "meta.csv", "\n\nprocessid,notes\nP1,x\n")
    assert fatal(path).startswith(f"{path}: line 3: has no sequence column")


# ----------------------------------------------------------------------------- streaming


def test_reading_streams(tmp_path):
    path = tmp_path / "big.fa"
    seq = COI * 5  # 300 bp
    with path.open("w") as handle:
        for i in range(100_000):
            handle.write(f">read{i}\n{seq}\n")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_records(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 100_000
    assert size > 30_000_000
    assert peak < size / 50  # a few hundred kB, not the 31 MB file


def test_first_read_of_a_huge_file_needs_no_full_pass(tmp_path):
    path = tmp_path / "huge.fq"
    record = f"@r\n{COI}\n+\n{'I' * 60}\n"
    with path.open("w") as handle:
        handle.write(record.replace("@r", "@first"))
        handle.write(record * 200_000)  # 200,000 duplicates after it: never looked at
    tracemalloc.start()
    try:
        first = next(read_sequences(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first.id == "first"
    assert peak < 1_000_000


# ----------------------------------------------------------------------------- writing


def test_write_fasta_round_trip_and_no_clobber(tmp_path):
    path = tmp_path / "out" / "reads.fa"
    records = [("a", COI), ("b", "ACGTN")]
    assert write_fasta(records, path, line_width=25) == 2
    assert path.read_text() == f">a\n{COI[:25]}\n{COI[25:50]}\n{COI[50:]}\n>b\nACGTN\n"
    with pytest.raises(OutputExistsError):
        write_fasta(records, path)
    reads, _ = read_all(path, min_length=1)
    assert write_fasta(reads, path, force=True) == 2
    assert path.read_text() == f">a\n{COI}\n>b\nACGTN\n"
    gz = tmp_path / "reads.fa.gz"
    write_fasta(records, gz)
    assert gzip.decompress(gz.read_bytes()).decode() == path.read_text()


def test_write_fasta_rejects_bad_ids_and_leaves_nothing(tmp_path):
    path = tmp_path / "bad.fa"
    with pytest.raises(ValueError, match=r"record 2: FASTA ids must be non-empty"):
        write_fasta([("a", COI), ("two words", COI)], path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_all_real_records_parse(bold_100sp, bold_1826sp):
    counts = []
    for path in (bold_100sp, bold_1826sp):
        reads, report = read_all(path)
        counts.append(len(reads))
        assert report.n_skipped == 0, report.errors[:3]
        assert all(r.fields["species_name"] for r in reads)
        # BOLD stores the coding strand: only records without any open frame (junk, flagged
        # stop_codons) may be turned round.
        flipped = [r for r in reads if r.qc.reverse_complemented]
        assert all("stop_codons" in r.qc.flags for r in flipped)
        assert len(flipped) <= 5
    assert counts == [5000, 4278]


def test_a_pipe_or_standard_input_is_read_once(tmp_path, monkeypatch):
    import io
    import os
    import sys
    import threading

    text = f">a\n{COI}\n>b\n{COI}\n"
    fifo = tmp_path / "reads.pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(text))
    writer.start()
    reads, report = read_all(fifo)  # a FIFO can be read only once: opened once
    writer.join()
    assert [r.id for r in reads] == ["a", "b"] and report.n_skipped == 0
    gz = io.BytesIO(gzip.compress(text.encode()))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(gz)))
    reads, _ = read_all(Path("-"))
    assert [r.id for r in reads] == ["a", "b"]


def test_a_header_that_is_not_utf8_costs_only_its_record(tmp_path):
    path = tmp_path / "latin1.fa"
    path.write_bytes(f">ok\n{COI}\n>caf\xe9 x\n{COI}\n>ok2\n{COI}\n".encode("latin-1"))
    reads, report = read_all(path)
    assert [r.id for r in reads] == ["ok", "ok2"]
    assert [str(e) for e in report.errors] == [
        f"{path}: record '#2': line 3: its header is not UTF-8 text (byte 0xe9); "
        "save the file as UTF-8"
    ]


def test_a_read_longer_than_any_barcode_is_refused(tmp_path):
    path = write(tmp_path / "contig.fa", f">contig\n{'ACGT' * 2501}\n>ok\n{COI}\n")
    reads, report = read_all(path)
    assert [r.id for r in reads] == ["ok"]
    assert str(report.errors[0]) == (
        f"{path}: record 'contig': line 1: is 10,004 bases long; a barcode read is at most "
        "10,000 (a contig or genome is not a barcode read)"
    )
