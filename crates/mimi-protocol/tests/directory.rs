//! The directory document (-06 §5.1).

use mimi_protocol::directory::{
    Directory, DirectoryError, Endpoint, NotOffered, TemplateError, UriTemplate,
};
use mimi_protocol::endpoints::{
    FederationEndpoint, GroupInfo, IdentifierQuery, KeyMaterial, Notify, ProxyDownload,
    ReportAbuse, RequestConsent, SubmitMessage, Update, UpdateConsent,
};
use mimi_protocol::uri::MimiUri;
use proptest::prelude::*;

/// The -06 §5.1 example with its missing `:` after `"proxyDownload"` restored
/// and otherwise verbatim (including `update{roomId}` and the user-keyed
/// consent templates).
const DRAFT_EXAMPLE: &str = r#"{
  "keyMaterial":
     "https://mimi.example.com/v1/keyMaterial/{targetUser}",
  "update": "https://mimi.example.com/v1/update{roomId}",
  "notify": "https://mimi.example.com/v1/notify/{roomId}",
  "submitMessage":
     "https://mimi.example.com/v1/submitMessage/{roomId}",
  "groupInfo":
     "https://mimi.example.com/v1/groupInfo/{roomId}",
  "requestConsent":
     "https://mimi.example.com/v1/requestConsent/{targetUser}",
  "updateConsent":
     "https://mimi.example.com/v1/updateConsent/{requesterUser}",
  "identifierQuery":
     "https://mimi.example.com/v1/identifierQuery/{domain}",
  "reportAbuse":
     "https://mimi.example.com/v1/reportAbuse/{roomId}",
  "proxyDownload":
     "https://mimi.example.com/v1/proxyDownload/{downloadUrl}"
}"#;

fn uri(s: &str) -> MimiUri {
    s.parse().unwrap()
}

#[test]
fn draft_example_verbatim_is_invalid_json() {
    let verbatim = DRAFT_EXAMPLE.replace("\"proxyDownload\":", "\"proxyDownload\"");
    assert!(matches!(
        Directory::from_json(&verbatim),
        Err(DirectoryError::Json(_))
    ));
}

#[test]
fn parse_draft_example_and_expand() {
    let d = Directory::from_json(DRAFT_EXAMPLE).unwrap();
    let bob = uri("mimi://b.example/u/bob");
    let room = uri("mimi://hub.example/r/clubhouse");
    assert_eq!(
        d.url::<KeyMaterial>(&bob).unwrap(),
        "https://mimi.example.com/v1/keyMaterial/mimi%3A%2F%2Fb.example%2Fu%2Fbob"
    );
    // The draft's template has no slash; a peer's template is used verbatim.
    assert_eq!(
        d.url::<Update>(&room).unwrap(),
        "https://mimi.example.com/v1/updatemimi%3A%2F%2Fhub.example%2Fr%2Fclubhouse"
    );
    for (url, path) in [
        (d.url::<Notify>(&room), "notify"),
        (d.url::<SubmitMessage>(&room), "submitMessage"),
        (d.url::<GroupInfo>(&room), "groupInfo"),
        (d.url::<ReportAbuse>(&room), "reportAbuse"),
    ] {
        assert_eq!(
            url.unwrap(),
            format!("https://mimi.example.com/v1/{path}/mimi%3A%2F%2Fhub.example%2Fr%2Fclubhouse")
        );
    }
    // User-keyed consent templates get the full user URI.
    assert_eq!(
        d.url::<RequestConsent>(&bob).unwrap(),
        "https://mimi.example.com/v1/requestConsent/mimi%3A%2F%2Fb.example%2Fu%2Fbob"
    );
    let alice = uri("mimi://a.example/u/alice");
    assert_eq!(
        d.url::<UpdateConsent>(&alice).unwrap(),
        "https://mimi.example.com/v1/updateConsent/mimi%3A%2F%2Fa.example%2Fu%2Falice"
    );
    assert_eq!(
        d.url::<IdentifierQuery>("c.example").unwrap(),
        "https://mimi.example.com/v1/identifierQuery/c.example"
    );
    assert_eq!(
        d.url::<ProxyDownload>("https://assets.c.example/x/y?sig=a b&e=é")
            .unwrap(),
        "https://mimi.example.com/v1/proxyDownload/https%3A%2F%2Fassets.c.example%2Fx%2Fy%3Fsig%3Da%20b%26e%3D%C3%A9"
    );
    assert_eq!(
        d.get(Endpoint::KeyMaterial)
            .unwrap()
            .variables()
            .collect::<Vec<_>>(),
        ["targetUser"]
    );
}

