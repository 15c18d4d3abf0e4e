"""Ed25519 signatures on bundles: a field kit runs only bundles its team signed.

Checksums catch a corrupted copy; they do not catch an edit followed by re-hashing, because
anyone can recompute a sha256. The manifest lists the sha256 of every bundle file, so a
signature over the manifest's exact bytes covers the whole bundle. ``manifest.sig`` holds it
(base64). Keys are standard PEM files, made with OpenSSL::

    openssl genpkey -algorithm ed25519 -out team.key        # keep it off the field kits
    openssl pkey -in team.key -pubout -out team.pub         # copy this one to every kit

Sign at the end of export (``export --sign team.key``) or afterwards (``export --sign
team.key --bundle B``, also after ``export --engine`` has added engines: building engines
changes the manifest, so it drops the old signature). ``identify --trusted-key team.pub``
then refuses an unsigned bundle or one whose manifest changed after signing.

Needs the ``cryptography`` package (``pip install 'hir-edge[sign]'``), imported only here.
"""

from __future__ import annotations

import base64
from pathlib import Path

from hir_edge.errors import BundleError, HirEdgeError
from hir_edge.io import atomic_write_text

SIGNATURE = "manifest.sig"
MANIFEST = "manifest.json"  # hir_edge.runtime.bundle.MANIFEST (not imported: no cycle)


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ModuleNotFoundError:
        raise HirEdgeError(
            "signing and checking bundles needs the cryptography package: "
            "pip install 'hir-edge[sign]'"
        ) from None
    return serialization, ed25519, InvalidSignature


def _load_key(path: Path, private: bool):
    serialization, ed25519, _ = _crypto()
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise HirEdgeError(f"{path}: cannot be read ({err.strerror})") from None
    try:
        if private:
            key = serialization.load_pem_private_key(data, password=None)
            wanted = ed25519.Ed25519PrivateKey
        else:
            key = serialization.load_pem_public_key(data)
            wanted = ed25519.Ed25519PublicKey
    except (ValueError, TypeError) as err:
        kind = "private" if private else "public"
        raise HirEdgeError(f"{path}: not a PEM {kind} key ({err})") from None
    if not isinstance(key, wanted):
        raise HirEdgeError(f"{path}: is not an Ed25519 key (openssl genpkey -algorithm ed25519)")
    return key


def sign_bundle(root: Path, private_key: Path) -> Path:
    """Write ``manifest.sig``: the Ed25519 signature of the manifest's bytes."""
    key = _load_key(private_key, private=True)
    signature = key.sign((Path(root) / MANIFEST).read_bytes())
    out = Path(root) / SIGNATURE
    atomic_write_text(out, base64.b64encode(signature).decode("ascii") + "\n")
    return out


def verify_signature(root: Path, public_key: Path, manifest: bytes | None = None) -> None:
    """Refuse a bundle that ``public_key``'s owner did not sign as it is now. ``manifest``:
    the manifest's bytes as the caller read them (so what is checked is what is used)."""
    _, _, invalid = _crypto()
    key = _load_key(public_key, private=False)
    sig_path = Path(root) / SIGNATURE
    if not sig_path.is_file():
        raise BundleError(f"{root}: is not signed ({SIGNATURE} is missing); a trusted key is set")
    try:
        signature = base64.b64decode(sig_path.read_text(encoding="ascii").strip(), validate=True)
    except (ValueError, UnicodeDecodeError):
        raise BundleError(f"{sig_path}: is not a base64 signature") from None
    try:
        data = manifest if manifest is not None else (Path(root) / MANIFEST).read_bytes()
        key.verify(signature, data)
    except invalid:
        raise BundleError(
            f"{root}: its signature does not match {public_key}: the manifest changed after "
            "signing, or another key signed it"
        ) from None
