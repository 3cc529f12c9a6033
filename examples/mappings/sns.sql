-- The table examples/mappings/sns.toml loads: one row per account event published on SNS.
CREATE TABLE account_events (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  topic_arn      text NOT NULL,
  sns_message_id text NOT NULL,
  published_at   timestamptz NOT NULL, -- the notification's `Timestamp`
  user_id        text NOT NULL,
  action         text NOT NULL,
  plan           text,
  seats          integer,
  received_at    timestamptz NOT NULL DEFAULT now()
);