#[test]
fn for_base_url_canonical_paths() {
    let d = Directory::for_base_url("https://b.example:8443", Endpoint::ALL).unwrap();
    for e in Endpoint::ALL {
        assert_eq!(
            d.get(e).unwrap().as_str(),
            format!("https://b.example:8443{}", e.canonical_path()),
            "{e}"
        );
    }
    assert_eq!(
        d.get(Endpoint::Update).unwrap().as_str(),
        "https://b.example:8443/v1/update/{roomId}"
    );
    assert_eq!(
        d.get(Endpoint::RequestConsent).unwrap().as_str(),
        "https://b.example:8443/v1/requestConsent/{targetDomain}"
    );
    assert_eq!(
        d.get(Endpoint::UpdateConsent).unwrap().as_str(),
        "https://b.example:8443/v1/updateConsent/{requesterDomain}"
    );
    // Domain-keyed consent templates get the user's domain.
    let bob = uri("mimi://b.example/u/bob");
    assert_eq!(
        d.url::<RequestConsent>(&bob).unwrap(),
        "https://b.example:8443/v1/requestConsent/b.example"
    );
    assert_eq!(
        d.url::<UpdateConsent>(&uri("mimi://a.example/u/alice"))
            .unwrap(),
        "https://b.example:8443/v1/updateConsent/a.example"
    );
    assert_eq!(
        d.url::<Update>(&uri("mimi://b.example/r/r1")).unwrap(),
        "https://b.example:8443/v1/update/mimi%3A%2F%2Fb.example%2Fr%2Fr1"
    );
    // JSON round trip with the draft's keys.
    let json = d.to_json();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for e in Endpoint::ALL {
        assert!(v.get(e.key()).is_some(), "{e}");
    }
    // Keys in the draft's order.
    let positions: Vec<usize> = Endpoint::ALL
        .iter()
        .map(|e| json.find(&format!("\"{}\":", e.key())).unwrap())
        .collect();
    assert!(positions.is_sorted(), "{json}");
    assert_eq!(Directory::from_json(&json).unwrap(), d);
    let via_serde: Directory = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
    assert_eq!(via_serde, d);
    // A path prefix and a trailing slash are fine.
    let d = Directory::for_base_url("https://mimi.example.com/api/", [Endpoint::Notify]).unwrap();
    assert_eq!(
        d.get(Endpoint::Notify).unwrap().as_str(),
        "https://mimi.example.com/api/v1/notify/{roomId}"
    );
    // Not https, or with a query: rejected.
    assert!(matches!(
        Directory::for_base_url("http://b.example", Endpoint::ALL),
        Err(DirectoryError::BaseUrl(TemplateError::NotHttps))
    ));
    assert!(matches!(
        Directory::for_base_url("https://b.example/?x=1", Endpoint::ALL),
        Err(DirectoryError::BaseUrl(TemplateError::BaseUrlNotPlain))
    ));
    assert!(Directory::for_base_url("https://b.example:99999", []).is_err());
    assert!(Directory::for_base_url("https://[::1]:8443", Endpoint::ALL).is_ok());
    assert!(Directory::for_base_url("https://127.0.0.1:8443", Endpoint::ALL).is_ok());
}

#[test]
fn missing_keys_are_not_offered() {
    let mut v: serde_json::Value = serde_json::from_str(DRAFT_EXAMPLE).unwrap();
    // Every key is optional: a missing endpoint is reported when used.
    for e in Endpoint::ALL {
        let mut w = v.clone();
        w.as_object_mut().unwrap().remove(e.key());
        let d = Directory::from_json(&w.to_string()).unwrap();
        assert_eq!(d.get(e), None, "{e}");
        assert_eq!(d.template(e), Err(NotOffered::Missing(e)));
        assert_eq!(d.endpoints().count(), Endpoint::ALL.len() - 1);
    }
    // Unknown keys are ignored.
    v.as_object_mut()
        .unwrap()
        .insert("meta".into(), serde_json::json!({"x": 1}));
    assert!(Directory::from_json(&v.to_string()).is_ok());
    // A value of the wrong type makes that endpoint alone unusable; not
    // an object at all is a broken document.
    v["notify"] = serde_json::json!(5);
    let d = Directory::from_json(&v.to_string()).unwrap();
    assert_eq!(
        d.template(Endpoint::Notify),
        Err(NotOffered::Unusable(
            Endpoint::Notify,
            DirectoryError::NotAString(Endpoint::Notify)
        ))
    );
    assert!(d.template(Endpoint::KeyMaterial).is_ok());
    assert!(matches!(
        Directory::from_json("[]"),
        Err(DirectoryError::Json(_))
    ));
}

