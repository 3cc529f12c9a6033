//! `sqs2pg config`: the configuration a run would use, after every layer and every check,
//! as TOML-like text. Secrets are never printed: the database URL loses its password, keys
//! show as their ids only (nothing is unwrapped).

use super::args::{GlobalArgs, RunArgs};
use crate::error::Failure;

pub(super) fn print(g: &GlobalArgs, r: &RunArgs) -> Result<(), Failure> {
    print!("{}", render(g, r));
    Ok(())
}

fn render(g: &GlobalArgs, r: &RunArgs) -> String {
    let db = g
        .db()
        .map(|d| d.redacted())
        .unwrap_or_else(|e| format!("<invalid: {e}>"));
    let (key_source, kids) = g.keys().describe();
    let p = r.pipeline(g.metrics_addr);
    let opt = |v: Option<String>| v.map_or("# unset".to_string(), |v| format!("{v:?}"));
    format!(
        "# effective sqs2pg configuration (flags > environment > config file > defaults)\n\
         # config file: {}\n\
         queue_url = {}\n\
         queue_name = {:?}\n\
         envelope = \"{}\"\n\
         create_date_from = \"{}\"\n\
         database_url = {:?}\n\
         db_ca_file = {}\n\
         db_write_timeout_secs = {}\n\
         db_statements = {:?}\n\
         keys = {:?}  # source: {key_source}; key ids only, writing key first\n\
         log_format = {:?}\n\
         metrics_addr = {}\n\
         \n[run]\n\
         pollers = {}\nwriters = {}\nbatch_size = {}\nbatch_wait_ms = {}\nmax_inflight_bytes = {}\nwait_seconds = {}\nshutdown_timeout_secs = {}\n",
        g.config.as_ref().map_or("none".into(), |p| p.display().to_string()),
        opt(g.queue_url.clone()),
        g.queue_name,
        g.envelope,
        g.create_date_from,
        db,
        opt(g.db_ca_file.as_ref().map(|p| p.display().to_string())),
        g.db_write_timeout_secs,
        format!("{:?}", g.db_statements).to_lowercase(),
        kids,
        format!("{:?}", g.log_format).to_lowercase(),
        opt(p.metrics_addr.map(|a| a.to_string())),
        p.pollers,
        p.writers,
        p.batch_size,
        p.batch_wait.as_millis(),
        p.max_inflight_bytes,
        p.wait_seconds,
        p.shutdown_timeout.as_secs(),
    )
}
