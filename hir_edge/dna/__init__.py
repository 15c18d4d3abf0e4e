"""DNA reads, from the file to the evidence: everything a COI barcode read goes through.

* :mod:`~hir_edge.dna.io`: FASTA/FASTQ/TSV readers and writer (streaming, one open per file);
* :mod:`~hir_edge.dna.qc`: cleaning to A/C/G/T/N, QC flags, the coding strand (one base table);
* :mod:`~hir_edge.dna.tokens`: k-mer (BarcodeBERT) and BPE (DNABERT-2) tokenizers;
* :mod:`~hir_edge.dna.kmers`: k-mer counts, the shortlist of reference barcodes;
* :mod:`~hir_edge.dna.align`: read-to-reference alignment, the best hit;
* :mod:`~hir_edge.dna.divergence`: the library's bases per site, the divergence estimate and
  the novel-species rule.

Edge path: standard library, numpy, Biopython, pyopal (SIMD alignment scores) and ONNX
Runtime (the k-mer shortlist's integer product).
"""
