"""Signed bundles: a field kit with a trusted key runs only what its team signed."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from hir_edge.cli import main
from hir_edge.errors import BundleError
from hir_edge.export.manifest import finalize_manifest
from hir_edge.io import sha256_file
from hir_edge.runtime.bundle import open_bundle
from hir_edge.signing import sign_bundle, verify_signature

serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")


def _keys(folder, name):
    private = ed25519.Ed25519PrivateKey.generate()
    key = folder / f"{name}.key"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub = folder / f"{name}.pub"
    pub.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, pub


@pytest.fixture
def demo_copy(tmp_path):
    from hir_edge.runtime.bundle import default_bundle

    copy = tmp_path / "demo.bundle"
    shutil.copytree(default_bundle(), copy)
    (copy / "manifest.sig").unlink(missing_ok=True)
    return copy


def test_signed_bundle_opens_and_an_edit_rehashed_is_refused(demo_copy, tmp_path):
    key, pub = _keys(tmp_path, "team")
    _, other_pub = _keys(tmp_path, "other")
    with pytest.raises(BundleError, match=r"is not signed \(manifest.sig is missing\)"):
        open_bundle(demo_copy, trusted_key=pub)
    sign_bundle(demo_copy, key)
    open_bundle(demo_copy, trusted_key=pub).close()
    with pytest.raises(BundleError, match="another key signed it"):
        verify_signature(demo_copy, other_pub)
    # an attacker renames a taxon and re-hashes: checksums pass, the signature does not
    taxonomy = demo_copy / "taxonomy.json"
    taxonomy.write_text(taxonomy.read_text().replace("Demo", "Fake"))
    manifest = json.loads((demo_copy / "manifest.json").read_text())
    manifest["files"]["taxonomy.json"]["sha256"] = sha256_file(taxonomy)
    (demo_copy / "manifest.json").write_text(json.dumps(manifest))
    open_bundle(demo_copy).close()  # without a trusted key only corruption is caught
    with pytest.raises(BundleError) as err:
        open_bundle(demo_copy, trusted_key=pub)
    assert str(err.value) == (
        f"{demo_copy}: its signature does not match {pub}: the manifest changed after "
        "signing, or another key signed it"
    )


def test_rewriting_the_manifest_drops_the_old_signature(demo_copy, tmp_path):
    key, _ = _keys(tmp_path, "team")
    sign_bundle(demo_copy, key)
    finalize_manifest(demo_copy, json.loads((demo_copy / "manifest.json").read_text()))
    assert not (demo_copy / "manifest.sig").exists()


def test_cli_signs_and_identify_checks(demo_copy, tmp_path):
    key, pub = _keys(tmp_path, "team")
    runner = CliRunner()
    reads = "examples/reads.fa"
    ask = ["identify", "--bundle", str(demo_copy), "--fasta", reads, "--trusted-key", str(pub)]
    refused = runner.invoke(main, ask)
    assert refused.exit_code == 3
    assert refused.stderr.strip().endswith("a trusted key is set")
    signed = runner.invoke(main, ["export", "--sign", str(key), "--bundle", str(demo_copy)])
    assert signed.exit_code == 0, signed.output
    ok = runner.invoke(main, [*ask, "--format", "jsonl"])
    assert ok.exit_code == 0
    assert len(ok.stdout.strip().splitlines()) == 4
