use super::*;

fn col(name: &str, base: &str, typmod: i32) -> ColumnInfo {
    ColumnInfo::plain(name, base, 0, typmod)
}

fn table(name: &str, columns: Vec<ColumnInfo>, unique_keys: Vec<Vec<&str>>) -> Option<TableInfo> {
    Some(TableInfo {
        name: name.into(),
        kind: "r".into(),
        columns,
        unique_keys: unique_keys
            .into_iter()
            .map(|k| k.into_iter().map(str::to_owned).collect())
            .collect(),
        index_leads: vec![],
    })
}

fn orders() -> Catalogs {
    let mut id = col("id", "int8", -1);
    id.identity = true;
    id.not_null = true;
    let mut order_id = col("order_id", "text", -1);
    order_id.not_null = true;
    let mut total = col("total", "float8", -1);
    total.has_default = true;
    let mut tags = col("tags", "_text", -1);
    tags.element = Some("text".into());
    let mut slug = col("slug", "text", -1);
    slug.generated = true;
    let cols = vec![
        id,
        order_id,
        col("amount", "numeric", (10 << 16 | 2) + 4),
        col("email", "varchar", 60 + 4),
        col("placed_at", "timestamptz", -1),
        col("local_at", "timestamp", -1),
        col("items", "jsonb", -1),
        tags,
        total,
        slug,
    ];
    let mut c = Catalogs::new();
    c.insert(
        "shop.orders".into(),
        table("shop.orders", cols, vec![vec!["id"], vec!["order_id"]]),
    );
    c.insert(
        "user_logins_rejects".into(),
        table("public.user_logins_rejects", vec![], vec![]),
    );
    c
}

const GOOD: &str = r#"[[route]]
name = "order"
table = "shop.orders"
key = ["order_id"]
on_conflict = "update"
subject = "email"
[route.columns]
order_id  = { path = "/id", required = true }
amount    = { path = "/amount" }
email     = { path = "/email", token = "email" }
placed_at = { meta = "sent_timestamp" }
items     = { path = "/items" }
tags      = { path = "/tags" }
"#;

fn refusal(text: &str) -> String {
    let m = Mapping::parse("o.toml", text).unwrap();
    compile(&m, &orders(), MAX_KID_LEN).unwrap_err().to_string()
}

#[test]
fn a_fitting_mapping_compiles_one_converter_per_column() {
    let m = Mapping::parse("o.toml", GOOD).unwrap();
    let plan = compile(&m, &orders(), MAX_KID_LEN).unwrap();
    assert_eq!(plan.rejects_table, "public.user_logins_rejects");
    let load = plan.routes[0].load.as_ref().unwrap();
    let convs: Vec<_> = load.columns.iter().map(|c| c.converter.clone()).collect();
    assert_eq!(
        convs,
        [
            Converter::Text { max_chars: None },
            Converter::Numeric(Some((10, 2))),
            Converter::Token {
                context: "email".into(),
                ip: false,
                max_chars: Some(60)
            },
            Converter::Timestamptz(None),
            Converter::Json { binary: true },
            Converter::TextArray { max_chars: None },
        ]
    );
    assert!(load.columns[0].not_null && load.columns[0].required);
    assert_eq!(
        load.key,
        Some((vec!["order_id".to_string()], OnConflict::Update))
    );
}

