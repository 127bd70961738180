"""Leaf certificates: one per name, minted on first use, cached on disk and in memory.

A leaf is an ECDSA P-256 key (measured here: a P-256 key takes ~0.01 ms to make, an RSA
2048 one ~46 ms; a whole leaf, signed and fsynced to disk, ~3 ms; the first request to
a new name waits for it, later ones take it from memory in ~3 µs) with SAN = the one DNS
name, EKU
serverAuth, valid 90 days: well inside the 397 days browsers accept. It is minted again
when less than 30 days remain, or when the CA that signed it is not the current one (the
CA was re-made after `promenade trust --uninstall`). Each lives in
`<ca folder>/leaves/<name>.pem` (certificate then key, 0600), the form
`SSLContext.load_cert_chain` reads.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from promenade_core.errors import PromenadeError
from promenade_core.tls import files
from promenade_core.tls.ca import CA
from promenade_core.tls.names import NameRefused, checked_leaf_name

LEAF_DAYS = 90
RENEW_DAYS = 30
#: Clients whose clock is a little behind still accept a leaf minted just now.
BACKDATE = dt.timedelta(hours=1)

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class LeafRefused(PromenadeError):
    """A name the CA must not sign (outside its constraints, or not a hostname)."""


def remint_reason(leaf: x509.Certificate, ca_cert: x509.Certificate,
                  now: dt.datetime) -> str | None:
    """Why a cached leaf must be minted again, or None while it is good (pure)."""
    try:
        leaf.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "it was signed by another CA"
    left = leaf.not_valid_after_utc - now
    if left < dt.timedelta(days=RENEW_DAYS):
        return f"it expires in {max(left.days, 0)} days"
    if leaf.not_valid_before_utc > now:
        return "it is not valid yet (the clock went back)"
    return None


def build_leaf(ca: CA, name: str, now: dt.datetime,
               ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf for `name` (already checked against the CA's constraints)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_encipherment=False, content_commitment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return cert, key


@dataclass(frozen=True)
class Leaf:
    """A leaf on disk: the file `load_cert_chain` takes, and until when it is good."""

    name: str
    path: Path
    renew_after: dt.datetime


class LeafStore:
    """Leaves of one CA: `get(name)` returns a valid one, minting it when needed.

    Safe from threads and greenlets: one lock around the check-and-mint, which does no
    cooperative I/O (minting is CPU, the files are small local writes), so it is held
    only for the milliseconds a mint takes."""

    def __init__(self, ca: CA, folder: Path | None = None, clock: Clock = utc_now) -> None:
        self.ca = ca
        self.folder = folder or ca.folder / "leaves"
        self._clock = clock
        self._lock = threading.Lock()
        self._known: dict[str, Leaf] = {}

    def check(self, name: object) -> str:
        """`name` normalised, or LeafRefused saying why this CA must not sign it."""
        try:
            return checked_leaf_name(name, self.ca.domains)
        except NameRefused as exc:
            raise LeafRefused(str(exc)) from None

    def get(self, name: object) -> Leaf:
        """A valid leaf for `name`: from memory, else from disk, else minted now."""
        clean = self.check(name)
        now = self._clock()
        with self._lock:
            known = self._known.get(clean)
            if known is not None and now < known.renew_after:
                return known
            leaf = self._from_disk(clean, now) or self._mint(clean, now)
            self._known[clean] = leaf
            return leaf

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.pem"

    def _from_disk(self, name: str, now: dt.datetime) -> Leaf | None:
        path = self._path(name)
        data = files.read_checked(path, secret=True)
        if data is None:
            return None
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError:
            return None  # damaged: minted again over it
        if remint_reason(cert, self.ca.cert, now) is not None:
            return None
        return Leaf(name, path, _renew_after(cert))

    def _mint(self, name: str, now: dt.datetime) -> Leaf:
        cert, key = build_leaf(self.ca, name, now)
        data = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        files.private_folder(self.folder)
        path = self._path(name)
        files.write_new(path, data, 0o600)
        return Leaf(name, path, _renew_after(cert))


def _renew_after(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_after_utc - dt.timedelta(days=RENEW_DAYS)
