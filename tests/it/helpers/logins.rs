//! Login roles in sqs2pg's group roles, for tests that act as the credentials production
//! gives each component.

use super::*;

/// A login role of one test in one of the group roles `migrate --roles` makes (roles are
/// cluster-wide, so it is named after the test's database), and its URL.
pub struct RoleLogin {
    pub name: String,
    pub url: String,
}

/// `migrate --roles`, then a login role granted `group` (`sqs2pg_ingest`, say).
pub async fn role_login(env: &TestEnv, group: &str) -> RoleLogin {
    stdout_ok(&env.run_cmd(&["migrate", "--roles"]));
    let suffix = group.trim_start_matches("sqs2pg_");
    let name = format!("{}_{suffix}", env.db_name());
    env.db()
        .await
        .batch_execute(&format!("CREATE ROLE {name} LOGIN IN ROLE {group}"))
        .await
        .unwrap();
    let url = env
        .database_url
        .replacen("postgres@", &format!("{name}@"), 1);
    RoleLogin { name, url }
}

impl RoleLogin {
    /// Drops the login role and what it was granted in the test's database.
    pub async fn drop_in(self, env: &TestEnv) {
        let name = self.name;
        env.db()
            .await
            .batch_execute(&format!("DROP OWNED BY {name}; DROP ROLE {name}"))
            .await
            .unwrap();
    }
}
