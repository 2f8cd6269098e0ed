use super::*;
use crate::pki::test_openssl::Workdir;

const SANS: &str = "DNS:a.example,DNS:B.example,IP:127.0.0.1,IP:::1,email:x@a.example";

fn names(info: &CsrInfo) -> Vec<String> {
    info.subject_alt_names
        .iter()
        .map(|s| format!("{}:{s}", s.kind()))
        .collect()
}

#[test]
fn p256_csr_from_openssl_parses_and_verifies() {
    let work = Workdir::new();
    let pem = work.csr("p256", "ec", "/CN=a.example", SANS);
    let info = parse_csr(&pem).expect("valid CSR");
    assert_eq!(info.common_name.as_deref(), Some("a.example"));
    assert_eq!(
        names(&info),
        [
            "DNS:a.example",
            "DNS:b.example",
            "IP Address:127.0.0.1",
            "IP Address:::1",
            "email:x@a.example"
        ]
    );
    assert_eq!(info.key_algorithm, KeyAlgorithm::Ecdsa);
    assert_eq!(info.key_size, 256);
    // The key handed on is the one openssl generated.
    let openssl_spki = work.openssl(&["pkey", "-in", "p256.key", "-pubout"]);
    assert_eq!(
        info.public_key,
        SubjectPublicKey::from_pem(&openssl_spki).expect("openssl public key")
    );
}

#[test]
fn rsa_and_ed25519_csrs_report_their_keys() {
    let work = Workdir::new();
    let rsa =
        parse_csr(&work.csr("rsa", "rsa:2048", "/CN=r.example", "DNS:r.example")).expect("rsa");
    assert_eq!((rsa.key_algorithm, rsa.key_size), (KeyAlgorithm::Rsa, 2048));
    let ed = parse_csr(&work.csr("ed", "ed25519", "/CN=e.example", "")).expect("ed25519");
    assert_eq!(
        (ed.key_algorithm, ed.key_size),
        (KeyAlgorithm::Ed25519, 256)
    );
    assert!(ed.subject_alt_names.is_empty());
}

#[test]
fn rsa_1024_csr_verifies_and_reports_1024_bits() {
    // The profile rules refuse the key by name; the CSR itself is genuine.
    let work = Workdir::new();
    let info =
        parse_csr(&work.csr("weak", "rsa:1024", "/CN=w.example", "DNS:w.example")).expect("parses");
    assert_eq!(
        (info.key_algorithm, info.key_size),
        (KeyAlgorithm::Rsa, 1024)
    );
}

#[test]
fn tampered_signature_does_not_verify() {
    let work = Workdir::new();
    work.csr("t", "ec", "/CN=a.example", "DNS:a.example");
    work.openssl(&["req", "-in", "t.csr", "-outform", "DER", "-out", "t.der"]);
    let mut der = std::fs::read(work.path("t.der")).expect("der");
    // The signature BIT STRING is the last element; its last byte is signature material.
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let err = parse_csr_der(&der).expect_err("tampered");
    assert!(matches!(err, CsrError::BadSignature), "{err:?}");
    assert_eq!(err.to_string(), "CSR signature does not verify");

    // Same for an RSA-1024 CSR, which takes the legacy verification path.
    work.csr("w", "rsa:1024", "/CN=w.example", "DNS:w.example");
    work.openssl(&["req", "-in", "w.csr", "-outform", "DER", "-out", "w.der"]);
    let mut der = std::fs::read(work.path("w.der")).expect("der");
    let last = der.len() - 1;
    der[last] ^= 0x01;
    assert!(matches!(parse_csr_der(&der), Err(CsrError::BadSignature)));
}

#[test]
fn altered_request_info_does_not_verify() {
    // Changing a signed name (not the signature) must also be caught.
    let work = Workdir::new();
    work.csr("t", "ec", "/CN=a.example", "DNS:a.example");
    work.openssl(&["req", "-in", "t.csr", "-outform", "DER", "-out", "t.der"]);
    let der = std::fs::read(work.path("t.der")).expect("der");
    let at = der
        .windows(9)
        .position(|w| w == b"a.example")
        .expect("name in DER");
    let mut forged = der.clone();
    forged[at] = b'b';
    assert!(matches!(
        parse_csr_der(&forged),
        Err(CsrError::BadSignature)
    ));
}

