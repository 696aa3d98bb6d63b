"""Write a throwaway PKI for HTTPS tests against v1_standin.py.

Files written into the directory (PEM, keys unencrypted, mode 0600):
  ca.pem                 test CA certificate: trust this one
  server.pem             leaf for IP 127.0.0.1 and DNS localhost, signed by ca.pem
  server-key.pem         its key
  wrong-host.pem         leaf signed by ca.pem but only for wrong-host.invalid
  wrong-host-key.pem     its key
  other-ca.pem           a second CA that signed nothing here

The certificates are valid from one day ago for 30 days. All keys are P-256.

Needs python3-cryptography.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import es256

VALID_DAYS = 30


def name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bridge tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(
        now + datetime.timedelta(days=VALID_DAYS)
    )


def make_ca(common_name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return key, validity(builder).sign(key, hashes.SHA256())


def make_leaf(ca_key, ca_cert, common_name: str, alt_names):
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    return key, validity(builder).sign(ca_key, hashes.SHA256())


def write_private(path: str, data: bytes):
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def write_test_pki(directory: str) -> dict:
    """Write the files listed in the module docstring and return their paths by role."""
    os.makedirs(directory, exist_ok=True)
    ca_key, ca_cert = make_ca("bridge test CA")
    _, other_ca_cert = make_ca("bridge other test CA")
    server_key, server_cert = make_leaf(
        ca_key,
        ca_cert,
        "127.0.0.1",
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
    )
    wrong_key, wrong_cert = make_leaf(
        ca_key, ca_cert, "wrong-host.invalid", [x509.DNSName("wrong-host.invalid")]
    )

    paths = {
        role: os.path.join(directory, file_name)
        for role, file_name in (
            ("ca", "ca.pem"),
            ("server_cert", "server.pem"),
            ("server_key", "server-key.pem"),
            ("wrong_host_cert", "wrong-host.pem"),
            ("wrong_host_key", "wrong-host-key.pem"),
            ("other_ca", "other-ca.pem"),
        )
    }
    write_private(paths["ca"], ca_cert.public_bytes(Encoding.PEM))
    write_private(paths["other_ca"], other_ca_cert.public_bytes(Encoding.PEM))
    write_private(paths["server_cert"], server_cert.public_bytes(Encoding.PEM))
    write_private(paths["server_key"], es256.private_key_pem(server_key))
    write_private(paths["wrong_host_cert"], wrong_cert.public_bytes(Encoding.PEM))
    write_private(paths["wrong_host_key"], es256.private_key_pem(wrong_key))
    return paths
