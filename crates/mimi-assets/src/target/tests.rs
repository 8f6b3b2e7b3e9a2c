use proptest::prelude::*;

use super::*;

fn targets() -> DownloadTargets {
    DownloadTargets::new(["files.a.example", "Assets.B.Example.", "dl.c.example:8443"])
        .expect("valid hosts")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

#[test]
fn allowed_urls_pass_and_come_back_normalized() {
    let t = targets();
    let u = t
        .check("https://files.a.example/assets/8ksB4bSrrRE.mp4?sig=x")
        .expect("allowed");
    assert_eq!(
        u.as_str(),
        "https://files.a.example/assets/8ksB4bSrrRE.mp4?sig=x"
    );
    let u = t
        .check("https://FILES.A.EXAMPLE./x")
        .expect("case and trailing dot");
    assert_eq!(u.as_str(), "https://files.a.example/x");
    assert_eq!(u.host_str(), Some("files.a.example"));
    let u = t
        .check("https://files.a.example:443/x")
        .expect("explicit default port");
    assert_eq!(u.as_str(), "https://files.a.example/x");
    assert!(t.check("https://assets.b.example/y").is_ok());
    assert!(t.check("https://dl.c.example:8443/z").is_ok());
}

#[test]
fn config_entries_are_normalized_and_listed() {
    let t = targets();
    let hosts: Vec<_> = t.hosts().collect();
    assert_eq!(
        hosts,
        [
            ("assets.b.example", 443),
            ("dl.c.example", 8443),
            ("files.a.example", 443)
        ]
    );
    assert!(!t.is_empty());
    assert!(DownloadTargets::default().is_empty());
    let two_ports = DownloadTargets::new(["x.example", "x.example:8443"]).expect("valid");
    assert!(two_ports.check("https://x.example/").is_ok());
    assert!(two_ports.check("https://x.example:8443/").is_ok());
}

#[test]
fn bad_config_entries_are_refused() {
    let e = |s: &str| DownloadTargets::new([s]).expect_err(s);
    assert_eq!(e(""), TargetConfigError::Empty);
    assert_eq!(e("  "), TargetConfigError::Empty);
    for bad_port in [
        "x.example:",
        "x.example:0",
        "x.example:65536",
        "x.example:+443",
        "x.example:https",
    ] {
        assert!(
            matches!(e(bad_port), TargetConfigError::BadPort { .. }),
            "{bad_port}"
        );
    }
    for literal in [
        "127.0.0.1",
        "[::1]",
        "::1",
        "[::1]:443",
        "10.0.0.1:8443",
        "0x7f.1",
        "2130706433",
        "127.1",
    ] {
        assert!(
            matches!(e(literal), TargetConfigError::IpLiteral { .. }),
            "{literal}"
        );
    }
    for name in [
        "files_a.example",
        "-a.example",
        "a-.example",
        "a..example",
        "https://a.example",
        "a.example/x",
        "user@a.example",
        "bücher.example",
        ".",
    ] {
        assert!(
            matches!(e(name), TargetConfigError::NotADnsName { .. }),
            "{name}"
        );
    }
    assert!(DownloadTargets::new(["xn--bcher-kva.example"]).is_ok());
}

#[test]
fn unparsable_urls_are_refused() {
    let t = targets();
    for bad in [
        "",
        "files.a.example/x",
        "https://",
        "https://files.a.example:99999/",
        "https://1.2.3.4.5/",
    ] {
        assert!(
            matches!(t.check(bad), Err(TargetRefusal::Unparsable(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn other_schemes_are_refused() {
    let t = targets();
    for (url, scheme) in [
        ("http://files.a.example/x", "http"),
        ("HTTP://files.a.example/x", "http"),
        ("ftp://files.a.example/x", "ftp"),
        ("file:///etc/passwd", "file"),
        ("gopher://files.a.example/", "gopher"),
        ("mimi://a.example/u/alice", "mimi"),
    ] {
        assert_eq!(
            t.check(url),
            Err(TargetRefusal::NotHttps {
                scheme: scheme.into()
            }),
            "{url}"
        );
    }
}

#[test]
fn userinfo_is_refused() {
    let t = targets();
    for url in [
        "https://user@files.a.example/x",
        "https://user:pw@files.a.example/x",
        "https://:pw@files.a.example/x",
        "https://evil.example@files.a.example/x",
    ] {
        assert_eq!(t.check(url), Err(TargetRefusal::UserInfo), "{url}");
    }
}

#[test]
fn fragments_are_refused() {
    let t = targets();
    assert_eq!(
        t.check("https://files.a.example/x#frag"),
        Err(TargetRefusal::Fragment)
    );
    assert_eq!(
        t.check("https://files.a.example/x#"),
        Err(TargetRefusal::Fragment)
    );
}

#[test]
fn ip_literals_in_every_spelling_are_refused() {
    let t = targets();
    for (url, host) in [
        ("https://127.0.0.1/x", "127.0.0.1"),
        ("https://127.0.0.1./x", "127.0.0.1"),
        ("https://2130706433/x", "127.0.0.1"),
        ("https://0x7f000001/x", "127.0.0.1"),
        ("https://0x7f.1/x", "127.0.0.1"),
        ("https://0177.0.0.1/x", "127.0.0.1"),
        ("https://127.1/x", "127.0.0.1"),
        ("https://%31%32%37.0.0.1/x", "127.0.0.1"),
        (
            "https://169.254.169.254/latest/meta-data",
            "169.254.169.254",
        ),
        ("https://8.8.8.8/x", "8.8.8.8"),
        ("https://[::1]/x", "::1"),
        ("https://[::ffff:127.0.0.1]/x", "::ffff:127.0.0.1"),
        ("https://[2001:db8::1]:443/x", "2001:db8::1"),
    ] {
        assert_eq!(
            t.check(url),
            Err(TargetRefusal::IpLiteral { host: host.into() }),
            "{url}"
        );
    }
}

#[test]
fn hosts_outside_the_set_are_refused() {
    let t = targets();
    for (url, host) in [
        ("https://evil.example/x", "evil.example"),
        ("https://sub.files.a.example/x", "sub.files.a.example"),
        (
            "https://files.a.example.evil.example/x",
            "files.a.example.evil.example",
        ),
        ("https://a.example/x", "a.example"),
        ("https://localhost/x", "localhost"),
        ("https://files.a.example../x", "files.a.example."),
    ] {
        assert_eq!(
            t.check(url),
            Err(TargetRefusal::HostNotAllowed { host: host.into() }),
            "{url}"
        );
    }
    assert!(matches!(
        DownloadTargets::default().check("https://files.a.example/"),
        Err(TargetRefusal::HostNotAllowed { .. })
    ));
}

#[test]
fn other_ports_are_refused() {
    let t = targets();
    assert_eq!(
        t.check("https://files.a.example:8443/x"),
        Err(TargetRefusal::PortNotAllowed {
            host: "files.a.example".into(),
            port: 8443
        })
    );
    assert_eq!(
        t.check("https://dl.c.example/x"),
        Err(TargetRefusal::PortNotAllowed {
            host: "dl.c.example".into(),
            port: 443
        })
    );
    assert_eq!(
        t.check("https://files.a.example:22/x"),
        Err(TargetRefusal::PortNotAllowed {
            host: "files.a.example".into(),
            port: 22
        })
    );
}

#[test]
fn redirects_stay_on_the_origin() {
    let t = targets();
    let from = t
        .check("https://files.a.example/assets/a")
        .expect("allowed");
    let same = t
        .check_redirect(&from, "/assets/b?sig=1")
        .expect("relative");
    assert_eq!(same.as_str(), "https://files.a.example/assets/b?sig=1");
    assert!(t.check_redirect(&from, "b").is_ok());
    assert!(
        t.check_redirect(&from, "https://FILES.a.example./c")
            .is_ok()
    );
}

#[test]
fn redirects_to_another_host_are_refused_even_if_allowed() {
    let t = targets();
    let from = t.check("https://files.a.example/a").expect("allowed");
    assert_eq!(
        t.check_redirect(&from, "https://assets.b.example/a"),
        Err(TargetRefusal::RedirectToOtherHost {
            from: "files.a.example".into(),
            to: "assets.b.example".into()
        })
    );
    assert_eq!(
        t.check_redirect(&from, "//evil.example/a"),
        Err(TargetRefusal::HostNotAllowed {
            host: "evil.example".into()
        })
    );
}

#[test]
fn redirects_to_another_port_scheme_or_address_are_refused() {
    let t = DownloadTargets::new(["files.a.example", "files.a.example:8443"]).expect("valid");
    let from = t.check("https://files.a.example/a").expect("allowed");
    assert_eq!(
        t.check_redirect(&from, "https://files.a.example:8443/a"),
        Err(TargetRefusal::RedirectToOtherPort {
            from: 443,
            to: 8443
        })
    );
    assert_eq!(
        t.check_redirect(&from, "http://files.a.example/a"),
        Err(TargetRefusal::NotHttps {
            scheme: "http".into()
        })
    );
    assert_eq!(
        t.check_redirect(&from, "https://127.0.0.1/a"),
        Err(TargetRefusal::IpLiteral {
            host: "127.0.0.1".into()
        })
    );
    assert_eq!(
        t.check_redirect(&from, "https://u:p@files.a.example/a"),
        Err(TargetRefusal::UserInfo)
    );
    assert!(matches!(
        t.check_redirect(&from, "https://[::1"),
        Err(TargetRefusal::Unparsable(_))
    ));
}

#[test]
fn public_addresses_pass() {
    for a in [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "2a00:1450::1",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ] {
        assert_eq!(address_range(ip(a)), None, "{a}");
        assert_eq!(check_address(ip(a), false), Ok(()), "{a}");
    }
}

#[test]
fn every_special_range_is_classified() {
    use AddressRange as R;
    for (a, range) in [
        ("0.0.0.0", R::Unspecified),
        ("::", R::Unspecified),
        ("0.1.2.3", R::ThisNetwork),
        ("127.0.0.1", R::Loopback),
        ("127.255.0.9", R::Loopback),
        ("::1", R::Loopback),
        ("10.1.2.3", R::Private),
        ("172.16.0.1", R::Private),
        ("172.31.255.255", R::Private),
        ("192.168.1.1", R::Private),
        ("64:ff9b:1::a00:1", R::Private),
        ("169.254.169.254", R::LinkLocal),
        ("fe80::1", R::LinkLocal),
        ("febf::1", R::LinkLocal),
        ("100.64.0.1", R::SharedAddressSpace),
        ("100.127.255.255", R::SharedAddressSpace),
        ("192.0.2.1", R::Documentation),
        ("198.51.100.7", R::Documentation),
        ("203.0.113.9", R::Documentation),
        ("2001:db8::1", R::Documentation),
        ("3fff::1", R::Documentation),
        ("198.18.0.1", R::Benchmarking),
        ("198.19.255.255", R::Benchmarking),
        ("2001:2::1", R::Benchmarking),
        ("fc00::1", R::UniqueLocal),
        ("fd12:3456::1", R::UniqueLocal),
        ("fec0::1", R::SiteLocal),
        ("224.0.0.1", R::Multicast),
        ("239.255.255.250", R::Multicast),
        ("ff02::1", R::Multicast),
        ("255.255.255.255", R::Broadcast),
        ("240.0.0.1", R::Reserved),
        ("192.0.0.8", R::Reserved),
        ("192.88.99.1", R::Reserved),
        ("100::1", R::Reserved),
        ("2001::1", R::Reserved),
        ("::2", R::Reserved),
        ("::127.0.0.1", R::Reserved),
        ("4000::1", R::Reserved),
        ("fbff::1", R::Reserved),
        // IPv6 forms that lead to an IPv4 address are judged by it.
        ("::ffff:127.0.0.1", R::Loopback),
        ("::ffff:10.0.0.1", R::Private),
        ("::ffff:169.254.169.254", R::LinkLocal),
        ("::ffff:100.64.0.1", R::SharedAddressSpace),
        ("::ffff:0.0.0.0", R::Unspecified),
        ("::ffff:224.0.0.1", R::Multicast),
        ("64:ff9b::7f00:1", R::Loopback),
        ("2002:7f00:1::1", R::Loopback),
        ("2002:c0a8:101::1", R::Private),
    ] {
        assert_eq!(address_range(ip(a)), Some(range), "{a}");
    }
    for near_miss in [
        "172.15.255.255",
        "172.32.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "169.253.255.255",
        "11.0.0.0",
        "223.255.255.255",
        "2001:db9::1",
        "3fff:1000::1",
        "2001:3::1",
    ] {
        assert_eq!(address_range(ip(near_miss)), None, "{near_miss}");
    }
}

#[test]
fn non_public_addresses_are_refused_unless_private_is_allowed() {
    for a in [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.0.1",
        "169.254.0.1",
        "100.64.0.1",
        "192.0.2.1",
        "198.18.0.1",
        "fd00::1",
        "fe80::1",
        "fec0::1",
        "::1",
        "::ffff:192.168.0.1",
    ] {
        let addr = ip(a);
        assert!(
            matches!(check_address(addr, false), Err(TargetRefusal::NonPublicAddress { addr: got, .. }) if got == addr),
            "{a}"
        );
        assert_eq!(check_address(addr, true), Ok(()), "{a} with allow_private");
    }
}

#[test]
fn unusable_addresses_are_refused_even_when_private_is_allowed() {
    for a in [
        "0.0.0.0",
        "0.1.2.3",
        "::",
        "224.0.0.1",
        "ff02::1",
        "255.255.255.255",
        "240.0.0.1",
        "100::1",
        "::ffff:0.0.0.0",
    ] {
        for allow_private in [false, true] {
            assert!(
                matches!(
                    check_address(ip(a), allow_private),
                    Err(TargetRefusal::UnusableAddress { .. })
                ),
                "{a} {allow_private}"
            );
        }
    }
}

#[test]
fn refusals_read_as_sentences() {
    let r = check_address(ip("127.0.0.1"), false).expect_err("loopback");
    assert_eq!(
        r.to_string(),
        "the asset host resolved to 127.0.0.1, a loopback address"
    );
    let r = targets()
        .check("https://evil.example/")
        .expect_err("not allowed");
    assert_eq!(
        r.to_string(),
        "evil.example is not an asset host of a peer provider (-06 §5.10.2)"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever string comes in, `check` returns without panicking, and
    /// anything accepted is https on an allowed host and port.
    #[test]
    fn prop_accepted_urls_are_allowed(s in "\\PC{0,60}", prefix in prop::sample::select(vec!["", "https://", "https://files.a.example", "https://files.a.example:"])) {
        let t = targets();
        if let Ok(u) = t.check(&format!("{prefix}{s}")) {
            prop_assert_eq!(u.scheme(), "https");
            let host = u.host_str().unwrap_or_default().to_owned();
            let port = u.port_or_known_default().unwrap_or_default();
            prop_assert!(t.hosts().any(|(h, p)| h == host && p == port), "{}", u);
            prop_assert!(u.username().is_empty() && u.password().is_none() && u.fragment().is_none());
        }
    }

    #[test]
    fn prop_v4_mapped_is_judged_like_v4(a in any::<u32>()) {
        let v4 = Ipv4Addr::from(a);
        prop_assert_eq!(address_range(IpAddr::V6(v4.to_ipv6_mapped())), address_range(IpAddr::V4(v4)));
    }

    #[test]
    fn prop_check_address_never_panics(a in any::<u128>(), allow in any::<bool>()) {
        let _ = check_address(IpAddr::V6(Ipv6Addr::from(a)), allow);
    }
}