#[test]
fn what_cannot_work_is_refused_with_its_place() {
    let with = |from: &str, to: &str| GOOD.replacen(from, to, 1);
    let cases = [
        (
            with("amount    = { path", "amout     = { path"),
            "o.toml:9:1: route \"order\", column \"amout\": shop.orders has no column",
        ),
        (
            with("order_id  = { path = \"/id\", required = true }\n", "").replacen(
                "key = [\"order_id\"]\non_conflict = \"update\"\n",
                "",
                1,
            ),
            "o.toml:3:9: route \"order\", column \"order_id\": shop.orders.order_id is NOT NULL",
        ),
        (
            format!("{GOOD}id = {{ path = \"/n\" }}\n"),
            "column \"id\": is an identity column",
        ),
        (
            format!("{GOOD}slug = {{ path = \"/n\" }}\n"),
            "column \"slug\": is a generated column",
        ),
        (
            format!("{GOOD}total = {{ path = \"/n\" }}\n"),
            "column \"total\": type float8 has no conversion",
        ),
        (
            format!("{GOOD}local_at = {{ path = \"/n\" }}\n"),
            "column \"local_at\": timestamp without time zone",
        ),
        (
            with("token = \"email\"", "token = \"email\", as = \"ip\""),
            "o.toml:10:1: route \"order\", column \"email\": varchar is too narrow",
        ),
        (
            with(
                "amount    = { path = \"/amount\" }",
                "amount    = { path = \"/amount\", token = \"a\" }",
            ),
            "column \"amount\": a token is text",
        ),
        (
            with("key = [\"order_id\"]", "key = [\"order_id\", \"email\"]"),
            "o.toml:4:7: route \"order\": shop.orders has no unique index",
        ),
        (
            with("shop.orders", "shop.ordres"),
            "o.toml:3:9: route \"order\": table shop.ordres does not exist",
        ),
        (
            with(
                "{ meta = \"sent_timestamp\" }",
                "{ meta = \"receive_count\" }",
            ),
            "column \"placed_at\": meta receive_count cannot load into timestamptz",
        ),
        (
            with(
                "{ path = \"/items\" }",
                "{ path = \"/items\", as = \"epoch_s\" }",
            ),
            "as = \"epoch_s\" loads into timestamptz, not jsonb",
        ),
    ];
    for (text, want) in cases {
        let e = refusal(&text);
        assert!(e.contains(want), "{want}\n→ {e}");
    }
    let mut no_rejects = orders();
    no_rejects.insert("user_logins_rejects".into(), None);
    let m = Mapping::parse("o.toml", GOOD).unwrap();
    let e = compile(&m, &no_rejects, MAX_KID_LEN)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("o.toml: rejects table user_logins_rejects does not exist"),
        "{e}"
    );
}

#[test]
fn token_lengths_are_the_maskers() {
    let m = crate::mask::Masker::fixed_for_tests();
    for n in [0, 1, 16, 100] {
        assert_eq!(token_len(1, n), m.token_len(n));
    }
}

#[test]
fn the_login_mapping_compiles_against_todays_table() {
    let cols = vec![
        col("user_id", "varchar", 128 + 4),
        col("device_type", "varchar", 32 + 4),
        col("masked_ip", "varchar", 256 + 4),
        col("masked_device_id", "varchar", 256 + 4),
        col("locale", "varchar", 32 + 4),
        col("app_version", "int4", -1),
        col("create_date", "date", -1),
    ];
    let mut c = Catalogs::new();
    c.insert(
        "user_logins".into(),
        table("public.user_logins", cols, vec![]),
    );
    c.insert(
        "user_logins_rejects".into(),
        table("public.user_logins_rejects", vec![], vec![]),
    );
    let plan = compile(&crate::mapping::login::mapping().unwrap(), &c, MAX_KID_LEN).unwrap();
    let load = plan.routes[0].load.as_ref().unwrap();
    let convs: Vec<_> = load.columns.iter().map(|c| c.converter.clone()).collect();
    assert_eq!(
        convs,
        [
            Converter::Text {
                max_chars: Some(128)
            },
            Converter::SemverInt(IntWidth::I32),
            Converter::Text {
                max_chars: Some(32)
            },
            Converter::Token {
                context: "ip".into(),
                ip: true,
                max_chars: Some(256)
            },
            Converter::Text {
                max_chars: Some(32)
            },
            Converter::Token {
                context: "device_id".into(),
                ip: false,
                max_chars: Some(256)
            },
            Converter::Date,
        ]
    );
}
