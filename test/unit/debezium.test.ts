import { readFileSync } from 'node:fs';
import path from 'node:path';
import { EVENT_TYPES, subjectFor } from '../../contracts/index';
import { ORDERS_SUBJECTS } from '../../relay/stream';

/**
 * deploy/debezium/outbox-connector.json, checked without Debezium: every column it names
 * exists in the outbox table the migrations create, with a type the Outbox Event Router
 * can use, and its routing sends each event type to the subject CONTRACT §5 promises.
 */

const ROOT = path.resolve(__dirname, '..', '..');
const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');

interface ConnectorFile {
  name: string;
  config: Record<string, string>;
}
const connector = JSON.parse(read('deploy/debezium/outbox-connector.json')) as ConnectorFile;
const config = connector.config;
const setting = (key: string): string => {
  const value = config[key];
  if (value === undefined) throw new Error(`outbox-connector.json has no "${key}"`);
  return value;
};

/** The outbox table's columns and their SQL types, from the migration that creates it. */
function outboxColumns(): Map<string, string> {
  const match = /CREATE TABLE outbox \(\n([\s\S]*?)\n\);/.exec(read('migrations/0001_init.sql'));
  if (!match) throw new Error('migrations/0001_init.sql does not create table outbox');
  const columns = new Map<string, string>();
  for (const line of match[1]!.split('\n')) {
    const column = /^\s+([a-z_]+)\s+([a-z0-9]+)/.exec(line);
    if (column && !['unique', 'primary', 'check', 'constraint'].includes(column[1]!)) {
      columns.set(column[1]!, column[2]!);
    }
  }
  return columns;
}
const columns = outboxColumns();

/** Kafka Connect's RegexRouter as the EventRouter configures it: Java's `${group}` replacement. */
function routedTopic(routedByValue: string): string {
  const regex = new RegExp(
    `^(?:${config['transforms.outbox.route.topic.regex'] ?? '(?<routedByValue>.*)'})$`,
  );
  if (!regex.test(routedByValue)) return routedByValue; // RegexRouter leaves non-matching topics alone
  const replacement = setting('transforms.outbox.route.topic.replacement').replace(/\$\{(\w+)\}/g, '$<$1>');
  return routedByValue.replace(regex, replacement);
}

/** `orders.events.>` as NATS matches subjects: `>` is one or more trailing tokens. */
const streamTakes = (subject: string): boolean =>
  ORDERS_SUBJECTS.some((pattern) => {
    const prefix = pattern.replace(/\.>$/, '.');
    return subject.startsWith(prefix) && subject.length > prefix.length && !subject.includes('*');
  });

test('when the migrations are read, then the outbox table has the columns the checks below rely on', () => {
  expect(columns.get('id')).toBe('uuid');
  expect(columns.get('aggregate_id')).toBe('uuid');
  expect(columns.get('body')).toBe('jsonb');
  expect(columns.get('type')).toBe('text');
  expect(columns.size).toBeGreaterThanOrEqual(10);
});

test('when read, then it is a Postgres connector on pgoutput that captures the outbox table only, through a publication of its own', () => {
  expect(setting('connector.class')).toBe('io.debezium.connector.postgresql.PostgresConnector');
  expect(setting('plugin.name')).toBe('pgoutput');
  expect(setting('table.include.list')).toBe('public.outbox');
  expect(config['table.exclude.list']).toBeUndefined();
  // filtered: Debezium creates the publication for the tables in table.include.list only.
  expect(setting('publication.autocreate.mode')).toBe('filtered');
  expect(setting('publication.name')).toMatch(/^[a-z_]+$/);
  expect(setting('slot.name')).toMatch(/^[a-z0-9_]+$/); // Postgres' rule for slot names
  expect(setting('tasks.max')).toBe('1'); // one reader of the slot: commit order is kept
  expect(setting('database.dbname')).toBe('orders');
  expect(setting('database.password')).toMatch(/^\$\{file:[^}]+\}$/); // never a literal secret
});

test('when read, then the Outbox Event Router maps event id, key and payload to existing outbox columns', () => {
  expect(setting('transforms').split(',')).toContain('outbox');
  expect(setting('transforms.outbox.type')).toBe('io.debezium.transforms.outbox.EventRouter');
  expect(setting('transforms.outbox.table.field.event.id')).toBe('id');
  expect(setting('transforms.outbox.table.field.event.key')).toBe('aggregate_id');
  expect(setting('transforms.outbox.table.field.event.payload')).toBe('body');
  expect(setting('transforms.outbox.route.by.field')).toBe('type');

  const referenced = Object.entries(config)
    .filter(([key]) => /^transforms\.outbox\.(table\.field\.|route\.by\.field$)/.test(key))
    .map(([, column]) => column);
  const placed = setting('transforms.outbox.table.fields.additional.placement')
    .split(',')
    .map((entry) => entry.split(':'));
  for (const [column, placement] of placed) {
    expect(['header', 'envelope', 'partition']).toContain(placement);
    referenced.push(column!);
  }
  expect(referenced.filter((column) => !columns.has(column))).toEqual([]);
  expect(placed.map(([column]) => column)).toContain('aggregate_type');
});

test('when read, then no option needs a column type the router cannot read', () => {
  // The router reads an event timestamp column as epoch millis (int64); occurred_at is a
  // timestamptz, so the message timestamp stays Debezium's own.
  const timestamp = config['transforms.outbox.table.field.event.timestamp'];
  if (timestamp !== undefined) expect(columns.get(timestamp)).toBe('bigint');
  // The router emits plain values (no envelope field) when every extra column goes to a
  // header: with string converters the message is the stored body text, as the relay sends it.
  expect(setting('transforms.outbox.table.fields.additional.placement')).not.toMatch(/:envelope/);
  expect(setting('value.converter')).toBe('org.apache.kafka.connect.storage.StringConverter');
  expect(setting('key.converter')).toBe('org.apache.kafka.connect.storage.StringConverter');
});

test('when an event of each type is routed, then it goes to its contract subject orders.events.<Type>, which stream ORDERS takes', () => {
  for (const type of EVENT_TYPES) {
    expect(routedTopic(type)).toBe(subjectFor(type));
    expect(streamTakes(routedTopic(type))).toBe(true);
  }
});

test('when read, then only inserts reach the router, and the first snapshot covers only rows the relay left unpublished', () => {
  // Updates (the relay marking rows) and deletes (retention) are not events.
  expect(setting('skipped.operations').split(',').sort()).toEqual(['d', 't', 'u']);
  expect(setting('tombstones.on.delete')).toBe('false');
  expect(setting('snapshot.select.statement.overrides')).toBe('public.outbox');
  const statement = setting('snapshot.select.statement.overrides.public.outbox');
  expect(statement).toMatch(/^SELECT \* FROM public\.outbox WHERE published_at IS NULL ORDER BY position$/);
  const keywords = new Set(['select', 'from', 'public', 'outbox', 'where', 'is', 'null', 'order', 'by']);
  const identifiers = (statement.toLowerCase().match(/[a-z_]+/g) ?? []).filter((word) => !keywords.has(word));
  expect(identifiers.filter((column) => !columns.has(column))).toEqual([]);
});