#[test]
fn sha1_signed_csr_is_refused() {
    let work = Workdir::new();
    work.openssl(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "rsa:2048",
        "-sha1",
        "-keyout",
        "k.pem",
        "-out",
        "s.csr",
        "-subj",
        "/CN=s.example",
    ]);
    let err = parse_csr(&work.read("s.csr")).expect_err("sha1");
    assert!(matches!(err, CsrError::UnsupportedSignature(_)), "{err:?}");
    assert!(err.to_string().contains("1.2.840.113549.1.1.5"), "{err}");
}

#[test]
fn base64_der_and_new_certificate_request_label_are_accepted() {
    let work = Workdir::new();
    let pem = work.csr("b", "ec", "/CN=a.example", "DNS:a.example");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(
        parse_csr(&body).expect("base64").common_name.as_deref(),
        Some("a.example")
    );

    let der = base64::engine::general_purpose::STANDARD
        .decode(&body)
        .expect("b64");
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der);
    assert!(parse_csr(&url).is_ok());

    let legacy = pem.replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST");
    assert!(parse_csr(&legacy).is_ok());
}

#[test]
fn garbage_is_malformed() {
    for input in [
        "",
        "hello world",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "AAAA",
    ] {
        let err = parse_csr(input).expect_err(input);
        assert!(matches!(err, CsrError::Malformed(_)), "{input:?}: {err:?}");
        assert!(
            err.to_string()
                .starts_with("not a PEM or DER certificate signing request")
        );
    }
}

#[test]
fn uri_sans_are_refused_by_name() {
    let work = Workdir::new();
    let pem = work.csr("u", "ec", "/CN=a.example", "DNS:a.example,URI:spiffe://x/y");
    let err = parse_csr(&pem).expect_err("uri");
    assert!(matches!(err, CsrError::UnsupportedName(_)), "{err:?}");
    assert!(err.to_string().contains("spiffe://x/y"), "{err}");
}

#[test]
fn names_must_match_as_a_set() {
    let work = Workdir::new();
    let info = parse_csr(&work.csr("n", "ec", "/CN=a.example", SANS)).expect("csr");
    let sans: Vec<String> = ["b.example", "A.EXAMPLE", "::1", "127.0.0.1", "x@a.example"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    check_names(&info, "a.example", &sans).expect("same set, different order and case");

    let mut wrong = sans.clone();
    wrong[0] = "c.example".into();
    let err = check_names(&info, "a.example", &wrong).expect_err("wrong SAN");
    let message = err.to_string();
    assert!(message.contains("the CSR lacks DNS:c.example"), "{message}");
    assert!(message.contains("the CSR adds DNS:b.example"), "{message}");

    let err = check_names(&info, "a.example", &sans[..4]).expect_err("extra email");
    assert!(
        err.to_string().contains("the CSR adds email:x@a.example"),
        "{err}"
    );
}

#[test]
fn csr_may_leave_the_common_name_to_its_sans() {
    let work = Workdir::new();
    let info =
        parse_csr(&work.csr("s", "ec", "/O=certctl", "DNS:a.example,DNS:b.example")).expect("csr");
    assert_eq!(info.common_name, None);
    check_names(&info, "a.example", &["b.example".into()]).expect("CN carried by the SANs");
    let err = check_names(
        &info,
        "c.example",
        &["a.example".into(), "b.example".into()],
    )
    .expect_err("CN not in the CSR");
    assert!(err.to_string().contains("lacks DNS:c.example"), "{err}");
}

#[test]
fn a_stated_common_name_must_match() {
    let work = Workdir::new();
    let info = parse_csr(&work.csr("c", "ec", "/CN=a.example", "DNS:a.example,DNS:b.example"))
        .expect("csr");
    let sans = vec!["a.example".to_owned(), "b.example".to_owned()];
    let err = check_names(&info, "b.example", &sans).expect_err("CN differs");
    assert!(
        err.to_string()
            .contains("common name \"a.example\" differs from the certificate's \"b.example\""),
        "{err}"
    );
}