/// A provider that offers only some endpoints, e.g. a follower-only
/// provider without a hub and without asset proxying.
#[test]
fn partial_directory() {
    let json = r#"{
      "keyMaterial": "https://b.example/mimi/km/{targetUser}",
      "notify": "https://b.example/mimi/notify/{roomId}",
      "requestConsent": "https://b.example/mimi/rc/{targetDomain}"
    }"#;
    let d = Directory::from_json(json).unwrap();
    assert_eq!(
        d.endpoints().collect::<Vec<_>>(),
        [
            Endpoint::KeyMaterial,
            Endpoint::Notify,
            Endpoint::RequestConsent
        ]
    );
    let bob = uri("mimi://b.example/u/bob");
    let room = uri("mimi://a.example/r/r1");
    assert_eq!(
        d.url::<KeyMaterial>(&bob).unwrap(),
        "https://b.example/mimi/km/mimi%3A%2F%2Fb.example%2Fu%2Fbob"
    );
    assert_eq!(
        d.url::<Notify>(&room).unwrap(),
        "https://b.example/mimi/notify/mimi%3A%2F%2Fa.example%2Fr%2Fr1"
    );
    assert_eq!(
        d.url::<RequestConsent>(&bob).unwrap(),
        "https://b.example/mimi/rc/b.example"
    );
    let err = d.url::<Update>(&room).unwrap_err();
    assert_eq!(err, NotOffered::Missing(Endpoint::Update));
    assert_eq!(err.to_string(), "peer does not offer `update`");
    assert_eq!(
        d.url::<ProxyDownload>("https://x.example/a").unwrap_err(),
        NotOffered::Missing(Endpoint::ProxyDownload)
    );
    // The document round-trips with only its keys, in the draft's order.
    let out: serde_json::Value = serde_json::from_str(&d.to_json()).unwrap();
    assert_eq!(out.as_object().unwrap().len(), 3);
    assert_eq!(Directory::from_json(&d.to_json()).unwrap(), d);
    assert_eq!(Directory::from_json("{}").unwrap().endpoints().count(), 0);
}

/// The table: every endpoint's key, method and template variables.
#[test]
fn endpoint_table() {
    for e in Endpoint::ALL {
        assert_eq!(Endpoint::from_key(e.key()), Some(e));
        let t = UriTemplate::parse(
            &format!("https://h.example{}", e.canonical_path()),
            e.allowed_vars(),
        )
        .unwrap();
        // Our path uses the first variable of the entry.
        assert_eq!(
            t.variables().collect::<Vec<_>>(),
            [e.allowed_vars()[0]],
            "{e}"
        );
        let method = if e == Endpoint::ProxyDownload {
            "GET"
        } else {
            "POST"
        };
        assert_eq!(e.method().as_str(), method, "{e}");
    }
    assert_eq!(Endpoint::from_key("nope"), None);
    assert_eq!(<KeyMaterial as FederationEndpoint>::KEY, "keyMaterial");
    assert_eq!(Notify::ENDPOINT, Endpoint::Notify);
    let bob = uri("mimi://b.example/u/bob");
    assert_eq!(
        UpdateConsent::bind(&bob),
        [
            ("requesterDomain", "b.example"),
            ("requesterUser", "mimi://b.example/u/bob")
        ]
    );
}

