use super::*;

/// The contract's example.
const ORDERS: &str = r#"[[route]]
name = "order"
table = "shop.orders"
when = { meta = "envelope:detail-type", equals = "OrderPlaced" }
subject = "customer_email"
key = ["order_id"]
on_conflict = "ignore"

[route.columns]
order_id       = { path = "/order/id", required = true }
amount         = { path = "/order/amount" }
placed_at      = { meta = "envelope:time" }
customer_email = { path = "/customer/email", token = "email" }
client_ip      = { path = "/ip", as = "ip", token = "ip" }
items          = { path = "/order/items" }
received_at    = { meta = "sent_timestamp" }

[[route]]
name = "heartbeat"
when = { meta = "envelope:detail-type", equals = "Heartbeat" }
skip = true
"#;

fn error(text: &str) -> String {
    Mapping::parse("orders.toml", text).unwrap_err().to_string()
}

#[test]
fn the_contract_example_reads() {
    let m = Mapping::parse("orders.toml", ORDERS).unwrap();
    assert_eq!(m.rejects_table, DEFAULT_REJECTS_TABLE);
    assert_eq!(m.routes.len(), 2);
    let Target::Table(t) = &m.routes[0].target else {
        panic!("order loads a table")
    };
    assert_eq!(m.routes[0].at, "orders.toml:2:8");
    assert_eq!(t.table, "shop.orders");
    let names: Vec<_> = t.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "order_id",
            "amount",
            "placed_at",
            "customer_email",
            "client_ip",
            "items",
            "received_at"
        ]
    );
    assert_eq!(t.columns[0].at, "orders.toml:10:1");
    assert!(t.columns[0].required && !t.columns[1].required);
    assert_eq!(t.columns[4].as_, Some(As::Ip));
    assert_eq!(t.columns[4].token.as_deref(), Some("ip"));
    let key = t.key.as_ref().unwrap();
    assert_eq!(
        (key.columns.as_slice(), key.on_conflict),
        (&["order_id".to_string()][..], OnConflict::Ignore)
    );
    assert!(matches!(m.routes[1].target, Target::Skip));
}

#[test]
fn unknown_keys_name_file_line_route_and_key() {
    let e = error("[[route]]\nname = \"order\"\ntabel = \"t\"\n");
    assert!(
        e.starts_with(
            "orders.toml:3:1: route \"order\": unknown key \"tabel\" (expected one of name, table"
        ),
        "{e}"
    );
    let e = error("[[route]]\nname = \"order\"\ntable = \"t\"\n[route.columns]\na = { path = \"/a\", requird = true }\n");
    assert!(
        e.starts_with("orders.toml:5:")
            && e.contains("route \"order\"")
            && e.contains("\"requird\""),
        "{e}"
    );
    let e = error("rejects = \"x\"\n");
    assert!(
        e.starts_with("orders.toml:1:1: unknown key \"rejects\""),
        "{e}"
    );
}

