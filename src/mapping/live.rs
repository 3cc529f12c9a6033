//! A mapping as the live database takes it: the catalogs of the tables it names and the
//! plan compiled from them. Read at start-up and read again, here only, whenever a table may
//! have changed under a running process (an error that suggests it, or the periodic
//! recheck): the re-read of a changed table is a re-compile of the plan.

use std::sync::Arc;

use tokio_postgres::GenericClient;

use super::catalog::read_catalogs;
use super::compile::{compile, Catalogs, Plan};
use super::{Mapping, MappingError};

/// The columns a rejects table must have for mapped rejects: today's, plus `route` and
/// `subject_token`.
pub const REJECT_COLUMNS: [&str; 7] = [
    "message_id",
    "reason",
    "body_ciphertext",
    "receive_count",
    "sent_at",
    "route",
    "subject_token",
];

/// A mapping compiled against the catalogs it was read with.
#[derive(Debug)]
pub struct Live {
    /// The mapping file, as checked.
    pub mapping: Arc<Mapping>,
    /// What the tables looked like when compiled; two reads compare equal when no table
    /// changed.
    pub catalogs: Catalogs,
    /// The plan.
    pub plan: Plan,
    /// The writing key's id length, which token columns must leave room for.
    pub kid_len: usize,
}

impl PartialEq for Live {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.mapping, &other.mapping)
            && self.kid_len == other.kid_len
            && self.catalogs == other.catalogs
    }
}

impl Eq for Live {}

impl Live {
    /// Reads every table `mapping` names and compiles it; refuses a rejects table without
    /// the columns mapped rejects fill.
    pub async fn read(
        mapping: Arc<Mapping>,
        client: &impl GenericClient,
        kid_len: usize,
    ) -> Result<Self, MappingError> {
        let catalogs = read_catalogs(&mapping, client).await?;
        let live = Self::compiled(mapping, catalogs, kid_len)?;
        let mapping = &live.mapping;
        if let Some(Some(rejects)) = live.catalogs.get(&mapping.rejects_table) {
            if let Some(missing) = REJECT_COLUMNS.iter().find(|c| rejects.column(c).is_none()) {
                return Err(MappingError::File {
                    at: mapping.rejects_at.clone(),
                    problem: format!(
                        "rejects table {} has no column {missing:?}: run `sqs2pg migrate` (it adds `route` and `subject_token` to user_logins_rejects), or give yours the columns {}",
                        rejects.name,
                        REJECT_COLUMNS.join(", ")
                    ),
                });
            }
        }
        Ok(live)
    }

    /// `mapping` compiled against `catalogs`, read from the database or made without one.
    pub fn compiled(
        mapping: Arc<Mapping>,
        catalogs: Catalogs,
        kid_len: usize,
    ) -> Result<Self, MappingError> {
        let plan = compile(&mapping, &catalogs, kid_len)?;
        Ok(Self {
            mapping,
            catalogs,
            plan,
            kid_len,
        })
    }

    /// The same mapping read again from the live database.
    pub async fn reread(&self, client: &impl GenericClient) -> Result<Self, MappingError> {
        Self::read(self.mapping.clone(), client, self.kid_len).await
    }
}
