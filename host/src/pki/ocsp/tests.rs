//! OCSP wire-format tests with `openssl ocsp` as the independent reader: requests made by
//! openssl parse, and responses we sign verify in openssl with the right status, reason,
//! nonce and responder.

use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::pki::encoding;
use crate::pki::local_ca::{ExtendedKeyUsage, IssueRequest, LocalCa};
use crate::pki::server_key;
use crate::pki::test_openssl::Workdir;

struct Fixture {
    work: Workdir,
    ca: LocalCa,
    leaf_serial: Vec<u8>,
    responder_der: Vec<u8>,
    responder_key: EcdsaKeyPair,
}

fn fixture() -> Fixture {
    let work = Workdir::new();
    let ca = LocalCa::load_or_create(&work.path("ca")).expect("ca");
    let now = OffsetDateTime::now_utc();
    let key = server_key::generate().expect("key");
    let leaf = ca
        .issue(&IssueRequest {
            public_key: key.public_key,
            common_name: "ocsp.example".into(),
            sans: vec![],
            extended_key_usages: vec![ExtendedKeyUsage::ServerAuth],
            not_before: now - Duration::minutes(5),
            not_after: now + Duration::days(30),
            crl_url: None,
            ocsp_url: Some("http://127.0.0.1/ocsp".into()),
        })
        .expect("leaf");
    work.write("leaf.pem", &leaf.leaf_pem);
    work.write("ca.pem", &ca.chain_pem());

    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
    let responder_key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .expect("key");
    let public =
        rcgen::KeyPair::try_from(&PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec())).expect("kp");
    let responder = ca
        .issue_ocsp_responder(
            &public,
            "certctl OCSP responder",
            now - Duration::minutes(5),
            now + Duration::days(30),
        )
        .expect("responder");
    work.write(
        "responder.pem",
        &encoding::pem("CERTIFICATE", &responder.der),
    );
    Fixture {
        work,
        ca,
        leaf_serial: hex::decode(&leaf.serial_hex).expect("hex"),
        responder_der: responder.der,
        responder_key,
    }
}

impl Fixture {
    fn request(&self, extra: &[&str]) -> Vec<u8> {
        // Digest options must precede -cert.
        let mut args = vec!["ocsp"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "-issuer", "ca.pem", "-cert", "leaf.pem", "-reqout", "req.der",
        ]);
        self.work.openssl(&args);
        std::fs::read(self.work.path("req.der")).expect("req")
    }

    fn respond(&self, request: &OcspRequest, status: CertStatus) -> String {
        let now = OffsetDateTime::now_utc();
        let answers: Vec<SingleAnswer> = request
            .cert_ids
            .iter()
            .map(|id| SingleAnswer {
                cert_id_der: id.der.clone(),
                status,
                this_update: now,
                next_update: now + Duration::hours(1),
            })
            .collect();
        let der = encode_response(
            &answers,
            request.nonce.as_deref(),
            now,
            &ResponderKey {
                certificate_der: &self.responder_der,
                key: &self.responder_key,
            },
        )
        .expect("response");
        std::fs::write(self.work.path("resp.der"), der).expect("write");
        // With the request: verifies the signature and checks the nonce (given -cert as
        // well, openssl would build a second request with a nonce of its own).
        let verified = self.openssl_all(&[
            "ocsp",
            "-respin",
            "resp.der",
            "-reqin",
            "req.der",
            "-CAfile",
            "ca.pem",
            "-resp_text",
        ]);
        // With the certificate: prints "leaf.pem: <status>".
        let status = self.openssl_all(&[
            "ocsp",
            "-respin",
            "resp.der",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf.pem",
            "-CAfile",
            "ca.pem",
            "-no_nonce",
        ]);
        verified + &status
    }

    /// Runs openssl and returns stdout and stderr together ("Response verify OK" and nonce
    /// warnings go to stderr); panics if it fails.
    fn openssl_all(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(self.work.path(""))
            .output()
            .expect("openssl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "openssl {}: {text}", args.join(" "));
        assert!(
            !text.contains("Verify error"),
            "openssl {}: {text}",
            args.join(" ")
        );
        text
    }
}