#[test]
fn each_rule_is_checked_where_it_is_broken() {
    let base =
        |cols: &str| format!("[[route]]\nname = \"r\"\ntable = \"t\"\n[route.columns]\n{cols}\n");
    let cases = [
        (base("a = { path = \"a/b\" }"), "orders.toml:5:14: ", "JSON Pointer"),
        (base("a = { path = \"/a~2\" }"), "orders.toml:5:14: ", "~"),
        (base("a = { meta = \"time\" }"), "orders.toml:5:14: ", "not a meta"),
        (base("a = { meta = \"message_id\", path = \"/a\" }"), "orders.toml:5:", "not both"),
        (base("a = { required = true }"), "orders.toml:5:", "give `path`"),
        (base("a = { path = \"/a\", as = \"epoch\" }"), "orders.toml:5:", "use ip, epoch_s"),
        (base("a = { path = \"/a\", token = \"body\" }"), "orders.toml:5:", "not \"body\""),
        ("[[route]]\nname = \"Order\"\nskip = true\n".into(), "orders.toml:2:8: ", "[a-z0-9_]"),
        ("[[route]]\nname = \"r\"\nskip = true\ntable = \"t\"\n".into(), "orders.toml:4:", "remove `table`"),
        ("[[route]]\nname = \"r\"\ntable = \"t\"\n".into(), "orders.toml:1:1: ", "no [route.columns]"),
        (format!("on_conflict = \"x\"\n{}", base("a = { path = \"/a\" }")), "orders.toml:1:1", "unknown key"),
        ("[[route]]\nname = \"r\"\ntable = \"t\"\non_conflict = \"ignore\"\n[route.columns]\na = { path = \"/a\" }\n".into(), "orders.toml:4:", "`on_conflict` needs `key`"),
        ("[[route]]\nname = \"r\"\ntable = \"t\"\nkey = [\"b\"]\non_conflict = \"ignore\"\n[route.columns]\na = { path = \"/a\" }\n".into(), "orders.toml:4:", "\"b\" is not a column"),
        ("[[route]]\nname = \"r\"\ntable = \"t\"\nsubject = \"b\"\n[route.columns]\na = { path = \"/a\" }\n".into(), "orders.toml:4:", "subject \"b\""),
        ("[[route]]\nname = \"r\"\nwhen = { path = \"/a\" }\nskip = true\n".into(), "orders.toml:3:", "exactly one of"),
        ("[[route]]\nname = \"r\"\nwhen = { path = \"/a\", equals = [1] }\nskip = true\n".into(), "orders.toml:3:", "a string, a number"),
        ("[[route]]\nname = \"r\"\nskip = true\n[[route]]\nname = \"r\"\nskip = true\n".into(), "orders.toml:5:8: ", "unique"),
        ("[[route]]\nname = \"a\"\nskip = true\n[[route]]\nname = \"b\"\nskip = true\n".into(), "orders.toml:5:8: ", "can never be reached"),
        ("".into(), "orders.toml:1:1: ", "no [[route]]"),
    ];
    for (text, at, words) in cases {
        let e = error(&text);
        assert!(e.starts_with(at) && e.contains(words), "{text}\n→ {e}");
    }
}

#[test]
fn the_login_extensions_read_and_are_checked() {
    let text = "[[route]]\nname = \"r\"\ntable = \"t\"\n[route.columns]\na = { path = \"/a\", non_empty = true, strict = true, reason = \"ip\" }\nb = { meta = \"message_time\" }\nc = { path = \"/c\" }\n";
    let m = Mapping::parse("orders.toml", text).unwrap();
    let Target::Table(t) = &m.routes[0].target else {
        panic!("a table route")
    };
    let [a, b, c] = t.columns.as_slice() else {
        panic!("three columns")
    };
    assert!(a.non_empty && a.strict && a.reason.as_deref() == Some("ip"));
    assert!(!c.non_empty && !c.strict && c.reason.is_none());
    assert_eq!(
        b.source,
        crate::mapping::Source::Meta(crate::mapping::Meta::MessageTime)
    );
    let e = error(&text.replace("reason = \"ip\"", "reason = \"IP address\""));
    assert!(
        e.starts_with("orders.toml:5:")
            && e.contains("column \"a\": reason \"IP address\" must be 1-63"),
        "{e}"
    );
    let e = error(&text.replace("strict = true", "strict = 1"));
    assert!(
        e.starts_with("orders.toml:5:") && e.contains("route \"r\""),
        "{e}"
    );
}

#[test]
fn token_contexts_are_listed_once_in_file_order() {
    let m = Mapping::parse("orders.toml", ORDERS).unwrap();
    assert_eq!(m.token_contexts(), ["email", "ip"]);
    let twice = ORDERS.replace(
        "items          = { path = \"/order/items\" }",
        "items          = { path = \"/order/items\", token = \"email\" }\nphone = { path = \"/p\", token = \"phone\" }",
    );
    let m = Mapping::parse("orders.toml", &twice).unwrap();
    assert_eq!(m.token_contexts(), ["email", "ip", "phone"]);
    assert_eq!(
        super::super::login::mapping().unwrap().token_contexts(),
        ["ip", "device_id"]
    );
}