#[test]
fn bad_templates_rejected() {
    let base: serde_json::Value = serde_json::from_str(DRAFT_EXAMPLE).unwrap();
    let cases: &[(&str, &str, TemplateError)] = &[
        ("notify", "http://mimi.example.com/v1/notify/{roomId}", TemplateError::NotHttps),
        ("notify", "ftp://x/{roomId}", TemplateError::NotHttps),
        ("notify", "/v1/notify/{roomId}", TemplateError::NotHttps),
        ("notify", "https:///v1/notify/{roomId}", TemplateError::MissingHost),
        ("notify", "https://u@mimi.example.com/{roomId}", TemplateError::Userinfo),
        ("notify", "https://mimi.example.com:x/{roomId}", TemplateError::InvalidPort),
        ("notify", "https://{roomId}.example.com/", TemplateError::ExpressionOutsidePath),
        ("notify", "https://mimi.example.com/{roomId}#f", TemplateError::Fragment),
        ("notify", "https://mimi.example.com/{roomId", TemplateError::UnbalancedBraces),
        ("notify", "https://mimi.example.com/roomId}", TemplateError::UnbalancedBraces),
        ("notify", "https://mimi.example.com/{+roomId}", TemplateError::UnsupportedExpression("+roomId".into())),
        ("notify", "https://mimi.example.com/{roomId,x}", TemplateError::UnsupportedExpression("roomId,x".into())),
        ("notify", "https://mimi.example.com/{targetUser}", TemplateError::UnknownVariable("targetUser".into())),
        ("keyMaterial", "https://mimi.example.com/{roomId}", TemplateError::UnknownVariable("roomId".into())),
        ("notify", "https://mimi.example.com/a b/{roomId}", TemplateError::InvalidChar(' ')),
        ("notify", "https://bad_host.example/{roomId}", TemplateError::InvalidHost("bad_host.example: character '_' not allowed in a host name (use A-labels for IDNs)".into())),
    ];
    for (key, template, want) in cases {
        let mut v = base.clone();
        v[*key] = serde_json::json!(template);
        // Only the endpoint with the bad template is unusable, with the
        // reason; the others still serve.
        let d = Directory::from_json(&v.to_string()).unwrap();
        let bad = Endpoint::from_key(key).unwrap();
        match d.template(bad) {
            Err(NotOffered::Unusable(e, DirectoryError::Template { endpoint, error })) => {
                assert_eq!((e, endpoint), (bad, bad));
                assert_eq!(&error, want, "{template}");
            }
            other => panic!("{template}: {other:?}"),
        }
        assert_eq!(d.unusable().count(), 1, "{template}");
        assert_eq!(d.endpoints().count(), Endpoint::ALL.len() - 1, "{template}");
    }
    assert_eq!(
        UriTemplate::parse("https://h.example/a%2/{roomId}", &["roomId"]),
        Err(TemplateError::BadPercentEncoding)
    );
    assert!(UriTemplate::parse("https://h.example/a%2F/{roomId}", &["roomId"]).is_ok());
    // Both consent spellings are accepted; other endpoints' variables are not.
    let mut v = base.clone();
    v["requestConsent"] = serde_json::json!("https://x.example/rc/{targetDomain}/{targetUser}");
    v["updateConsent"] = serde_json::json!("https://x.example/uc/{requesterDomain}");
    let d = Directory::from_json(&v.to_string()).unwrap();
    assert_eq!(
        d.url::<RequestConsent>(&uri("mimi://b.example/u/bob"))
            .unwrap(),
        "https://x.example/rc/b.example/mimi%3A%2F%2Fb.example%2Fu%2Fbob"
    );
    v["updateConsent"] = serde_json::json!("https://x.example/uc/{targetDomain}");
    let d = Directory::from_json(&v.to_string()).unwrap();
    assert!(matches!(
        d.url::<UpdateConsent>(&uri("mimi://b.example/u/bob")),
        Err(NotOffered::Unusable(Endpoint::UpdateConsent, _))
    ));
}

#[test]
fn template_expansion_rules() {
    let t = UriTemplate::parse("https://h.example/a/{x}/b?q={y}", &["x", "y"]).unwrap();
    assert_eq!(
        t.expand(&[("x", "A-z0._~"), ("y", "%/:?#[]@!$&'()*+,;= ")]),
        "https://h.example/a/A-z0._~/b?q=%25%2F%3A%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%20"
    );
    // Undefined variables expand to nothing (RFC 6570 §3.2.1).
    assert_eq!(t.expand(&[]), "https://h.example/a//b?q=");
    assert_eq!(t.to_string(), "https://h.example/a/{x}/b?q={y}");
}

proptest! {
    /// Expanding `{x}` with any value yields only unreserved characters and
    /// `%XX` escapes in its place, and percent-decoding gives the value back.
    #[test]
    fn expansion_is_reversible(value in any::<String>()) {
        let t = UriTemplate::parse("https://h.example/p/{x}", &["x"]).unwrap();
        let out = t.expand(&[("x", &value)]);
        let enc = out.strip_prefix("https://h.example/p/").unwrap();
        prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        let mut bytes = Vec::new();
        let e = enc.as_bytes();
        let mut i = 0;
        while i < e.len() {
            if e[i] == b'%' {
                bytes.push(u8::from_str_radix(std::str::from_utf8(&e[i + 1..i + 3]).unwrap(), 16).unwrap());
                i += 3;
            } else {
                bytes.push(e[i]);
                i += 1;
            }
        }
        prop_assert_eq!(String::from_utf8(bytes).unwrap(), value);
    }

    /// Template parsing never panics.
    #[test]
    fn template_parse_total(s in "(https|http)://[a-z0-9.:\\[\\]@{}-]{0,15}(/[a-zA-Z{}%?#=+,]{0,15}){0,3}") {
        let _ = UriTemplate::parse(&s, &["roomId"]);
        let _ = Directory::for_base_url(&s, Endpoint::ALL);
    }
}
