//! Erasure (`forget --subject`; issue 29 point 4): one subject's rows out of a big mapped
//! table with an index on its subject column, timed as the operator feels it, from spawning
//! the binary to its exit, beside the same erasure on a copy of the table without that index.
//!
//! Each subject's rows are spread over the whole table (`g % subjects`), so an erasure
//! touches as many heap pages as it deletes rows, as it would in a table loaded over time.

use std::process::Stdio;

use super::*;

/// Rows per subject: every subject erased deletes this many rows from the table.
const PER_SUBJECT: usize = 10;

/// The route loads `{TABLE}` with `subject` as its subject column; the mapping's own rejects
/// table is created by `migrate --mapping`, as a user would.
const MAPPING: &str = r#"rejects_table = "people_rejects"

[[route]]
name = "people"
table = "{TABLE}"
subject = "subject"

[route.columns]
subject = { path = "/subject", required = true }
kind    = { path = "/kind", required = true }
payload = { path = "/payload" }
"#;

const INDEXED: &str = "people_events";
const UNINDEXED: &str = "people_events_noindex";

/// `rows` rows of `subjects` subjects into `people_events`, then the index: building it once
/// over the filled table is much quicker than maintaining it row by row.
fn fill_sql(rows: usize, subjects: usize) -> String {
    format!(
        "CREATE TABLE {INDEXED}(
           id bigserial PRIMARY KEY,
           subject text NOT NULL,
           kind text NOT NULL,
           payload text,
           created_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO {INDEXED}(subject, kind, payload)
           SELECT 'person-' || (g % {subjects}) || '@example.com', 'login', md5(g::text)
           FROM generate_series(1, {rows}) g;
         CREATE INDEX {INDEXED}_subject ON {INDEXED}(subject);
         CREATE TABLE {UNINDEXED}(LIKE {INDEXED} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
         INSERT INTO {UNINDEXED} SELECT * FROM {INDEXED};
         ALTER TABLE {UNINDEXED} ADD PRIMARY KEY (id);
         ANALYZE {INDEXED};
         ANALYZE {UNINDEXED};"
    )
}

fn subject(k: usize) -> String {
    format!("person-{k}@example.com")
}

/// A mapping file loading `table`, and one file per subject to hand `forget` on stdin (the
/// way a subject is given without landing in the shell's history).
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("sqs2pg-bench-{}-forget", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        for table in [INDEXED, UNINDEXED] {
            std::fs::write(
                dir.join(format!("{table}.toml")),
                MAPPING.replace("{TABLE}", table),
            )?;
        }
        Ok(Self { dir })
    }

    fn mapping(&self, table: &str) -> PathBuf {
        self.dir.join(format!("{table}.toml"))
    }

    fn stdin(&self, subject: &str) -> Result<std::fs::File> {
        let path = self.dir.join("subject");
        std::fs::write(&path, format!("{subject}\n"))?;
        Ok(std::fs::File::open(path)?)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sqs2pg(env: &Env, url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(&env.bin);
    c.args(args)
        .env("DATABASE_URL", url)
        .env("SQS2PG_KEYS", KEYS)
        .env("RUST_LOG", "warn");
    c
}

async fn rows_of(c: &tokio_postgres::Client, table: &str, subject: &str) -> Result<i64> {
    let sql = format!("SELECT count(*) FROM {table} WHERE subject = $1");
    Ok(c.query_one(&sql, &[&subject]).await?.get(0))
}

/// One `forget` of `subject` from `table`, timed from spawn to exit; fails unless it said it
/// deleted the subject's rows (and no reject), and the table no longer holds any of them.
async fn forget_once(
    env: &Env,
    url: &str,
    files: &Files,
    table: &str,
    subject: &str,
) -> Result<Duration> {
    let c = pg(url).await?;
    let before = rows_of(&c, table, subject).await?;
    if before != PER_SUBJECT as i64 {
        bail!("{table} holds {before} rows of {subject} before the erasure, not {PER_SUBJECT}");
    }
    let mapping = files.mapping(table);
    let mut cmd = sqs2pg(
        env,
        url,
        &[
            "forget",
            "--subject",
            "-",
            "--reason",
            "bench",
            "--mapping",
            mapping.to_str().context("temp path")?,
        ],
    );
    cmd.stdin(Stdio::from(files.stdin(subject)?));
    let usage = run_measured(cmd)?;
    for expected in [
        format!("deleted {PER_SUBJECT} from public.{table}"),
        "deleted 0 from public.people_rejects".to_string(),
    ] {
        if !usage.stdout.lines().any(|l| l == expected) {
            bail!("forget printed {:?}, not {expected:?}", usage.stdout);
        }
    }
    let after = rows_of(&c, table, subject).await?;
    if after != 0 {
        bail!("{table} still holds {after} rows of {subject} after the erasure");
    }
    Ok(usage.wall)
}

/// The two tables filled and analysed, and the mapping's rejects table made by the binary.
async fn setup(env: &Env, rows: usize, files: &Files) -> Result<String> {
    let url = env.fresh_db("forget").await?;
    let started = Instant::now();
    pg(&url)
        .await?
        .batch_execute(&fill_sql(rows, rows / PER_SUBJECT))
        .await?;
    eprintln!(
        "   {} rows × 2 tables filled in {:.0} s",
        human(rows as u64),
        started.elapsed().as_secs_f64()
    );
    let mapping = files.mapping(INDEXED);
    run_measured(sqs2pg(
        env,
        &url,
        &[
            "migrate",
            "--mapping",
            mapping.to_str().context("temp path")?,
        ],
    ))?;
    Ok(url)
}

/// Three erasures of different subjects from the indexed table (best reported), then one
/// from the unindexed copy; the subjects lie in different parts of the table.
pub(crate) async fn bench_forget(env: &Env, rows: usize) -> Result<Line> {
    let files = Files::new()?;
    let url = setup(env, rows, &files).await?;
    let subjects = rows / PER_SUBJECT;
    let mut rounds = Vec::new();
    for k in [subjects / 7, subjects / 3, subjects / 2 + 1] {
        rounds.push(forget_once(env, &url, &files, INDEXED, &subject(k)).await?);
    }
    let unindexed = forget_once(env, &url, &files, UNINDEXED, &subject(subjects - 5)).await?;
    pg(&url)
        .await?
        .batch_execute(&format!(
            "DROP TABLE {INDEXED}, {UNINDEXED}, people_rejects"
        ))
        .await?;
    let best = rounds.iter().min().copied().unwrap_or_default();
    let secs = |d: &Duration| format!("{:.3}", d.as_secs_f64());
    Ok(line(
        &format!(
            "`forget --subject - --mapping FILE`, one subject ({PER_SUBJECT} rows) of a {}-row table with an index on its subject column: process start → exit, best of 3 subjects",
            human(rows as u64)
        ),
        format!(
            "{} s (rounds: {} s)",
            secs(&best),
            rounds.iter().map(secs).collect::<Vec<_>>().join(", ")
        ),
        format!("same table without the index: {} s", secs(&unindexed)),
        format!("{:.1}× faster", unindexed.as_secs_f64() / best.as_secs_f64()),
        "< 1 s",
    ))
}
