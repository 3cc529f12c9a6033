//! The DDL `migrate` runs: the tables (and the columns added to ones made before them),
//! the least-privilege roles, the rotation function's privileges. Every statement is
//! idempotent, so `migrate` may run again on every deploy.

pub(super) const MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS user_logins(
  user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
  masked_device_id varchar(256), locale varchar(32), app_version integer, create_date date);
CREATE TABLE IF NOT EXISTS user_logins_rejects(
  message_id text PRIMARY KEY,
  reason text NOT NULL,
  body_ciphertext text NOT NULL,
  receive_count int,
  sent_at timestamptz,
  rejected_at timestamptz NOT NULL DEFAULT now());
-- The route that took a mapped event (NULL when none did). Checked first: ALTER needs the
-- table's owner even when the column is there, and a later migrate may run as another role.
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'user_logins_rejects'::regclass
                  AND attname = 'route' AND NOT attisdropped) THEN
    ALTER TABLE user_logins_rejects ADD COLUMN route text;
  END IF;
  -- The token of a mapped reject's data subject, which `forget` finds it by.
  IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'user_logins_rejects'::regclass
                  AND attname = 'subject_token' AND NOT attisdropped) THEN
    ALTER TABLE user_logins_rejects ADD COLUMN subject_token text;
    CREATE INDEX user_logins_rejects_subject_token ON user_logins_rejects (subject_token)
      WHERE subject_token IS NOT NULL;
  END IF;
END $$;
CREATE TABLE IF NOT EXISTS sqs2pg_ledger_0(
  message_id text PRIMARY KEY,
  committed_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS sqs2pg_ledger_1(
  message_id text PRIMARY KEY,
  committed_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS sqs2pg_ledger_state(
  id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  generation bigint NOT NULL);
INSERT INTO sqs2pg_ledger_state(id, generation) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE OR REPLACE VIEW sqs2pg_ledger AS
  SELECT message_id, committed_at FROM sqs2pg_ledger_0
  UNION ALL SELECT message_id, committed_at FROM sqs2pg_ledger_1;
COMMENT ON VIEW sqs2pg_ledger IS
  'sqs2pg: SQS message ids whose row or reject is committed (two 15-day generations); makes redelivery a no-op';
CREATE TABLE IF NOT EXISTS sqs2pg_reveal_audit(
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  db_user text NOT NULL DEFAULT current_user,
  os_user text,
  host text,
  action text NOT NULL,
  column_name text NOT NULL,
  reason text NOT NULL CHECK (reason <> ''),
  values_count int NOT NULL,
  fingerprints text[] NOT NULL DEFAULT '{}');
-- Audits made before fingerprints were recorded get the column (and an empty list) here.
ALTER TABLE sqs2pg_reveal_audit ADD COLUMN IF NOT EXISTS fingerprints text[] NOT NULL DEFAULT '{}';
-- What an erasure (`forget`) deleted, per table: counts, never values.
ALTER TABLE sqs2pg_reveal_audit ADD COLUMN IF NOT EXISTS counts jsonb;
COMMENT ON COLUMN sqs2pg_reveal_audit.fingerprints IS
  'sqs2pg: hex SHA-256 of each token opened or made (of the message id for a reject body)';
CREATE INDEX IF NOT EXISTS sqs2pg_reveal_audit_fingerprints
  ON sqs2pg_reveal_audit USING gin (fingerprints);
COMMENT ON TABLE sqs2pg_reveal_audit IS
  'sqs2pg: who unmasked what and why; append-only for everyone but its owner';
REVOKE UPDATE, DELETE, TRUNCATE ON sqs2pg_reveal_audit FROM PUBLIC;
CREATE TABLE IF NOT EXISTS sqs2pg_rekey_progress(
  table_name text PRIMARY KEY,
  writing_kid text NOT NULL,
  cursor text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now());
COMMENT ON TABLE sqs2pg_rekey_progress IS
  'sqs2pg: where an interrupted rekey resumes (per table, towards one writing key); empty when none is under way';
";

/// Least-privilege roles (NOLOGIN groups; grant them to login users):
/// `sqs2pg_ingest` loads rows and rejects and may start a ledger generation only through
/// `sqs2pg_ledger_rotate` (no `TRUNCATE` or `UPDATE` on the ledger), `sqs2pg_analyst` reads
/// `user_logins` only,
/// `sqs2pg_revealer` reads tokens and rejects and may append to the audit, naming neither
/// who nor when. Nobody but the owner may change or delete audit rows.
pub(super) const ROLES: &str = "
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sqs2pg_ingest') THEN CREATE ROLE sqs2pg_ingest NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sqs2pg_analyst') THEN CREATE ROLE sqs2pg_analyst NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sqs2pg_revealer') THEN CREATE ROLE sqs2pg_revealer NOLOGIN; END IF;
END
$$;
REVOKE ALL ON user_logins, user_logins_rejects, sqs2pg_ledger, sqs2pg_ledger_0, sqs2pg_ledger_1,
  sqs2pg_ledger_state, sqs2pg_reveal_audit, sqs2pg_rekey_progress
  FROM sqs2pg_ingest, sqs2pg_analyst, sqs2pg_revealer;
GRANT INSERT ON user_logins, user_logins_rejects TO sqs2pg_ingest;
-- ON CONFLICT (message_id) needs to read the key column, and only that one.
GRANT SELECT (message_id) ON user_logins_rejects TO sqs2pg_ingest;
-- Lookups and inserts only: a generation switch goes through the function, as its owner.
GRANT SELECT, INSERT ON sqs2pg_ledger_0, sqs2pg_ledger_1 TO sqs2pg_ingest;
REVOKE ALL ON FUNCTION sqs2pg_ledger_rotate(bigint) FROM sqs2pg_analyst, sqs2pg_revealer;
GRANT EXECUTE ON FUNCTION sqs2pg_ledger_rotate(bigint) TO sqs2pg_ingest;
GRANT SELECT ON user_logins TO sqs2pg_analyst;
GRANT SELECT ON user_logins, user_logins_rejects TO sqs2pg_revealer;
-- Not id, at or db_user: the audit says who and when, not the revealer.
GRANT INSERT (os_user, host, action, column_name, reason, values_count, fingerprints)
  ON sqs2pg_reveal_audit TO sqs2pg_revealer;
GRANT USAGE ON SEQUENCE sqs2pg_reveal_audit_id_seq TO sqs2pg_revealer;
";

/// The ledger's rotation function runs as its owner, so its `search_path` is pinned to the
/// schema the tables were just created in (then `pg_temp`, last, so a caller's temporary
/// tables cannot stand in for ours), and nobody may call it unless granted.
pub(super) const ROTATE_FUNCTION_PRIVILEGES: &str = "
DO $$
BEGIN
  EXECUTE format('ALTER FUNCTION sqs2pg_ledger_rotate(bigint) SET search_path = pg_catalog, %I, pg_temp',
                 current_schema());
END
$$;
REVOKE ALL ON FUNCTION sqs2pg_ledger_rotate(bigint) FROM PUBLIC;
";
