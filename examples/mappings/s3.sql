-- The table examples/mappings/s3.toml loads: one row per S3 object-created notification.
CREATE TABLE s3_objects (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  bucket      text NOT NULL,
  object_key  text NOT NULL,          -- as S3 sends it: URL-encoded
  size        bigint,
  etag        text,
  event_name  text NOT NULL,          -- ObjectCreated:Put, ObjectCreated:Copy, ...
  event_time  timestamptz NOT NULL,
  region      text,
  received_at timestamptz NOT NULL DEFAULT now()
);
