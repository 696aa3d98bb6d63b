//! The /v1 API client over HTTPS against a rustls peer on 127.0.0.1 that
//! this test process starts, with certificates made here by rcgen. An
//! untrusted certificate fails with a TLS error and no retry. A CA given as
//! a PEM file makes the same peer trusted, and a host name mismatch still
//! fails.

use bridge::exit::ExitStatus;
use bridge::trax::api::{ApiClient, ApiConfig, ApiError, RetryPolicy};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A CA and a server certificate it signed.
struct Certificates {
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

fn make_certificates(server_names: &[&str]) -> Certificates {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let names: Vec<String> = server_names.iter().map(|name| name.to_string()).collect();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(names)
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();

    Certificates {
        ca_pem: ca.pem(),
        server_chain: vec![server.der().clone()],
        server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
    }
}

/// An HTTPS peer that responds to every request with `200 {}` and counts the
/// connections it accepts.
struct TlsPeer {
    origin: String,
    connections: Arc<AtomicUsize>,
}

fn start_tls_peer(certificates: &Certificates) -> TlsPeer {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            certificates.server_chain.clone(),
            certificates.server_key.clone_key(),
        )
        .unwrap();
    let config = Arc::new(config);

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the TLS peer on loopback");
    let origin = format!("https://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let config = config.clone();
            thread::spawn(move || serve_one(config, stream));
        }
    });
    TlsPeer {
        origin,
        connections,
    }
}

fn serve_one(config: Arc<rustls::ServerConfig>, stream: std::net::TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let connection = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, stream);

    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        match tls.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    let response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    let _ = tls.write_all(response.as_bytes());
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn config(origin: &str, ca_file: Option<PathBuf>) -> ApiConfig {
    ApiConfig {
        origin: origin.to_string(),
        key: None,
        ca_file,
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(1),
        },
    }
}

fn write_pem(directory: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = directory.path().join("ca.pem");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn untrusted_certificate_fails_clearly() {
    let certificates = make_certificates(&["localhost", "127.0.0.1"]);
    let peer = start_tls_peer(&certificates);
    let client = ApiClient::new(config(&peer.origin, None)).unwrap();

    let error = client.health().unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, ApiError::Tls { .. }), "{error:?}");
    assert_eq!(error.exit_status(), ExitStatus::Other);
    assert!(text.contains("TLS handshake failed"), "{text}");
    assert!(text.contains("invalid peer certificate"), "{text}");
    assert!(text.contains("not trusted"), "{text}");
    assert_eq!(
        peer.connections.load(Ordering::SeqCst),
        1,
        "a TLS error is not retried"
    );
}

#[test]
fn ca_file_makes_peer_trusted() {
    let certificates = make_certificates(&["localhost", "127.0.0.1"]);
    let peer = start_tls_peer(&certificates);
    let directory = tempfile::tempdir().unwrap();
    let ca_file = write_pem(&directory, &certificates.ca_pem);

    let client = ApiClient::new(config(&peer.origin, Some(ca_file))).unwrap();
    client.health().unwrap();
    assert_eq!(peer.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn host_name_mismatch_fails() {
    let certificates = make_certificates(&["api.other.test"]);
    let peer = start_tls_peer(&certificates);
    let directory = tempfile::tempdir().unwrap();
    let ca_file = write_pem(&directory, &certificates.ca_pem);

    let client = ApiClient::new(config(&peer.origin, Some(ca_file))).unwrap();
    let error = client.health().unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, ApiError::Tls { .. }), "{error:?}");
    assert!(text.contains("certificate not valid for name"), "{text}");
    assert!(text.contains("use that name in the API URL"), "{text}");
}

#[test]
fn unusable_ca_files_rejected() {
    let directory = tempfile::tempdir().unwrap();
    let not_pem = write_pem(&directory, "just text\n");
    let bad_der = directory.path().join("bad.pem");
    std::fs::write(
        &bad_der,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let cases = [
        (directory.path().join("absent.pem"), "No such file"),
        (not_pem, "contains no '-----BEGIN CERTIFICATE-----' block"),
        (bad_der, "a certificate in it cannot be read"),
    ];
    for (path, expected) in cases {
        let error = ApiClient::new(config("https://127.0.0.1:9", Some(path.clone()))).unwrap_err();
        let text = error.to_string();
        assert!(
            matches!(error, ApiError::CaFile { .. }),
            "{path:?}: {error:?}"
        );
        assert_eq!(error.exit_status(), ExitStatus::Usage, "{path:?}");
        assert!(text.contains(expected), "{path:?}: {text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
}
