use time::macros::datetime;

use super::*;

fn draft(names: &[&str]) -> Draft {
    Draft {
        serial: vec![0x40, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        common_name: String::new(),
        requested_names: names.iter().map(|s| (*s).to_owned()).collect(),
        not_before: datetime!(2026-01-01 00:00 UTC),
        not_after: datetime!(2026-04-01 00:00 UTC),
        key_algorithm: KeyAlgorithm::Ecdsa,
        key_size: 256,
        key_usages: vec![KeyUsagePurpose::DigitalSignature],
        extended_key_usages: vec![ExtendedKeyUsage::ServerAuth],
        crl_url: None,
        ocsp_url: None,
    }
}

fn problems(draft: &Draft) -> Vec<String> {
    match lint(draft) {
        Err(PkiError::Lint(problems)) => problems,
        other => panic!("expected a lint refusal, got {other:?}"),
    }
}

fn dns(name: &str) -> SubjectAltName {
    SubjectAltName::Dns(name.to_owned())
}

#[test]
fn a_clean_draft_passes_and_names_are_normalised() {
    let mut d = draft(&[
        "WWW.Example.COM",
        "*.example.com",
        "127.0.0.1",
        "::1",
        "Ann@Example.ORG",
    ]);
    d.common_name = "Api.Example.com".into();
    let names = lint(&d).expect("clean");
    assert_eq!(names.common_name.as_deref(), Some("api.example.com"));
    assert_eq!(
        names.subject_alt_names,
        vec![
            dns("api.example.com"),
            dns("www.example.com"),
            dns("*.example.com"),
            SubjectAltName::Ip("127.0.0.1".parse().expect("ip")),
            SubjectAltName::Ip("::1".parse().expect("ip")),
            SubjectAltName::Email("Ann@example.org".into()),
        ]
    );
}

#[test]
fn common_name_already_among_sans_is_not_duplicated() {
    let mut d = draft(&["a.example", "b.example"]);
    d.common_name = "B.example".into();
    let names = lint(&d).expect("clean");
    assert_eq!(
        names.subject_alt_names,
        vec![dns("a.example"), dns("b.example")]
    );
}

#[test]
fn bad_dns_names_are_all_listed() {
    let bad = [
        ("foo_bar.example", "characters other than a-z, 0-9 and '-'"),
        (
            "has space.example",
            "characters other than a-z, 0-9 and '-'",
        ),
        ("bücher.example", "xn-- A-labels"),
        ("trailing.example.", "trailing dot"),
        ("double..dot.example", "empty label"),
        (".leading.example", "empty label"),
        ("-dash.example", "starts or ends with '-'"),
        ("dash-.example", "starts or ends with '-'"),
        ("a.*.example", "left-most label"),
        ("*foo.example", "left-most label"),
        ("", "empty name"),
    ];
    let long_label = format!("{}.example", "a".repeat(64));
    let long_name = format!("{}example", "abcdefghi.".repeat(25));
    let mut names: Vec<&str> = bad.iter().map(|(n, _)| *n).collect();
    names.push(&long_label);
    names.push(&long_name);
    names.push("good.example");
    let found = problems(&draft(&names));
    assert_eq!(found.len(), bad.len() + 2, "{found:#?}");
    for ((name, reason), problem) in bad.iter().zip(&found) {
        assert!(
            problem.contains(&format!("{name:?}")),
            "{problem} should name {name}"
        );
        assert!(problem.contains(reason), "{problem} should say {reason}");
    }
    assert!(
        found[bad.len()].contains("64 characters; at most 63"),
        "{found:#?}"
    );
    assert!(found[bad.len() + 1].contains("at most 253"), "{found:#?}");
}

#[test]
fn valid_dns_forms_pass() {
    for name in [
        "localhost",
        "xn--bcher-kva.example",
        "a-b.c0.example",
        "*.a.example",
        "1a.example",
    ] {
        assert_eq!(check_dns_name(name, true), Ok(()), "{name}");
    }
    assert!(check_dns_name("*.a.example", false).is_err());
}

#[test]
fn email_sans_need_one_at_and_a_valid_domain() {
    let found = problems(&draft(&[
        "a@b@c.example",
        "@c.example",
        "x@under_score.example",
        "x@*.example",
        "ok@c.example",
    ]));
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(found[0].contains("exactly one '@'"), "{}", found[0]);
    assert!(found[1].contains("empty local part"), "{}", found[1]);
    assert!(found[2].contains("under_score.example"), "{}", found[2]);
    assert!(
        found[3].contains("wildcards are not allowed"),
        "{}",
        found[3]
    );
}

#[test]
fn inverted_validity_no_sans_and_empty_usages_are_refused_together() {
    let mut d = draft(&[]);
    d.not_after = d.not_before - time::Duration::days(1);
    d.key_usages.clear();
    d.extended_key_usages.clear();
    let found = problems(&d);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found[0].contains(
            "not_after (2025-12-31T00:00:00Z) must be later than not_before (2026-01-01T00:00:00Z)"
        ),
        "{}",
        found[0]
    );
    assert!(
        found[1].starts_with("no subject alternative names"),
        "{}",
        found[1]
    );
    assert!(found[2].starts_with("no key usage"), "{}", found[2]);
    assert!(
        found[3].starts_with("no extended key usage"),
        "{}",
        found[3]
    );
}

