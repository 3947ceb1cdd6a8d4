import Fastify, { type FastifyInstance } from 'fastify';
import { refuseWhileClosing } from '../../api/plugins/draining';
import { answerWithProblems } from '../../api/plugins/errors';

/**
 * The HTTP side of a graceful shutdown, hook by hook: a request that is routed once close()
 * has begun gets a 503 problem, and a request already being handled is answered, with
 * Connection: close. (test/integration/api-shutdown.test.ts drives the real process.)
 */

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/** Resolves once close() has reached its preClose hooks. */
function closingOf(app: FastifyInstance): Promise<void> {
  return new Promise((resolve) => {
    app.addHook('preClose', (done) => {
      resolve();
      done();
    });
  });
}

it('when close() begins while a request is still on its way to routing, then it gets a 503 problem with Retry-After and Connection: close', async () => {
  const app = Fastify();
  const beforeRouting = gate();
  let arrived!: () => void;
  const hasArrived = new Promise<void>((resolve) => (arrived = resolve));
  // A request that arrived just before close(), still in an earlier hook when it begins.
  app.addHook('onRequest', async () => {
    arrived();
    await beforeRouting.opened;
  });
  answerWithProblems(app, 1024);
  refuseWhileClosing(app);
  const closing = closingOf(app);
  const handled: string[] = [];
  app.get('/work', () => {
    handled.push('work');
    return { ok: true };
  });
  await app.ready();

  const response = app.inject({ method: 'GET', url: '/work' });
  await hasArrived;
  const closed = app.close();
  await closing;
  beforeRouting.open();
  const answer = await response;
  await closed;

  expect(answer.statusCode).toBe(503);
  expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(answer.headers['retry-after']).toBe('1');
  expect(answer.headers.connection).toBe('close');
  expect(answer.json()).toMatchObject({
    status: 503,
    type: 'https://order-saga.dev/problems/service-unavailable',
  });
  expect(handled).toEqual([]);
});

it('when close() begins while a handler runs, then its answer is sent whole, with Connection: close', async () => {
  const app = Fastify();
  answerWithProblems(app, 1024);
  refuseWhileClosing(app);
  const closing = closingOf(app);
  const inHandler = gate();
  let started!: () => void;
  const hasStarted = new Promise<void>((resolve) => (started = resolve));
  app.get('/work', async () => {
    started();
    await inHandler.opened;
    return { ok: true };
  });
  await app.ready();

  const response = app.inject({ method: 'GET', url: '/work' });
  await hasStarted;
  const closed = app.close();
  await closing;
  inHandler.open();
  const answer = await response;
  await closed;

  expect(answer.statusCode).toBe(200);
  expect(answer.json()).toEqual({ ok: true });
  expect(answer.headers.connection).toBe('close');
});

it('when the app is not closing, then requests are served and connections kept alive', async () => {
  const app = Fastify();
  answerWithProblems(app, 1024);
  refuseWhileClosing(app);
  app.get('/work', () => ({ ok: true }));
  const answer = await app.inject({ method: 'GET', url: '/work' });
  expect(answer.statusCode).toBe(200);
  expect(answer.headers.connection).not.toBe('close');
  await app.close();
});
