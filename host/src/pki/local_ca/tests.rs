use std::os::unix::fs::PermissionsExt as _;

use super::*;
use crate::pki::csr::parse_csr;
use crate::pki::test_openssl::Workdir;

const SANS: &str = "DNS:a.example,DNS:b.example,IP:127.0.0.1,email:x@a.example";
const CRL_URL: &str = "http://pki.example/.well-known/pki/crl/iss_local";
const OCSP_URL: &str = "http://pki.example/.well-known/pki/ocsp/iss_local";

/// openssl config for test roots, intermediates and deliberately broken CAs.
const CA_CNF: &str = "\
[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[intermediate]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[not_ca]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyCertSign
subjectKeyIdentifier = hash
[no_cert_sign]
basicConstraints = critical,CA:TRUE
keyUsage = critical,cRLSign,digitalSignature
subjectKeyIdentifier = hash
";

fn request(public_key: SubjectPublicKey, common_name: &str, sans: &[&str]) -> IssueRequest {
    let now = OffsetDateTime::now_utc();
    IssueRequest {
        public_key,
        common_name: common_name.into(),
        sans: sans.iter().map(|s| (*s).to_owned()).collect(),
        extended_key_usages: vec![ExtendedKeyUsage::ServerAuth],
        not_before: now - Duration::minutes(5),
        not_after: now + Duration::days(90),
        crl_url: Some(CRL_URL.into()),
        ocsp_url: Some(OCSP_URL.into()),
    }
}

/// The value line(s) following an `openssl x509 -text` extension header.
fn extension(text: &str, header: &str) -> String {
    let mut lines = text.lines().skip_while(|l| !l.contains(header));
    let header_line = lines
        .next()
        .unwrap_or_else(|| panic!("no {header} in\n{text}"));
    let mut values = vec![header_line.trim().to_owned()];
    values.extend(
        lines
            .take_while(|l| {
                l.starts_with("                ")
                    && !l.trim_start().starts_with("X509v3")
                    && !l.contains("Authority Information Access")
            })
            .map(|l| l.trim().to_owned()),
    );
    values.join("\n")
}

/// Hex of the key identifier printed under `header`, without separators or prefixes.
fn key_id(text: &str, header: &str) -> String {
    let block = extension(text, header);
    let line = block.lines().nth(1).unwrap_or_default();
    line.trim_start_matches("keyid:")
        .replace(':', "")
        .to_lowercase()
}

#[test]
fn local_ca_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<LocalCa>();
}

