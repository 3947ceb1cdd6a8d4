-- Relays that scale out (relay/relay.ts, point 5). The outbox is split into 16 partitions by
-- order: an order's events all land in one partition, from the last byte of its id (random
-- in a v4 or v7 uuid), computed by Postgres on insert and stored, so no writer can get it
-- wrong and it never changes. Adding the column fills it for the rows already there (a
-- rewrite of the table under its lock: writers wait for it, seconds per million rows).
ALTER TABLE outbox
  ADD COLUMN partition smallint NOT NULL
    GENERATED ALWAYS AS (get_byte(uuid_send(aggregate_id), 15) % 16) STORED;

-- A relay's batch reads the pending rows of the partitions it holds, in position order.
CREATE INDEX outbox_pending_partition_idx ON outbox (partition, position) WHERE published_at IS NULL;

-- The relays alive now: each upserts its row every heartbeat, and counts the rows that have
-- not expired to work out its share.
CREATE TABLE relay_members (
  id           text PRIMARY KEY,
  started_at   timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL
);

-- One lease per partition. A relay may publish a partition's rows, and record anything in
-- them, only while it is `owner` and the lease has not expired; every take draws a new
-- `epoch`, so a relay's writes from an earlier tenure of the same partition are refused.
CREATE SEQUENCE outbox_partition_epoch;
CREATE TABLE outbox_partitions (
  partition  smallint PRIMARY KEY CHECK (partition BETWEEN 0 AND 15),
  owner      text,
  epoch      bigint NOT NULL DEFAULT 0,
  taken_at   timestamptz,
  expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO outbox_partitions (partition) SELECT generate_series(0, 15);
