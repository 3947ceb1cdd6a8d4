import { DefaultLogger, type LogEntry, type LogLevel } from '@temporalio/worker';
import type { Logger } from '../lib/logger';

const TO_TEMPORAL: Record<string, LogLevel> = {
  trace: 'TRACE',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARN',
  error: 'ERROR',
  fatal: 'ERROR',
  silent: 'ERROR',
};
const TO_PINO = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;

/** `order-<uuid>`: the workflow id of an order's saga (contracts/index.ts workflowIdFor). */
const ORDER_WORKFLOW_ID = /^order-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

/** One Temporal log entry as a pino line: its attributes as fields, `error` as pino's `err`. */
export function writeTemporalEntry(logger: Logger, { level, message, meta = {} }: LogEntry): void {
  const { error, ...fields } = meta as Record<string, unknown>;
  if (error !== undefined) fields.err = error;
  // Workflow and activity lines carry workflowId; the saga's also say which order.
  const workflowId = fields.workflowId;
  if (fields.orderId === undefined && typeof workflowId === 'string') {
    const order = ORDER_WORKFLOW_ID.exec(workflowId);
    if (order) fields.orderId = order[1]!.toLowerCase();
  }
  logger[TO_PINO[level]](fields, message);
}

/**
 * The Temporal Runtime's logger, writing through pino: the SDK's own lines, the workflow
 * and activity context loggers, and (with log forwarding) the Rust core's, all as JSON
 * lines with the process's redaction. Levels below the pino logger's are dropped early.
 */
export function temporalLogger(logger: Logger): DefaultLogger {
  return new DefaultLogger(TO_TEMPORAL[logger.level] ?? 'INFO', (entry) => writeTemporalEntry(logger, entry));
}
