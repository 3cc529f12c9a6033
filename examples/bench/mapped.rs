//! Mappings (`run --mapping FILE`): an EventBridge `OrderPlaced` event through a compiled
//! plan, and its route's rows through the sink, each beside its reference in the same run.
//!
//! The table is `examples/mappings/eventbridge.sql`'s `shop.orders` (its unique index on
//! `order_id` included) in every measurement: the plain route, its `key = ["order_id"]`,
//! `on_conflict = "ignore"` twin and the raw binary `COPY` all write into the same table, so
//! the ratios isolate what the sink and the key add.

use sqs2pg::db::mapped::CellSql;
use sqs2pg::decode::{Envelope, Framing};
use sqs2pg::mapping::live::Live;
use sqs2pg::mapping::Mapping;
use sqs2pg::transform::Outcome;

use super::*;

/// The table every measurement writes into.
const TABLE_SQL: &str = include_str!("../mappings/eventbridge.sql");

/// The order route of `examples/mappings/eventbridge.toml`: nested paths, an exact numeric,
/// a jsonb subtree, one token column and two envelope fields. `{KEY}` is empty for the plain
/// route.
const ROUTE: &str = r#"
[[route]]
name = "order"
table = "shop.orders"
when = { meta = "envelope:detail-type", equals = "OrderPlaced" }
subject = "customer_email"
{KEY}
[route.columns]
order_id       = { path = "/order/id", required = true }
amount         = { path = "/order/amount", required = true }
currency       = { path = "/order/currency" }
customer_id    = { path = "/customer/id" }
customer_email = { path = "/customer/email", token = "email", required = true }
items          = { path = "/order/items" }
placed_at      = { meta = "envelope:time" }
event_id       = { meta = "envelope:id" }
"#;

const KEYED: &str = "key = [\"order_id\"]\non_conflict = \"ignore\"";

fn mapping(keyed: bool) -> Result<Arc<Mapping>> {
    let text = ROUTE.replace("{KEY}", if keyed { KEYED } else { "" });
    Ok(Arc::new(Mapping::parse("bench-orders.toml", &text)?))
}

/// A small deterministic generator (splitmix64), so every run sends the same events.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` EventBridge `OrderPlaced` events, every one of which the order route loads: unique
/// order ids, amounts with two decimals, one to four items.
fn order_bodies(n: usize, seed: u64) -> Vec<String> {
    let mut mix = Mix(seed);
    let currencies = ["EUR", "USD", "GBP", "SEK"];
    (0..n)
        .map(|i| {
            let items: Vec<String> = (0..1 + mix.below(4))
                .map(|_| {
                    format!(
                        r#"{{"sku":"SKU-{:05}","qty":{},"price":{}.{:02}}}"#,
                        mix.below(100_000),
                        1 + mix.below(5),
                        mix.below(200),
                        mix.below(100)
                    )
                })
                .collect();
            let customer = mix.below(1_000_000);
            format!(
                concat!(
                    r#"{{"version":"0","id":"{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}","#,
                    r#""detail-type":"OrderPlaced","source":"com.example.shop","account":"123456789012","#,
                    r#""time":"2026-12-{:02}T{:02}:{:02}:{:02}Z","region":"eu-west-1","resources":[],"#,
                    r#""detail":{{"order":{{"id":"o-{seed}-{i}","amount":{}.{:02},"currency":"{}","items":[{}]}},"#,
                    r#""customer":{{"id":"c-{customer}","email":"customer{customer}@example.com"}}}}}}"#
                ),
                mix.next() as u32,
                mix.below(0x1_0000),
                mix.below(0x1000),
                mix.below(0x1000),
                mix.next() & 0xFFFF_FFFF_FFFF,
                1 + mix.below(28),
                mix.below(24),
                mix.below(60),
                mix.below(60),
                mix.below(5_000),
                mix.below(100),
                currencies[mix.below(4) as usize],
                items.join(","),
                seed = seed,
                i = i,
                customer = customer,
            )
        })
        .collect()
}