#[test]
fn equal_not_before_and_not_after_is_refused() {
    let mut d = draft(&["a.example"]);
    d.not_after = d.not_before;
    assert!(problems(&d)[0].contains("must be later than"));
}

#[test]
fn serial_rules() {
    let cases: [(Vec<u8>, &str); 5] = [
        (vec![0x40; 7], "7 octets"),
        (vec![0x40; 21], "21 octets"),
        (vec![0x80; 16], "must be positive"),
        (vec![0; 16], "must not be zero"),
        (
            [vec![0, 0x10], vec![1; 14]].concat(),
            "redundant leading zero",
        ),
    ];
    for (serial, expected) in cases {
        let mut d = draft(&["a.example"]);
        d.serial = serial;
        let found = problems(&d);
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{expected}: {found:#?}"
        );
    }
    let mut d = draft(&["a.example"]);
    d.serial = vec![0x01; 8];
    assert!(lint(&d).is_ok());
    d.serial = vec![0x01; 20];
    assert!(lint(&d).is_ok());
}

#[test]
fn tls_server_common_name_must_be_a_name() {
    let mut d = draft(&["a.example"]);
    d.common_name = "My Service".into();
    let found = problems(&d);
    assert!(
        found[0].contains("\"My Service\" is not a valid DNS name"),
        "{found:#?}"
    );

    // Outside TLS server certificates a descriptive CN is fine and not made a SAN.
    d.extended_key_usages = vec![ExtendedKeyUsage::ClientAuth];
    let names = lint(&d).expect("client cert");
    assert_eq!(names.common_name.as_deref(), Some("My Service"));
    assert_eq!(names.subject_alt_names, vec![dns("a.example")]);
}

#[test]
fn overlong_common_name_is_refused() {
    let mut d = draft(&["a.example"]);
    d.extended_key_usages = vec![ExtendedKeyUsage::ClientAuth];
    d.common_name = "x".repeat(65);
    assert!(problems(&d)[0].contains("65 characters; at most 64"));
}

#[test]
fn weak_rsa_keys_are_refused() {
    let mut d = draft(&["a.example"]);
    d.key_algorithm = KeyAlgorithm::Rsa;
    d.key_size = 1024;
    assert!(problems(&d)[0].contains("RSA key of 1024 bits; at least 2048"));
    d.key_size = 2047;
    assert!(problems(&d)[0].contains("at least 2048"));
    d.key_size = 2056;
    assert!(lint(&d).is_ok());
    d.key_size = 2052;
    assert!(problems(&d)[0].contains("not a multiple of 8"));
}

#[test]
fn time_stamping_must_stand_alone() {
    let mut d = draft(&["a.example"]);
    d.extended_key_usages = vec![
        ExtendedKeyUsage::TimeStamping,
        ExtendedKeyUsage::CodeSigning,
    ];
    assert!(problems(&d)[0].contains("timeStamping must be the only"));
}

#[test]
fn revocation_urls_must_be_http() {
    let mut d = draft(&["a.example"]);
    d.crl_url = Some("ldap://x/crl".into());
    d.ocsp_url = Some("http://ocsp example".into());
    let found = problems(&d);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with("CRL URL"));
    assert!(found[1].starts_with("OCSP URL"));
    d.crl_url = Some("http://pki.example/crl/iss_1".into());
    d.ocsp_url = Some("https://pki.example/ocsp".into());
    assert!(lint(&d).is_ok());
}

#[test]
fn classification_follows_the_api_rules() {
    assert_eq!(
        SubjectAltName::classify("10.0.0.1"),
        SubjectAltName::Ip("10.0.0.1".parse().expect("ip"))
    );
    assert_eq!(
        SubjectAltName::classify("2001:DB8::1").to_string(),
        "2001:db8::1"
    );
    assert_eq!(
        SubjectAltName::classify("X@Y.Example"),
        SubjectAltName::Email("X@y.example".into())
    );
    assert_eq!(
        SubjectAltName::classify("Host.Example"),
        dns("host.example")
    );
}
