"""The per-user local CA: made on first need, kept under `$XDG_DATA_HOME/promenade/ca/`.

`ca.key` (0600) and `ca.pem` (0644) in a 0700 folder. The certificate is an ECDSA P-256
root, valid 10 years, with critical basicConstraints (CA, pathlen 0: it signs leaves
only) and critical name constraints (names.py): it can sign `localhost`, `*.localhost`
and the domains given when it was made, and no IP address. Its subject names the user
and machine ("Promenade local CA (ada@laptop)") so that someone looking at a trust store
knows whose it is.

The permitted domains are fixed when the CA is made (a certificate cannot change); a CA
for more domains is a new CA, so `ensure_ca` refuses rather than silently replacing one
that browsers already trust.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from promenade_core.errors import PromenadeError
from promenade_core.tls import files
from promenade_core.tls.names import NameRefused, permitted_domains, within

CA_DAYS = 3650
KEY_FILE = "ca.key"
CERT_FILE = "ca.pem"


@dataclass(frozen=True)
class CA:
    """A loaded CA: what a leaf is signed with, and where it lives."""

    folder: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    domains: tuple[str, ...]

    @property
    def cert_path(self) -> Path:
        return self.folder / CERT_FILE

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def name(self) -> str:
        """The subject's common name, which is also its nickname in NSS databases."""
        values = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(values[0].value) if values else "Promenade local CA"

    @property
    def fingerprint(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex()


def subject_name() -> str:
    """`Promenade local CA (user@host)`: whose CA this is, readable in any store."""
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = str(os.geteuid())
    return f"Promenade local CA ({user}@{socket.gethostname()})"


def build_ca(domains: tuple[str, ...], now: dt.datetime, common_name: str,
             ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new self-signed CA limited to `domains` (pure but for the key's randomness)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Promenade")])
    constraints = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName(d) for d in domains],
        excluded_subtrees=[x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
                           x509.IPAddress(ipaddress.ip_network("::/0"))])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(constraints, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def cert_domains(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS subtrees a CA certificate permits (empty when it has no constraints)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(str(sub.value) for sub in ext.permitted_subtrees or ()
                 if isinstance(sub, x509.DNSName))


def load_ca(folder: Path | None = None) -> CA | None:
    """The CA in `folder` (default: the user's), None when there is none yet."""
    folder = folder or files.ca_folder()
    key_pem = files.read_checked(folder / KEY_FILE, secret=True)
    cert_pem = files.read_checked(folder / CERT_FILE, secret=False)
    if key_pem is None and cert_pem is None:
        return None
    if key_pem is None or cert_pem is None:
        missing = KEY_FILE if key_pem is None else CERT_FILE
        raise PromenadeError(f"the CA in {folder} is incomplete ({missing} is missing); "
                             "run `promenade trust --uninstall`, then `promenade trust`")
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise PromenadeError(f"the CA in {folder} cannot be read ({exc}); run "
                             "`promenade trust --uninstall`, then `promenade trust`") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or \
            _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise PromenadeError(f"{folder / KEY_FILE} is not the key of {folder / CERT_FILE}; "
                             "run `promenade trust --uninstall`, then `promenade trust`")
    return CA(folder, cert, key, cert_domains(cert))


def _public_der(public: object) -> bytes:
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return b""
    return public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def missing_domains(ca_domains: Iterable[str], wanted: Iterable[str]) -> list[str]:
    """The wanted domains an existing CA does not cover (pure)."""
    have = tuple(ca_domains)
    return [d for d in wanted if not any(within(d, h) for h in have)]


def ensure_ca(extra_domains: Iterable[str] = (), folder: Path | None = None,
              now: dt.datetime | None = None) -> tuple[CA, bool]:
    """The user's CA, made now if there is none; True when it was just made.

    An existing CA that does not permit `extra_domains`, or that has expired, is refused
    with what to run, never replaced behind the user's back."""
    try:
        wanted = permitted_domains(extra_domains)
    except NameRefused as exc:
        raise PromenadeError(str(exc)) from None
    files.refuse_sudo_root()
    folder = files.private_folder(folder or files.ca_folder())
    now = now or dt.datetime.now(dt.timezone.utc)
    with files.folder_lock(folder):
        existing = load_ca(folder)
        if existing is not None:
            _check_existing(existing, wanted, now)
            return existing, False
        cert, key = build_ca(wanted, now, subject_name())
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        files.write_new(folder / KEY_FILE, key_pem, 0o600)
        files.write_new(folder / CERT_FILE, cert.public_bytes(serialization.Encoding.PEM),
                        0o644)
        return CA(folder, cert, key, wanted), True


def _check_existing(ca: CA, wanted: tuple[str, ...], now: dt.datetime) -> None:
    missing = missing_domains(ca.domains, wanted)
    if missing:
        union = permitted_domains([*ca.domains, *missing])
        names = " ".join(f"--name {d}" for d in union if d != "localhost")
        raise PromenadeError(
            f"the CA in {ca.folder} permits only {', '.join(ca.domains)}, not "
            f"{', '.join(missing)}: a CA's names cannot change; run "
            f"`promenade trust --uninstall`, then `promenade trust {names}`")
    if ca.cert.not_valid_after_utc <= now:
        raise PromenadeError(
            f"the CA in {ca.folder} expired on {ca.cert.not_valid_after_utc:%Y-%m-%d}; run "
            "`promenade trust --uninstall`, then `promenade trust`")


def remove_ca(folder: Path | None = None) -> list[Path]:
    """Delete the CA's files and cached leaves; return what was removed."""
    files.refuse_sudo_root()
    folder = folder or files.ca_folder()
    removed: list[Path] = []
    leaves = folder / "leaves"
    for path in [*sorted(leaves.glob("*.pem")), folder / KEY_FILE, folder / CERT_FILE,
                 folder / "lock"]:
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(path)
    for empty in (leaves, folder):
        try:
            empty.rmdir()
        except OSError:
            continue
    return removed