fn order_messages(n: usize, seed: u64) -> Vec<Received> {
    let framing = Framing {
        envelope: Envelope::EventBridge,
        ..Default::default()
    };
    let mut msgs = received(&order_bodies(n, seed));
    for m in &mut msgs {
        m.framing = framing;
    }
    msgs
}

/// A fresh bench database with `shop.orders`, and `mapping` compiled against it.
async fn orders_db(env: &Env, name: &str, mapping: Arc<Mapping>) -> Result<(String, Arc<Live>)> {
    let url = env.fresh_db(name).await?;
    let c = pg(&url).await?;
    c.batch_execute(TABLE_SQL).await?;
    let kid_len = keyring().writing_kid().len();
    let live = Live::read(mapping, &c, kid_len).await?;
    Ok((url, Arc::new(live)))
}

/// Every message through `live`'s plan; fails unless each one became the order route's row.
fn order_records(msgs: &[Received], live: &Arc<Live>) -> Result<Vec<Record>> {
    let mut masker = Masker::new(&keyring());
    let recipe = Recipe::Mapped(live.clone());
    msgs.iter()
        .map(|m| {
            let outcome = sqs2pg::transform::transform(m, &recipe, &mut masker).outcome;
            match &outcome {
                Outcome::Mapped(_) => Ok(Record {
                    message_id: m.message_id.clone(),
                    outcome,
                }),
                other => bail!("an order event did not become a row: {other:?}"),
            }
        })
        .collect()
}

// ---------------------------------------------------------------- transform

/// The order event through the plan on this thread, best of three passes after a warm-up,
/// beside the login transform measured just before it (`login_rate`).
pub(crate) async fn bench_transform_mapped(env: &Env, n: usize, login_rate: f64) -> Result<Line> {
    let (_, live) = orders_db(env, "maptransform", mapping(false)?).await?;
    let msgs = order_messages(n, 11);
    // Every event must load, or the figure would time the reject path.
    order_records(&msgs[..msgs.len().min(100)], &live)?;
    let (per_sec, ns) = best_rate(&msgs, &Recipe::Mapped(live));
    Ok(line(
        "transform, mapped EventBridge `OrderPlaced` (8 columns: nested paths, numeric, jsonb items, one token, envelope time and id), one core",
        format!("{per_sec:.0} msgs/s, {ns:.0} ns/msg"),
        format!("login transform {login_rate:.0} msgs/s"),
        format!("{:.2}×", per_sec / login_rate),
        "≥ 200k msgs/s",
    ))
}
/// Msgs/s and ns/msg of `recipe` over `msgs` on this thread: the best of three passes after
/// a warm-up.
fn best_rate(msgs: &[Received], recipe: &Recipe) -> (f64, f64) {
    let mut masker = Masker::new(&keyring());
    let mut best = Duration::MAX;
    for _ in 0..4 {
        let started = Instant::now();
        for m in msgs {
            std::hint::black_box(sqs2pg::transform::transform(m, recipe, &mut masker));
        }
        best = best.min(started.elapsed());
    }
    let n = msgs.len() as f64;
    (n / best.as_secs_f64(), best.as_nanos() as f64 / n)
}

// ---------------------------------------------------------------- sink

/// One binary `COPY` per batch of the route's cells into its table: no ledger, no rejects,
/// no transaction of its own.
struct RawOrders {
    client: tokio_postgres::Client,
    copy: String,
    types: Vec<tokio_postgres::types::Type>,
}

impl RawOrders {
    async fn connect(url: &str, live: &Live) -> Result<Self> {
        let load = live.plan.routes[0]
            .load
            .as_ref()
            .context("the order route loads")?;
        let columns: Vec<String> = load
            .columns
            .iter()
            .map(|c| format!("\"{}\"", c.name))
            .collect();
        Ok(Self {
            client: pg(url).await?,
            copy: format!(
                "COPY {}({}) FROM STDIN (FORMAT binary)",
                load.table,
                columns.join(", ")
            ),
            types: load
                .columns
                .iter()
                .map(|c| {
                    tokio_postgres::types::Type::from_oid(c.type_oid)
                        .unwrap_or(tokio_postgres::types::Type::TEXT)
                })
                .collect(),
        })
    }
}

