use super::*;
use crate::mapping::compile::ColumnPlan;
use crate::mapping::convert::Converter;
use crate::mapping::keys;
use proptest::prelude::*;

fn pointer(p: &str) -> Pointer {
    Pointer::parse(p).unwrap()
}

fn index(pointers: &[&str]) -> Index {
    let mut index = Index::new(&[]);
    for p in pointers {
        index.add(&Source::Path(pointer(p)));
    }
    index
}

fn column(p: &str, strict: bool) -> ColumnPlan {
    ColumnPlan {
        name: p.into(),
        source: Source::Path(pointer(p)),
        required: false,
        not_null: false,
        non_empty: false,
        reason: None,
        strict,
        converter: Converter::Text { max_chars: None },
        shown_type: "text".into(),
        type_oid: 25,
    }
}

type Got = Result<Option<String>, Duplicate>;

fn owned(r: Result<Option<&RawValue>, Duplicate>) -> Got {
    r.map(|v| v.map(|v| v.get().to_owned()))
}

/// Everything a tree finds in `body`, beside what the event and [`keys`] find.
fn both(pointers: &[&str], body: &str, lax: bool) -> (Vec<String>, Vec<String>) {
    let index = index(pointers);
    let tree = Tree::read(&index, body, lax);
    let event = if lax {
        Event::parse_lax(body)
    } else {
        Event::parse(body)
    };
    let (tree, event) = match (tree, event) {
        (Ok(t), Ok(e)) => (t, e),
        (t, e) => {
            return (
                vec![format!("{:?}", t.err())],
                vec![format!("{:?}", e.err())],
            )
        }
    };
    let columns: Vec<ColumnPlan> = pointers.iter().map(|p| column(p, true)).collect();
    let tops: Vec<&str> = pointers
        .iter()
        .filter(|p| p.len() > 1 && !p[1..].contains('/'))
        .map(|p| &p[1..])
        .collect();
    let mut t = vec![
        format!("{:?}", tree.unknown_keys(&columns)),
        format!("{:?}", tree.first_repeat(&tops)),
        format!("{:?}", tree.check_keys(&tops)),
    ];
    let mut e = vec![
        format!("{:?}", keys::unknown_keys(&event, &columns)),
        format!("{:?}", keys::first_repeat(&event, &tops)),
        format!("{:?}", strict::check_keys(&event, &tops)),
    ];
    for p in pointers.iter().chain(&["/zz", "/a/zz/0"]) {
        t.push(format!("{p} {:?}", owned(tree.get(&pointer(p)))));
        e.push(format!("{p} {:?}", owned(event.get(&pointer(p)))));
    }
    (t, e)
}

#[test]
fn pointers_find_what_the_event_finds() {
    let body = r#"{"a":{"b/c":[1, {"~":19.990}], "n": null},"x":"\u00e9","d":[[0,1],{"0":2}]}"#;
    let pointers = [
        "",
        "/a/b~1c/1/~0",
        "/a/b~1c/0",
        "/a/b~1c/2",
        "/a/b~1c/01",
        "/a/b~1c/-",
        "/x",
        "/x/0",
        "/a/n",
        "/a/n/z",
        "/a",
        "/d/0/1",
        "/d/1/0",
        "/d/5",
    ];
    let (t, e) = both(&pointers, body, false);
    assert_eq!(t, e);
    let index = index(&pointers);
    let tree = Tree::read(&index, body, false).unwrap();
    assert_eq!(
        owned(tree.get(&pointer("/a/b~1c/1/~0"))),
        Ok(Some("19.990".into()))
    );
    assert_eq!(owned(tree.get(&pointer(""))), Ok(Some(body.into())));
}

#[test]
fn repeats_and_unreadable_keys_as_the_event_reads_them() {
    let pointers = ["/a/b", "/c", "/a", "/e/f", "/e/g"];
    for body in [
        r#"{"a":{"b":1,"b":2},"c":1,"c":2}"#,
        r#"{"a":{"b":1},"c":1,"\ud800":2}"#,
        r#"{"a":{"b":1},"e":{"f":1,"\udc00":2},"c":3}"#,
        r#"{"c":1e400,"a":"\ud800","c":2}"#,
        r#" {"a":{"b":[]}} "#,
        r#"[1]"#,
        r#"{"a":1} x"#,
        "1e400",
    ] {
        for lax in [false, true] {
            let (t, e) = both(&pointers, body, lax);
            assert_eq!(t, e, "{body}");
        }
    }
}

#[test]
fn too_deep_is_refused_unless_lax() {
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
    let index = index(&["/a/0"]);
    assert_eq!(
        Tree::read(&index, &deep, false).unwrap_err(),
        BodyError::TooDeep
    );
    assert!(Tree::read(&index, &deep, true).is_ok());
}

#[test]
fn debug_never_shows_values() {
    let index = index(&["/ip"]);
    let tree = Tree::read(&index, r#"{"ip":"10.1.2.3"}"#, false).unwrap();
    assert!(!format!("{tree:?}").contains("10.1.2.3"));
}

fn json() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        "1",
        "1e400",
        "-0.5",
        "\"x\"",
        "\"\\ud800\"",
        "null",
        "true",
        "[]",
        "{}",
    ])
    .prop_map(str::to_owned);
    let key = prop::sample::select(vec!["a", "b", "0", "1", "\\u0061", "\\ud800", "c"]);
    leaf.prop_recursive(4, 32, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key.clone(), inner), 0..5).prop_map(|kv| {
                let kv: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", kv.join(","))
            }),
        ]
    })
}

proptest! {
    /// Whatever the event and the pointers, the tree finds what the event and `keys` find.
    #[test]
    fn the_tree_finds_what_the_event_finds(
        body in prop_oneof![4 => json(), 1 => ".{0,24}"],
        pointers in prop::collection::vec("(/(a|b|c|0|1|00|-)){0,3}", 0..5),
        lax in any::<bool>(),
    ) {
        let pointers: Vec<&str> = pointers.iter().map(String::as_str).collect();
        let (t, e) = both(&pointers, &body, lax);
        prop_assert_eq!(t, e);
    }
}
