"""A throw-away certificate authority for the local IBM Quantum service.

qiskit-ibm-runtime fetches its bearer token from ``https://iam.cloud.ibm.com`` (the host is
fixed in the client). The local service answers that call itself, at the end of the proxy
tunnel the client opens to it, so it needs a certificate for that name which the client
trusts: a certificate authority made at start-up, whose certificate the client is pointed at
through ``REQUESTS_CA_BUNDLE``, signs one for the names the service terminates. Both live in
memory and in one temporary folder, and are never reused.

Uses the ``cryptography`` package (the ``testing`` extra): the standard library can use
certificates but not make them.
"""

from __future__ import annotations

import datetime as dt
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path


class LocalAuthority:
    """A certificate authority and one server certificate signed by it, for ``names``.

    ``ca_file`` is what a client trusts (PEM); :meth:`server_context` is the TLS context the
    server wraps its side of a tunnel with. :meth:`close` removes the files.
    """

    def __init__(self, names: Sequence[str]) -> None:
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
        except ImportError as exc:  # pragma: no cover - the extra is part of the test install
            raise RuntimeError("the local IBM Quantum service needs the 'cryptography' package: "
                               "pip install 'qjm-tui[testing]'") from exc

        now = dt.datetime.now(dt.timezone.utc)
        not_before, not_after = now - dt.timedelta(minutes=5), now + dt.timedelta(days=2)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qjm local IBM Quantum CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name).issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self._folder = tempfile.TemporaryDirectory(prefix="qjm-ibm-ca-")
        folder = Path(self._folder.name)
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        self._chain = folder / "server.pem"
        self._chain.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
        self.names = tuple(names)

    def server_context(self) -> ssl.SSLContext:
        """The TLS context for the server's end of a tunnel to one of :attr:`names`."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._chain)
        return context

    def close(self) -> None:
        """Remove the certificate files."""
        self._folder.cleanup()