#[test]
fn openssl_requests_parse_and_name_the_issuer() {
    let f = fixture();
    let identity = IssuerIdentity::from_certificate_der(f.ca.certificate_der()).expect("id");
    for (flags, algorithm) in [
        (&[][..], HashAlgorithm::Sha1),
        (&["-sha256"][..], HashAlgorithm::Sha256),
    ] {
        let request = parse_request(&f.request(flags)).expect("parses");
        assert_eq!(request.cert_ids.len(), 1);
        let id = &request.cert_ids[0];
        assert_eq!(id.hash_algorithm, Some(algorithm));
        assert!(identity.issued(id), "{flags:?}");
        assert_eq!(id.serial, f.leaf_serial);
        assert!(request.nonce.is_some(), "openssl sends a nonce by default");
    }
    let no_nonce = parse_request(&f.request(&["-no_nonce"])).expect("parses");
    assert_eq!(no_nonce.nonce, None);

    // A CertID for another issuer does not match.
    let other = Workdir::new();
    let other_ca = LocalCa::load_or_create(&other.path("ca")).expect("ca");
    let other_identity =
        IssuerIdentity::from_certificate_der(other_ca.certificate_der()).expect("id");
    assert!(!other_identity.issued(&no_nonce.cert_ids[0]));
}

#[test]
fn built_cert_ids_match_what_openssl_sends() {
    let f = fixture();
    let request = parse_request(&f.request(&["-no_nonce"])).expect("parses");
    let identity = IssuerIdentity::from_certificate_der(f.ca.certificate_der()).expect("id");
    assert_eq!(identity.cert_id(&f.leaf_serial), request.cert_ids[0].der);
}

#[test]
fn garbage_and_empty_requests_are_malformed() {
    assert!(parse_request(b"").is_err());
    assert!(parse_request(b"not der at all").is_err());
    // SEQUENCE { SEQUENCE { SEQUENCE {} } }: an empty request list.
    assert!(parse_request(&[0x30, 0x04, 0x30, 0x02, 0x30, 0x00]).is_err());
    // Trailing bytes after a valid request.
    let f = fixture();
    let mut req = f.request(&[]);
    assert!(parse_request(&req).is_ok());
    req.push(0);
    assert!(parse_request(&req).is_err());
}

#[test]
fn good_answers_verify_with_the_nonce_echoed() {
    let f = fixture();
    let request = parse_request(&f.request(&[])).expect("parses");
    let out = f.respond(&request, CertStatus::Good);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("leaf.pem: good"), "{out}");
    assert!(!out.contains("WARNING"), "{out}");
    assert!(out.contains("OCSP Nonce"), "{out}");
    assert!(out.contains("Responder Id: "), "{out}");
    assert!(out.contains("Subject: CN=certctl OCSP responder"), "{out}");
    assert!(out.contains("OCSP No Check"), "{out}");
    assert!(out.contains("OCSP Signing"), "{out}");
}

#[test]
fn revoked_answers_carry_time_and_reason() {
    let f = fixture();
    let request = parse_request(&f.request(&[])).expect("parses");
    let when = OffsetDateTime::now_utc() - Duration::minutes(3);
    let out = f.respond(
        &request,
        CertStatus::Revoked {
            time: when,
            reason: Some(1),
        },
    );
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("leaf.pem: revoked"), "{out}");
    assert!(out.contains("Reason: keyCompromise"), "{out}");
    assert!(out.contains("Revocation Time:"), "{out}");

    let out = f.respond(
        &request,
        CertStatus::Revoked {
            time: when,
            reason: None,
        },
    );
    assert!(out.contains("leaf.pem: revoked"), "{out}");
    assert!(!out.contains("Reason:"), "{out}");
}

#[test]
fn unknown_answers_verify() {
    let f = fixture();
    let request = parse_request(&f.request(&["-no_nonce"])).expect("parses");
    let out = f.respond(&request, CertStatus::Unknown);
    assert!(out.contains("leaf.pem: unknown"), "{out}");
}

#[test]
fn error_responses_carry_only_the_status() {
    let f = fixture();
    assert_eq!(
        encode_error(ResponseStatus::MalformedRequest),
        vec![0x30, 0x03, 0x0a, 0x01, 0x01]
    );
    std::fs::write(
        f.work.path("err.der"),
        encode_error(ResponseStatus::Unauthorized),
    )
    .expect("write");
    let out = std::process::Command::new("openssl")
        .args(["ocsp", "-respin", "err.der", "-resp_text", "-noverify"])
        .current_dir(f.work.path(""))
        .output()
        .expect("openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("unauthorized (6)"), "{text}");
}