impl Loader for RawOrders {
    async fn load(&mut self, batch: &[Record]) -> Result<()> {
        use tokio_postgres::binary_copy::BinaryCopyInWriter;
        use tokio_postgres::types::ToSql;
        let sink = self.client.copy_in(self.copy.as_str()).await?;
        let writer = BinaryCopyInWriter::new(sink, &self.types);
        futures::pin_mut!(writer);
        for r in batch {
            let Outcome::Mapped(row) = &r.outcome else {
                continue;
            };
            let cells: Vec<CellSql<'_>> = row.cells.iter().map(CellSql).collect();
            let params: Vec<&(dyn ToSql + Sync)> = cells.iter().map(|c| c as _).collect();
            writer.as_mut().write(&params).await?;
        }
        writer.finish().await?;
        Ok(())
    }
}

async fn count_orders(url: &str) -> Result<i64> {
    Ok(pg(url)
        .await?
        .query_one("SELECT count(*) FROM shop.orders", &[])
        .await?
        .get(0))
}

/// Rows/s of one loader into a fresh `shop.orders`, checked to have loaded every record.
async fn order_rate(env: &Env, name: &str, how: &str, recs: &[Record]) -> Result<f64> {
    let (url, live) = orders_db(env, name, mapping(how == "keyed")?).await?;
    let rate = if how == "raw" {
        concurrent_rate(recs, 1, || RawOrders::connect(&url, &live)).await?
    } else {
        let db = DbConfig::new(&url, None)?;
        let shape = sqs2pg::db::TableShape::mapped(live);
        concurrent_rate(recs, 1, || async { Ok(Sink::connect(&db, &shape).await?) }).await?
    };
    let rows = count_orders(&url).await?;
    if rows != recs.len() as i64 {
        bail!("{how}: shop.orders holds {rows} rows of {}", recs.len());
    }
    Ok(rate)
}

/// The plain order route and its keyed twin through the sink, one writer, and one raw
/// binary `COPY` stream of the same rows, alternating over the rounds; best round of each.
pub(crate) async fn bench_sink_mapped(env: &Env, sizes: Sizes) -> Result<Vec<Line>> {
    let msgs = order_messages(sizes.mapped_rows, 12);
    // The cells do not depend on the key: one set of records serves all three.
    let (_, live) = orders_db(env, "mapsetup", mapping(false)?).await?;
    let recs = order_records(&msgs, &live)?;
    let (mut raw, mut plain, mut keyed) = (0f64, 0f64, 0f64);
    for round in 0..sizes.sink_rounds {
        raw = raw.max(order_rate(env, &format!("mapraw{round}"), "raw", &recs).await?);
        plain = plain.max(order_rate(env, &format!("mapplain{round}"), "plain", &recs).await?);
        keyed = keyed.max(order_rate(env, &format!("mapkeyed{round}"), "keyed", &recs).await?);
    }
    Ok(vec![
        line(
            "mapped sink, EventBridge order route, 1 writer: rows/s vs one raw binary COPY stream of the same rows into the same table",
            format!("{plain:.0} rows/s"),
            format!("COPY {raw:.0} rows/s"),
            format!("{:.2}×", plain / raw),
            "≥ 0.5× raw COPY",
        ),
        line(
            "mapped sink, the order route with `key = [\"order_id\"]`, `on_conflict = \"ignore\"` (staged, then INSERT … ON CONFLICT) vs the plain route, 1 writer",
            format!("{keyed:.0} rows/s"),
            format!("plain {plain:.0} rows/s"),
            format!("{:.2}×", keyed / plain),
            "reported",
        ),
    ])
}