#[test]
fn ca_is_created_once_and_reloaded() {
    let work = Workdir::new();
    let dir = work.path("pki");
    let first = LocalCa::load_or_create(&dir).expect("create");
    let second = LocalCa::load_or_create(&dir).expect("load");
    assert_eq!(first.certificate_der(), second.certificate_der());
    assert_eq!(first.chain_pem(), second.chain_pem());
    assert_eq!(
        std::fs::read_to_string(dir.join("ca.pem")).expect("ca.pem"),
        first.chain_pem()
    );

    let mode = std::fs::metadata(dir.join("ca.key"))
        .expect("ca.key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!dir.join("ca.tmp").exists(), "temporary file left behind");

    let text = work.openssl(&["x509", "-in", "pki/ca.pem", "-noout", "-text"]);
    assert!(text.contains("Subject: CN = certctl Local CA"), "{text}");
    assert!(text.contains("ASN1 OID: prime256v1"), "{text}");
    assert!(
        extension(&text, "X509v3 Basic Constraints").contains("CA:TRUE"),
        "{text}"
    );
    assert_eq!(
        extension(&text, "X509v3 Key Usage"),
        "X509v3 Key Usage: critical\nCertificate Sign, CRL Sign"
    );
    assert_eq!(
        key_id(&text, "X509v3 Subject Key Identifier").len(),
        40,
        "{text}"
    );
    let days = (first.not_after() - OffsetDateTime::now_utc()).whole_days();
    assert!((3648..=3650).contains(&days), "{days}");
    // openssl accepts it as a self-signed trust anchor.
    work.openssl(&["verify", "-CAfile", "pki/ca.pem", "pki/ca.pem"]);
}

#[test]
fn half_present_ca_is_not_overwritten() {
    let work = Workdir::new();
    let dir = work.path("pki");
    LocalCa::load_or_create(&dir).expect("create");
    std::fs::remove_file(dir.join("ca.pem")).expect("rm");
    let key_before = std::fs::read(dir.join("ca.key")).expect("key");
    let err = LocalCa::load_or_create(&dir).expect_err("cert missing");
    assert!(
        err.to_string()
            .contains("ca.pem: is missing while ca.key exists"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.join("ca.key")).expect("key"), key_before);
}

/// Issues a TLS leaf for an openssl CSR and checks it with openssl; returns `x509 -text`.
fn issue_and_inspect(newkey: &str) -> (String, IssuedCertificate) {
    let work = Workdir::new();
    let ca = LocalCa::load_or_create(&work.path("pki")).expect("ca");
    let csr = parse_csr(&work.csr("leaf", newkey, "/CN=a.example", SANS)).expect("csr");
    let issued = ca
        .issue(&request(
            csr.public_key,
            "a.example",
            &["a.example", "b.example", "127.0.0.1", "x@a.example"],
        ))
        .expect("issue");
    work.write("leaf.pem", &issued.leaf_pem);
    work.write("chain.pem", &issued.pem_chain);
    let verdict = work.openssl(&[
        "verify",
        "-CAfile",
        "pki/ca.pem",
        "-purpose",
        "sslserver",
        "leaf.pem",
    ]);
    assert_eq!(verdict.trim(), "leaf.pem: OK");

    let text = work.openssl(&["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert_eq!(
        extension(&text, "X509v3 Subject Alternative Name"),
        "X509v3 Subject Alternative Name:\nDNS:a.example, DNS:b.example, IP Address:127.0.0.1, email:x@a.example"
    );
    assert!(text.contains("Subject: CN = a.example"), "{text}");
    assert!(
        extension(&text, "X509v3 Basic Constraints").contains("CA:FALSE"),
        "{text}"
    );
    assert_eq!(
        extension(&text, "X509v3 Extended Key Usage"),
        "X509v3 Extended Key Usage:\nTLS Web Server Authentication"
    );
    assert!(
        extension(&text, "X509v3 CRL Distribution Points").contains(&format!("URI:{CRL_URL}")),
        "{text}"
    );
    assert!(
        extension(&text, "Authority Information Access")
            .contains(&format!("OCSP - URI:{OCSP_URL}")),
        "{text}"
    );

    // AKI is the CA's SKI; the leaf has its own SKI.
    let ca_text = work.openssl(&["x509", "-in", "pki/ca.pem", "-noout", "-text"]);
    let ca_ski = key_id(&ca_text, "X509v3 Subject Key Identifier");
    assert_eq!(
        key_id(&text, "X509v3 Authority Key Identifier"),
        ca_ski,
        "{text}"
    );
    let leaf_ski = key_id(&text, "X509v3 Subject Key Identifier");
    assert_eq!(leaf_ski.len(), 40);
    assert_ne!(leaf_ski, ca_ski);

    // Serial: what we report, positive, at least 8 octets.
    let serial = work.openssl(&["x509", "-in", "leaf.pem", "-noout", "-serial"]);
    let serial = serial.trim().trim_start_matches("serial=").to_lowercase();
    assert_eq!(serial, issued.serial_hex);
    assert!(serial.len() >= 16, "{serial}");
    assert!(u8::from_str_radix(&serial[..2], 16).expect("hex") < 0x80);

    // Fingerprint: what openssl computes over the DER.
    let fingerprint = work.openssl(&[
        "x509",
        "-in",
        "leaf.pem",
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    let fingerprint = fingerprint
        .trim()
        .rsplit('=')
        .next()
        .unwrap_or_default()
        .replace(':', "")
        .to_lowercase();
    assert_eq!(fingerprint, issued.fingerprint_sha256);

    // The chain is leaf first, then the CA.
    let ca_pem = work.read("pki/ca.pem");
    assert_eq!(issued.pem_chain, format!("{}{ca_pem}", issued.leaf_pem));
    (text, issued)
}

#[test]
fn issues_tls_leaf_for_openssl_p256_csr() {
    let (text, issued) = issue_and_inspect("ec");
    assert_eq!(
        extension(&text, "X509v3 Key Usage"),
        "X509v3 Key Usage: critical\nDigital Signature"
    );
    assert_eq!(
        (issued.key_algorithm.as_str(), issued.key_size),
        ("ECDSA", 256)
    );
    assert_eq!(
        issued.subject_alt_names,
        ["a.example", "b.example", "127.0.0.1", "x@a.example"]
    );
}

#[test]
fn issues_tls_leaf_for_openssl_rsa_csr() {
    let (text, issued) = issue_and_inspect("rsa:2048");
    assert_eq!(
        extension(&text, "X509v3 Key Usage"),
        "X509v3 Key Usage: critical\nDigital Signature, Key Encipherment"
    );
    assert_eq!(
        (issued.key_algorithm.as_str(), issued.key_size),
        ("RSA", 2048)
    );
}

#[test]
fn common_name_joins_the_sans_and_urls_are_optional() {
    let work = Workdir::new();
    let ca = LocalCa::load_or_create(&work.path("pki")).expect("ca");
    let csr =
        parse_csr(&work.csr("leaf", "ec", "/CN=Api.Example", "DNS:other.example")).expect("csr");
    let mut req = request(
        csr.public_key,
        "Api.Example",
        &["other.example", "10.1.2.3", "fe80::1"],
    );
    req.crl_url = None;
    req.ocsp_url = None;
    let issued = ca.issue(&req).expect("issue");
    assert_eq!(
        issued.subject_alt_names,
        ["api.example", "other.example", "10.1.2.3", "fe80::1"]
    );
    work.write("leaf.pem", &issued.leaf_pem);
    let text = work.openssl(&["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert!(text.contains("Subject: CN = api.example"), "{text}");
    assert!(
        text.contains(
            "DNS:api.example, DNS:other.example, IP Address:10.1.2.3, IP Address:FE80:0:0:0:0:0:0:1"
        ),
        "{text}"
    );
    assert!(!text.contains("CRL Distribution Points"), "{text}");
    assert!(!text.contains("Authority Information Access"), "{text}");
    work.openssl(&["verify", "-CAfile", "pki/ca.pem", "leaf.pem"]);
}

#[test]
fn smime_leaf_gets_email_san_and_content_commitment() {
    let work = Workdir::new();
    let ca = LocalCa::load_or_create(&work.path("pki")).expect("ca");
    for (newkey, usage) in [
        ("ec", "Digital Signature, Non Repudiation"),
        (
            "rsa:2048",
            "Digital Signature, Non Repudiation, Key Encipherment",
        ),
    ] {
        let csr = parse_csr(&work.csr(
            "mail",
            newkey,
            "/CN=Ann@Example.org",
            "email:Ann@Example.org",
        ))
        .expect("csr");
        let mut req = request(csr.public_key, "Ann@Example.org", &[]);
        req.extended_key_usages = vec![ExtendedKeyUsage::EmailProtection];
        let issued = ca.issue(&req).expect("issue");
        assert_eq!(issued.subject_alt_names, ["Ann@example.org"]);
        work.write("mail.pem", &issued.leaf_pem);
        work.openssl(&[
            "verify",
            "-CAfile",
            "pki/ca.pem",
            "-purpose",
            "smimesign",
            "mail.pem",
        ]);
        let text = work.openssl(&["x509", "-in", "mail.pem", "-noout", "-text"]);
        assert_eq!(
            extension(&text, "X509v3 Key Usage"),
            format!("X509v3 Key Usage: critical\n{usage}")
        );
        assert!(text.contains("email:Ann@example.org"), "{text}");
        assert!(text.contains("E-mail Protection"), "{text}");
    }
}

#[test]
fn code_signing_and_time_stamping_leaves() {
    let work = Workdir::new();
    let ca = LocalCa::load_or_create(&work.path("pki")).expect("ca");
    let csr = parse_csr(&work.csr("cs", "rsa:2048", "/CN=tools.example", "DNS:tools.example"))
        .expect("csr");

    let mut req = request(csr.public_key.clone(), "tools.example", &[]);
    req.extended_key_usages = vec![ExtendedKeyUsage::CodeSigning];
    work.write("code.pem", &ca.issue(&req).expect("code signing").leaf_pem);
    let text = work.openssl(&["x509", "-in", "code.pem", "-noout", "-text"]);
    assert_eq!(
        extension(&text, "X509v3 Key Usage"),
        "X509v3 Key Usage: critical\nDigital Signature"
    );
    assert!(text.contains("Code Signing"), "{text}");

    req.extended_key_usages = vec![ExtendedKeyUsage::TimeStamping];
    work.write("tsa.pem", &ca.issue(&req).expect("time stamping").leaf_pem);
    let text = work.openssl(&["x509", "-in", "tsa.pem", "-noout", "-text"]);
    assert_eq!(
        extension(&text, "X509v3 Extended Key Usage"),
        "X509v3 Extended Key Usage: critical\nTime Stamping"
    );
    work.openssl(&[
        "verify",
        "-CAfile",
        "pki/ca.pem",
        "-purpose",
        "timestampsign",
        "tsa.pem",
    ]);
}

#[test]
fn validity_is_capped_to_the_ca() {
    let work = Workdir::new();
    let ca = LocalCa::load_or_create(&work.path("pki")).expect("ca");
    let key = crate::pki::server_key::generate().expect("key");
    let mut req = request(key.public_key, "a.example", &[]);
    req.not_after = ca.not_after() + Duration::days(400);
    let issued = ca.issue(&req).expect("capped, not refused");
    assert_eq!(issued.not_after, ca.not_after());
    assert_eq!(
        issued.not_before,
        req.not_before.replace_nanosecond(0).expect("whole seconds")
    );
}

#[test]
fn serials_differ_between_issuances() {
    let work = Workdir::new();
    let ca = LocalCa::load_or_create(&work.path("pki")).expect("ca");
    let key = crate::pki::server_key::generate().expect("key");
    let req = request(key.public_key, "a.example", &[]);
    let serials: std::collections::HashSet<String> = (0..20)
        .map(|_| ca.issue(&req).expect("issue").serial_hex)
        .collect();
    assert_eq!(serials.len(), 20);
    assert!(serials.iter().all(|s| s.len() == 32));
}

#[test]
fn lint_failures_refuse_to_sign() {
    let work = Workdir::new();
    let ca = LocalCa::load_or_create(&work.path("pki")).expect("ca");
    let key = crate::pki::server_key::generate().expect("key");
    let mut req = request(key.public_key, "", &["bad_name.example", "ok.example."]);
    req.not_after = req.not_before - Duration::days(1);
    let err = ca.issue(&req).expect_err("lint");
    let PkiError::Lint(problems) = &err else {
        panic!("expected lint, got {err:?}");
    };
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(
        err.to_string().starts_with("refusing to sign: not_after"),
        "{err}"
    );
    assert!(err.to_string().contains("\"bad_name.example\""), "{err}");
    assert!(
        err.to_string()
            .contains("\"ok.example.\": remove the trailing dot"),
        "{err}"
    );
    assert!(
        err.to_string().contains("no subject alternative names"),
        "{err}"
    );
}

/// A root (ECDSA) and an intermediate with `intermediate_key` (an `openssl genpkey` spec).
fn root_and_intermediate(work: &Workdir, intermediate_key: &[&str], extensions: &str) {
    work.write("ca.cnf", CA_CNF);
    work.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "root.key",
    ]);
    work.openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "root.key",
        "-config",
        "ca.cnf",
        "-extensions",
        "root",
        "-subj",
        "/O=Test/CN=Test Root",
        "-days",
        "30",
        "-out",
        "root.pem",
    ]);
    let mut genpkey = vec!["genpkey"];
    genpkey.extend_from_slice(intermediate_key);
    genpkey.extend(["-out", "int.key"]);
    work.openssl(&genpkey);
    work.openssl(&[
        "req",
        "-new",
        "-key",
        "int.key",
        "-config",
        "ca.cnf",
        "-subj",
        "/O=Test/CN=Test Intermediate",
        "-out",
        "int.csr",
    ]);
    work.openssl(&[
        "x509",
        "-req",
        "-in",
        "int.csr",
        "-CA",
        "root.pem",
        "-CAkey",
        "root.key",
        "-set_serial",
        "0x4a5b6c7d8e9f0a1b",
        "-days",
        "20",
        "-extfile",
        "ca.cnf",
        "-extensions",
        extensions,
        "-out",
        "int.pem",
    ]);
}

fn issue_from_intermediate(work: &Workdir, ca: &LocalCa) -> IssuedCertificate {
    let csr =
        parse_csr(&work.csr("leaf", "ec", "/CN=svc.example", "DNS:svc.example")).expect("csr");
    let issued = ca
        .issue(&request(csr.public_key, "svc.example", &[]))
        .expect("issue");
    work.write("leaf.pem", &issued.leaf_pem);
    let verdict = work.openssl(&[
        "verify",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "int.pem",
        "leaf.pem",
    ]);
    assert_eq!(verdict.trim(), "leaf.pem: OK");
    let ca_text = work.openssl(&["x509", "-in", "int.pem", "-noout", "-text"]);
    let text = work.openssl(&["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert!(
        text.contains("Issuer: O = Test, CN = Test Intermediate"),
        "{text}"
    );
    assert_eq!(
        key_id(&text, "X509v3 Authority Key Identifier"),
        key_id(&ca_text, "X509v3 Subject Key Identifier")
    );
    issued
}

#[test]
fn sub_ca_with_rsa_pkcs8_key() {
    let work = Workdir::new();
    root_and_intermediate(
        &work,
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "intermediate",
    );
    assert!(
        work.read("int.key")
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let ca = LocalCa::from_files(&work.path("int.pem"), &work.path("int.key")).expect("sub-CA");
    let issued = issue_from_intermediate(&work, &ca);
    assert_eq!(
        issued.pem_chain,
        format!("{}{}", issued.leaf_pem, work.read("int.pem"))
    );
    // The chain also verifies when served as one file: leaf, then intermediate.
    work.write("served.pem", &issued.pem_chain);
    work.openssl(&[
        "verify",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "served.pem",
        "leaf.pem",
    ]);
}

#[test]
fn sub_ca_with_ecdsa_pkcs8_key_serves_its_whole_file() {
    let work = Workdir::new();
    root_and_intermediate(
        &work,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        "intermediate",
    );
    work.write(
        "bundle.pem",
        &format!("{}{}", work.read("int.pem"), work.read("root.pem")),
    );
    let ca = LocalCa::from_files(&work.path("bundle.pem"), &work.path("int.key")).expect("sub-CA");
    assert_eq!(ca.chain_pem(), work.read("bundle.pem"));
    let issued = issue_from_intermediate(&work, &ca);
    assert!(issued.pem_chain.ends_with(&work.read("root.pem")));
}

#[test]
fn sub_ca_keys_in_sec1_and_pkcs1_form_are_accepted() {
    for (spec, label) in [
        (
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            "EC PRIVATE KEY",
        ),
        (
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"][..],
            "EC PRIVATE KEY",
        ),
        (
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
            "RSA PRIVATE KEY",
        ),
    ] {
        let work = Workdir::new();
        root_and_intermediate(&work, spec, "intermediate");
        work.openssl(&[
            "pkey",
            "-in",
            "int.key",
            "-traditional",
            "-out",
            "int.trad.key",
        ]);
        assert!(
            work.read("int.trad.key")
                .contains(&format!("BEGIN {label}")),
            "{label}"
        );
        let ca =
            LocalCa::from_files(&work.path("int.pem"), &work.path("int.trad.key")).expect(label);
        issue_from_intermediate(&work, &ca);
    }
}

#[test]
fn sub_ca_refusals_name_file_and_problem() {
    let work = Workdir::new();
    root_and_intermediate(
        &work,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "not_ca",
    );
    let err =
        LocalCa::from_files(&work.path("int.pem"), &work.path("int.key")).expect_err("not a CA");
    let message = err.to_string();
    assert!(message.contains("int.pem"), "{message}");
    assert!(
        message.contains("not a CA: BasicConstraints CA:TRUE is missing"),
        "{message}"
    );

    let work = Workdir::new();
    root_and_intermediate(
        &work,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "no_cert_sign",
    );
    let err = LocalCa::from_files(&work.path("int.pem"), &work.path("int.key"))
        .expect_err("no keyCertSign");
    assert!(
        err.to_string()
            .contains("int.pem: certificate's KeyUsage lacks keyCertSign"),
        "{err}"
    );

    // A valid intermediate with the root's key: mismatch, named on the key file.
    let work = Workdir::new();
    root_and_intermediate(
        &work,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "intermediate",
    );
    let err =
        LocalCa::from_files(&work.path("int.pem"), &work.path("root.key")).expect_err("mismatch");
    let message = err.to_string();
    assert!(
        message
            .contains("root.key: private key does not match the public key of the certificate in"),
        "{message}"
    );

    // Expired: judged at a time after the intermediate's notAfter.
    let later = OffsetDateTime::now_utc() + Duration::days(21);
    let err = LocalCa::from_files_at(&work.path("int.pem"), &work.path("int.key"), later)
        .expect_err("expired");
    assert!(
        err.to_string()
            .contains("int.pem: CA certificate expired at"),
        "{err}"
    );

    // Encrypted keys get conversion advice.
    work.openssl(&[
        "pkey",
        "-in",
        "int.key",
        "-aes256",
        "-passout",
        "pass:secret",
        "-out",
        "enc.key",
    ]);
    let err =
        LocalCa::from_files(&work.path("int.pem"), &work.path("enc.key")).expect_err("encrypted");
    assert!(
        err.to_string()
            .contains("enc.key: private key is encrypted"),
        "{err}"
    );
    assert!(
        err.to_string().contains("openssl pkcs8 -topk8 -nocrypt"),
        "{err}"
    );

    // A file without any key block.
    let err =
        LocalCa::from_files(&work.path("int.pem"), &work.path("int.pem")).expect_err("no key");
    assert!(
        err.to_string()
            .contains("no PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY PEM block"),
        "{err}"
    );

    // A certificate file without certificates.
    let err =
        LocalCa::from_files(&work.path("int.key"), &work.path("int.key")).expect_err("no cert");
    assert!(
        err.to_string()
            .contains("int.key: holds no CERTIFICATE PEM block"),
        "{err}"
    );
}
