import { defaultPayloadConverter } from '@temporalio/common';
import type { History } from '@temporalio/common/lib/proto-utils';
import {
  classifyCommand,
  cpuBetween,
  parseCpuTotals,
  parseProcStat,
  ticksByRole,
  cpuPerRun,
  type CpuReport,
  type CpuSample,
  type ProcStat,
} from '../../tools/bench/lib/procstat';
import { formatMs, markdownTable, renderMarkdown } from '../../tools/bench/lib/report';
import type { BenchResult, StepRecord } from '../../tools/bench/lib/result';
import { parseResult, stringifyResult } from '../../tools/bench/lib/result-json';
import {
  DEFAULT_BOUNDS,
  judgeStep,
  ladderFrom,
  nextRate,
  saturationOf,
  type Probe,
  type SearchOptions,
  type Tried,
} from '../../tools/bench/lib/saturation';
import {
  describeShape,
  disagreements,
  otherQueues,
  readHistory,
  rebaseQueue,
  shapeOf,
  shapeVariants,
  stepFromCall,
  stepLabel,
  type RecordedCall,
} from '../../tools/bench/lib/saga-shape';
import { LOCAL_ACTIVITY_MARKER } from '../../lib/history-steps';
import { dueCount, msUntilDue, requestCount, scheduledOffsetMs } from '../../tools/bench/lib/schedule';
import { percentile, summarize } from '../../tools/bench/lib/stats';
import { stepMetrics, type OrderSample } from '../../tools/bench/lib/step';
import { escapeXml, linearTicks, logBounds, logTicks, renderChart } from '../../tools/bench/lib/svg';
import {
  completedRun,
  counterStats,
  countHistory,
  formatCounter,
  PATCH_MARKER,
  spreadSample,
  writeTransactions,
} from '../../tools/bench/lib/counters';
import {
  catalogSkus,
  CATALOG,
  orderLinesSource,
  replacementProducts,
  spreadLines,
} from '../../tools/bench/lib/workload';
import { instantiate, type SagaTemplate } from '../../tools/bench/template';
import { compareTable } from '../../tools/bench/lib/compare';
import { loadBenchConfig } from '../../tools/bench/config';
import { seededRng } from '../../tools/fixtures/seed';
import { ConfigError } from '../../lib/env';

/**
 * The pure parts of `npm run bench` (tools/bench/lib): the definitions behind every figure it
 * prints. The bench itself runs end to end with `npm run bench -- --quick`.
 */

describe('percentiles', () => {
  const oneToHundred = Array.from({ length: 100 }, (_, index) => index + 1);

  it('when a percentile is taken, then it is nearest-rank: always a measured value', () => {
    expect(percentile(oneToHundred, 50)).toBe(50);
    expect(percentile(oneToHundred, 95)).toBe(95);
    expect(percentile(oneToHundred, 99)).toBe(99);
    expect(percentile(oneToHundred, 100)).toBe(100);
    expect(percentile(oneToHundred, 0)).toBe(1);
    expect(percentile([10, 20, 30], 50)).toBe(20);
    expect(percentile([10, 20, 30, 40], 50)).toBe(20);
  });

  it('when there is one sample, then every percentile is that sample; when none, NaN', () => {
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it('when a saga is unfinished (Infinity), then it counts in the tail instead of being dropped', () => {
    const latencies = [...Array.from({ length: 98 }, () => 100), Infinity, Infinity];
    expect(summarize(latencies).p50).toBe(100);
    expect(summarize(latencies).p99).toBe(Infinity);
  });

  it("when samples are summarized, then the statistics come from them sorted and the caller's array is left alone", () => {
    const values = [30, 10, 20];
    expect(summarize(values)).toEqual({ count: 3, min: 10, mean: 20, p50: 20, p95: 30, p99: 30, max: 30 });
    expect(values).toEqual([30, 10, 20]);
  });
});

describe('open-loop schedule', () => {
  it('when the rate is given, then request i is sent at i / rate seconds', () => {
    expect(scheduledOffsetMs(0, 10)).toBe(0);
    expect(scheduledOffsetMs(5, 10)).toBe(500);
    expect(scheduledOffsetMs(3, 40)).toBe(75);
  });

  it('when time passes, then the requests due so far are counted, the first at once', () => {
    expect(dueCount(-1, 10, 100)).toBe(0);
    expect(dueCount(0, 10, 100)).toBe(1);
    expect(dueCount(99, 10, 100)).toBe(1);
    expect(dueCount(100, 10, 100)).toBe(2);
    expect(dueCount(999, 10, 100)).toBe(10);
  });

  it('when a timer fires late, then it catches up but never sends more than the step holds', () => {
    expect(dueCount(5_000, 10, 30)).toBe(30);
    expect(dueCount(350, 20, 100)).toBe(8);
  });

  it('when a step is planned, then it is sized and says how long to sleep', () => {
    expect(requestCount(20, 12_000)).toBe(240);
    expect(requestCount(0.01, 1_000)).toBe(1);
    expect(msUntilDue(3, 10, 250)).toBe(50);
    expect(msUntilDue(3, 10, 400)).toBe(0);
  });
});

function sample(overrides: Partial<OrderSample>): OrderSample {
  return {
    dueAtMs: 0,
    sentAtMs: 0,
    acceptedAtMs: 5,
    expected: 'COMPLETED',
    status: 'COMPLETED',
    doneAtMs: 100,
    publishedAtMs: 110,
    lagsMs: [],
    ...overrides,
  };
}

describe('step metrics', () => {
  const window = { startedAtMs: 0, durationMs: 10_000, offeredPerS: 10 };

  it('when a step ends, then throughput and keeping up are measured in its second half', () => {
    // 100 orders, one every 100 ms, each done 200 ms after it was due.
    const samples = Array.from({ length: 100 }, (_, index) =>
      sample({
        dueAtMs: index * 100,
        sentAtMs: index * 100 + 1,
        acceptedAtMs: index * 100 + 6,
        doneAtMs: index * 100 + 200,
      }),
    );
    const metrics = stepMetrics(window, samples, {});
    expect(metrics.sent).toBe(100);
    expect(metrics.sentPerS).toBe(10);
    expect(metrics.finished).toBe(100);
    // Finished in [5 s, 10 s): the ones due from 4.8 s to 9.7 s.
    expect(metrics.completedPerS).toBeCloseTo(10, 5);
    expect(metrics.keepUp).toBeCloseTo(1, 5);
    expect(metrics.post.p50).toBe(6);
    expect(metrics.postFromSend.p50).toBe(5);
    expect(metrics.sendDelay.p99).toBe(1);
    expect(metrics.saga.p99).toBe(200);
  });

  it('when sagas finish slower than they arrive, then the backlog is seen growing', () => {
    // Due every 100 ms, but each takes 100 ms more than the previous one.
    const samples = Array.from({ length: 100 }, (_, index) =>
      sample({ dueAtMs: index * 100, doneAtMs: index * 200 + 50 }),
    );
    const metrics = stepMetrics(window, samples, {});
    expect(metrics.keepUp).toBeCloseTo(0.5, 1);
    expect(metrics.completedPerS).toBeCloseTo(5, 0);
  });

  it('when requests fail or outcomes are unexpected, then they count as errors, and unfinished sagas as Infinity', () => {
    const samples = [
      sample({}),
      sample({ status: 'FAILED', expected: 'COMPLETED' }),
      sample({ expected: 'FAILED', status: 'FAILED' }),
      sample({ status: undefined, doneAtMs: undefined, publishedAtMs: undefined }),
      sample({ acceptedAtMs: undefined, status: undefined, doneAtMs: undefined }),
    ];
    const metrics = stepMetrics(window, samples, { 'HTTP 503': 1 });
    expect(metrics.accepted).toBe(4);
    expect(metrics.finished).toBe(3);
    expect(metrics.unfinished).toBe(1);
    expect(metrics.errors).toBe(2);
    expect(metrics.errorKinds).toEqual({ 'HTTP 503': 1, 'saga ended FAILED (expected COMPLETED)': 1 });
    expect(metrics.saga.max).toBe(Infinity);
    expect(metrics.endToEnd.max).toBe(Infinity);
  });

  it('when orders are accepted, then every event lag of theirs is gathered', () => {
    const metrics = stepMetrics(window, [sample({ lagsMs: [3, 5] }), sample({ lagsMs: [40] })], {});
    expect(metrics.outboxLag).toMatchObject({ count: 3, p50: 5, max: 40 });
  });
});

describe('saturation decision', () => {
  const good = {
    offeredPerS: 50,
    sent: 600,
    sentPerS: 50,
    errors: 0,
    unfinished: 0,
    keepUp: 1,
    saga: summarize([100, 200, 300]),
  };

  it('when a step is within every bound, then it is sustained', () => {
    expect(judgeStep(good, DEFAULT_BOUNDS)).toEqual({ sustained: true, reasons: [] });
  });

  it('when saga p99, a growing backlog, errors, unfinished sagas or a lagging client exceed their bound, then the step breaks', () => {
    const cases: Array<[Partial<typeof good>, RegExp]> = [
      [{ saga: summarize([100, 2_000]) }, /saga p99 2000 ms > 1000 ms/],
      [{ saga: summarize([100, Infinity]) }, /saga p99 unfinished/],
      [{ saga: summarize([]) }, /saga p99/],
      [{ keepUp: 0.8 }, /backlog grows/],
      [{ errors: 1 }, /1 errors/],
      [{ unfinished: 2 }, /2 sagas unfinished/],
      [{ sentPerS: 40 }, /client sent only 40.0\/s of 50\/s/],
      [{ sent: 0 }, /nothing was sent/],
    ];
    for (const [change, reason] of cases) {
      const verdict = judgeStep({ ...good, ...change }, DEFAULT_BOUNDS);
      expect(verdict.sustained).toBe(false);
      expect(verdict.reasons.join('; ')).toMatch(reason);
    }
  });

  it('when errors stay within the configured ratio, then the step is still sustained', () => {
    expect(judgeStep({ ...good, errors: 3 }, { ...DEFAULT_BOUNDS, maxErrorRatio: 0.01 }).sustained).toBe(
      true,
    );
  });
});

describe('saturation search', () => {
  const ladder = [10, 20, 40, 60, 80];
  const options: SearchOptions = { refine: true, refineGap: 1.15, maxSteps: 10 };
  const step = (offeredPerS: number, sustained: boolean, probe: Probe = 'ladder'): Tried => ({
    offeredPerS,
    sustained,
    probe,
  });

  it('when a search starts low, then it climbs at most by doubling and does not jump to the next rung', () => {
    expect(nextRate([step(1, true)], ladder, options)).toEqual({ ratePerS: 2, probe: 'ladder' });
    expect(nextRate([step(1, true), step(2, true), step(4, true)], ladder, options)).toEqual({
      ratePerS: 8,
      probe: 'ladder',
    });
    expect(nextRate([step(8, true)], ladder, options)).toEqual({ ratePerS: 10, probe: 'ladder' });
  });

  it('when steps are sustained, then the search climbs the ladder and stops at its top', () => {
    expect(nextRate([], ladder, options)).toEqual({ ratePerS: 10, probe: 'ladder' });
    expect(nextRate([step(10, true), step(20, true)], ladder, options)).toEqual({
      ratePerS: 40,
      probe: 'ladder',
    });
    expect(
      nextRate(
        ladder.map((rate) => step(rate, true)),
        ladder,
        options,
      ),
    ).toBeUndefined();
  });

  it('when a step fails after a sustained one, then the search refines once between them', () => {
    const tried = [step(10, true), step(20, true), step(40, false)];
    expect(nextRate(tried, ladder, options)).toEqual({ ratePerS: 30, probe: 'refine' });
    expect(nextRate([...tried, step(30, true, 'refine')], ladder, options)).toBeUndefined();
    expect(nextRate([...tried, step(30, false, 'refine')], ladder, options)).toBeUndefined();
    expect(nextRate(tried, ladder, { ...options, refine: false })).toBeUndefined();
  });

  it('when the gap is narrower than refineGap, then the search does not refine it', () => {
    expect(nextRate([step(60, true), step(65, false)], [60, 65], options)).toBeUndefined();
  });

  it('when nothing is sustained, then the search steps down by halves, then refines upward', () => {
    expect(nextRate([step(10, false)], ladder, options)).toEqual({ ratePerS: 5, probe: 'down' });
    expect(nextRate([step(10, false), step(5, false, 'down')], ladder, options)).toEqual({
      ratePerS: 2,
      probe: 'down',
    });
    expect(
      nextRate([step(10, false), step(5, false, 'down'), step(2, false, 'down')], ladder, options),
    ).toEqual({
      ratePerS: 1,
      probe: 'down',
    });
    expect(nextRate([step(1, false)], ladder, options)).toBeUndefined();
    expect(nextRate([step(10, false), step(5, true, 'down')], ladder, options)).toEqual({
      ratePerS: 8,
      probe: 'refine',
    });
  });

  it('when the step limit is reached, then the search stops', () => {
    expect(nextRate([step(10, true), step(20, true)], ladder, { ...options, maxSteps: 2 })).toBeUndefined();
  });

  it('when the search ends, then it reports the highest sustained step and the most productive one', () => {
    const steps = [
      { ...step(10, true), completedPerS: 10 },
      { ...step(20, true), completedPerS: 19.8 },
      { ...step(40, false), completedPerS: 26 },
      { ...step(30, false, 'refine'), completedPerS: 25 },
    ];
    const { sustained, peak } = saturationOf(steps);
    expect(sustained?.offeredPerS).toBe(20);
    expect(peak?.offeredPerS).toBe(40);
    expect(saturationOf([{ ...step(10, false), completedPerS: 3 }]).sustained).toBeUndefined();
  });

  it('when a later search is given a start rate, then it starts there and follows the ladder', () => {
    expect(ladderFrom(ladder, 36)).toEqual([36, 40, 60, 80]);
    expect(ladderFrom(ladder, 40)).toEqual([40, 60, 80]);
    expect(ladderFrom(ladder, 500)).toEqual([500]);
    expect(ladderFrom(ladder, 0.2)).toEqual([1, 10, 20, 40, 60, 80]);
  });
});

describe('CPU from /proc', () => {
  it('when the background is taken out, then each process keeps what its runs cost beyond its idle rate, never below zero', () => {
    const report = (wallMs: number, roles: CpuReport['roles']): CpuReport => ({
      wallMs,
      roles,
      machineBusyPct: 0,
      machineIowaitPct: 0,
      foreignPct: 0,
    });
    const background = report(5_000, {
      temporal: { ms: 150, pctOfCore: 3 }, // 30 ms/s idle
      relay: { ms: 500, pctOfCore: 10 }, // 100 ms/s idle
    });
    const step = report(10_000, {
      temporal: { ms: 1_000, pctOfCore: 10 },
      worker: { ms: 700, pctOfCore: 7 },
      relay: { ms: 800, pctOfCore: 8 },
    });
    expect(cpuPerRun(step, 70, background)).toEqual({
      temporal: (1_000 - 300) / 70,
      worker: 10, // no idle figure: all of it
      relay: 0, // less than its idle rate: clamped
    });
    expect(cpuPerRun(step, 0, background)).toBeNull();
  });

  it("when a stat line's command name holds spaces and parentheses, then it is parsed", () => {
    const line =
      '4242 (postgres: a (b) c) S 4200 4242 4242 0 -1 4194560 100 0 0 0 150 50 7 3 20 0 1 0 12345 1000 10 0';
    expect(parseProcStat(line)).toEqual({ pid: 4242, comm: 'postgres: a (b) c', ppid: 4200, ticks: 210 });
    expect(parseProcStat('garbage')).toBeUndefined();
  });

  it('when /proc/stat is read, then busy and total ticks come from its cpu line', () => {
    const text = 'cpu  100 5 50 800 20 1 2 3 0 0\ncpu0 50 2 25 400 10 0 1 1 0 0\nintr 1';
    expect(parseCpuTotals(text)).toEqual({ busy: 161, iowait: 20, total: 981 });
    expect(parseCpuTotals('nothing')).toBeUndefined();
  });

  it('when processes are classified, then the services are told apart by command line', () => {
    expect(classifyCommand(['/usr/bin/node', '--import', 'tsx', 'api/server.ts'])).toBe('api');
    expect(classifyCommand(['node', '--import', 'tsx', 'worker/main.ts'])).toBe('worker');
    expect(classifyCommand(['node', '--import', 'tsx', 'relay/main.ts'])).toBe('relay');
    expect(classifyCommand(['/cache/temporal-1.5.1/temporal', 'server', 'start-dev', '--port', '1'])).toBe(
      'temporal',
    );
    expect(classifyCommand(['/x/native/bin/postgres', '-D', '/tmp/pg'])).toBe('postgres');
    expect(classifyCommand(['postgres: postgres orders 127.0.0.1(5) idle'])).toBeUndefined();
    expect(classifyCommand(['/cache/nats-server', '-c', 'nats.conf'])).toBe('nats');
    expect(classifyCommand(['bash'])).toBeUndefined();
  });

  it('when a process is unclassified, then it counts for its nearest classified ancestor, below the root only', () => {
    const processes: ProcStat[] = [
      { pid: 1, comm: 'init', ppid: 0, ticks: 1_000 },
      { pid: 10, comm: 'node', ppid: 1, ticks: 500 }, // the bench (root)
      { pid: 11, comm: 'postgres', ppid: 10, ticks: 40 },
      { pid: 12, comm: 'postgres: backend', ppid: 11, ticks: 60 },
      { pid: 13, comm: 'node', ppid: 10, ticks: 70 },
      { pid: 14, comm: 'getconf', ppid: 10, ticks: 9 },
      { pid: 20, comm: 'postgres', ppid: 1, ticks: 999 }, // someone else's
    ];
    const roles: Record<number, 'postgres' | 'api'> = { 11: 'postgres', 13: 'api', 20: 'postgres' };
    expect(ticksByRole(processes, 10, (pid) => roles[pid])).toEqual({ postgres: 100, api: 70 });
  });

  it('when two samples are taken, then they give CPU per service and the share used by other work', () => {
    const at = (
      atMs: number,
      roles: CpuSample['roles'],
      [busy, iowait, total]: [number, number, number],
    ): CpuSample => ({
      atMs,
      roles,
      machine: { busy, iowait, total },
      msPerTick: 10,
      cores: 2,
    });
    // 1 s on 2 cores = 200 ticks; 150 busy, of which our processes used 500 + 250 ms.
    const report = cpuBetween(
      at(0, { api: 100, temporal: 1_000 }, [0, 0, 0]),
      at(1_000, { api: 600, temporal: 1_250 }, [150, 20, 200]),
    );
    expect(report.roles.api).toEqual({ ms: 500, pctOfCore: 50 });
    expect(report.roles.temporal).toEqual({ ms: 250, pctOfCore: 25 });
    expect(report.machineBusyPct).toBe(75);
    expect(report.machineIowaitPct).toBe(10);
    expect(report.foreignPct).toBeCloseTo(37.5, 5);
  });
});

describe('SVG chart', () => {
  it('when axes are drawn, then linear ticks are round and log bounds whole decades', () => {
    expect(linearTicks(0, 105)).toEqual([0, 20, 40, 60, 80, 100, 120]);
    expect(linearTicks(0, 10)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(logBounds([3, 450])).toEqual({ min: 1, max: 1_000 });
    expect(logBounds([])).toEqual({ min: 1, max: 10 });
    expect(logTicks(1, 100)).toEqual([1, 2, 5, 10, 20, 50, 100]);
  });

  it('when a chart is rendered, then each series is one polyline and unfinished (infinite) points hollow markers on the top edge', () => {
    const svg = renderChart({
      title: 'latency <p99> & rate',
      xLabel: 'offered rate',
      yLabel: 'ms',
      series: [
        {
          name: 'p50',
          color: '#111111',
          points: [
            { x: 20, y: 50 },
            { x: 10, y: 40 },
          ],
        },
        {
          name: 'p99',
          color: '#222222',
          dashed: true,
          points: [
            { x: 10, y: 90 },
            { x: 20, y: Infinity },
          ],
        },
        { name: 'empty', color: '#333333', points: [] },
      ],
      markers: [{ x: 15, label: 'saturation' }],
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg.match(/<circle [^>]*fill="#(111111|222222)"/g)).toHaveLength(3);
    expect(svg.match(/<circle [^>]*fill="#ffffff" stroke="#222222"/g)).toHaveLength(1);
    expect(svg).toContain('unfinished within the step');
    expect(svg).toContain('latency &lt;p99&gt; &amp; rate');
    expect(svg).toContain('stroke-dasharray="6 4"');
    expect(svg).toContain('saturation');
    expect(svg).not.toMatch(/NaN|Infinity/);
    // Points are drawn left to right whatever order they came in.
    const first = /<polyline[^>]*points="([\d.]+),/.exec(svg);
    expect(Number(first?.[1])).toBeLessThan(400);
  });

  it('when text holds XML special characters, then every one is escaped', () => {
    expect(escapeXml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;');
  });
});

describe('saga shape', () => {
  // What the step recorder reports while the bench replays a v3 saga (database steps local)
  // on the replay worker's own task queue.
  const replayQueue = 'fake_replay_queue-1';
  const call = (activity: string, local: boolean, taskQueue: string | null = null): RecordedCall => ({
    activity,
    args: [{ idempotencyKey: `order-1:${activity}` }],
    local,
    taskQueue,
  });
  const calls = [
    call('createOrder', true),
    call('reserveInventory', true),
    call('screenOrder', false),
    call('chargePayment', false, `${replayQueue}-payments`),
    call('createShipment', false),
    call('completeOrder', true),
  ];
  const steps = calls.map((recorded) => stepFromCall(recorded, replayQueue, 'orders'));

  it("when steps are recorded, then every one is kept, in order, local or not, with its arguments, on the saga's queues", () => {
    expect(steps.map(stepLabel)).toEqual([
      'createOrder [local]',
      'reserveInventory [local]',
      'screenOrder [orders]',
      'chargePayment [orders-payments]',
      'createShipment [orders]',
      'completeOrder [local]',
    ]);
    expect(steps[0]?.args).toEqual([{ idempotencyKey: 'order-1:createOrder' }]);
    // A queue not derived from the workflow's stays as it is.
    const fixed = stepFromCall(call('chargePayment', false, 'global-payments'), replayQueue, 'orders');
    expect(fixed.taskQueue).toBe('global-payments');
    expect(rebaseQueue('q-payments', 'q', 'r')).toBe('r-payments');
  });

  it("when steps are recorded, then they become a shape relative to the workflow's queue, which is described", () => {
    const shape = shapeOf(steps, 'orders');
    expect(shape).toEqual([
      { local: true },
      { local: true },
      { local: false, queueSuffix: '' },
      { local: false, queueSuffix: '-payments' },
      { local: false, queueSuffix: '' },
      { local: true },
    ]);
    expect(otherQueues(shape)).toEqual(['-payments']);
    expect(describeShape(shape)).toBe('3 local + 3 activities, 1 on a second task queue');
    expect(describeShape(shapeOf([{ local: false, taskQueue: 'elsewhere' }], 'orders'))).toBe(
      '1 activity, 1 on a second task queue',
    );
    expect(describeShape([{ local: true }, { local: false, queueSuffix: '' }])).toBe('1 local + 1 activity');
    expect(describeShape([{ local: true }])).toBe('1 local activity');
  });

  it('when the bare runs are planned, then the all-activities and all-local variants that differ from the saga are offered', () => {
    const variants = shapeVariants(shapeOf(steps, 'orders'));
    expect(variants.map((variant) => [variant.name, describeShape(variant.shape)])).toEqual([
      ['all activities', '6 activities, 1 on a second task queue'],
      ['all local', '6 local activities'],
    ]);
    // The saga before local activities: only the all-local variant is new, and the reverse.
    expect(shapeVariants(variants[0]!.shape).map((variant) => variant.name)).toEqual(['all local']);
    expect(shapeVariants(variants[1]!.shape).map((variant) => variant.name)).toEqual(['all activities']);
  });

  /** A hand-made v3 history: markers name each local activity, not its arguments. */
  function historyOf(chargeArgs: unknown[], localActivities: string[]): History {
    const payloads = (values: unknown[]) => ({
      payloads: values.map((value) => defaultPayloadConverter.toPayload(value)),
    });
    const marker = (activityType: string, backoff: unknown = null) => ({
      markerRecordedEventAttributes: {
        markerName: LOCAL_ACTIVITY_MARKER,
        details: { data: payloads([{ seq: 1, attempt: 1, activity_type: activityType, backoff }]) },
      },
    });
    const scheduled = (name: string, taskQueue: string, args: unknown[]) => ({
      activityTaskScheduledEventAttributes: {
        activityType: { name },
        taskQueue: { name: taskQueue },
        input: payloads(args),
      },
    });
    return {
      events: [
        {
          workflowExecutionStartedEventAttributes: {
            taskQueue: { name: 'orders' },
            input: payloads([{ orderId: '1' }]),
          },
        },
        { markerRecordedEventAttributes: { markerName: 'core_patch' } },
        marker('createOrder', { backoffDuration: { seconds: 1 } }), // an attempt that backed off
        ...localActivities.slice(0, -1).map((name) => marker(name)),
        scheduled('screenOrder', 'orders', steps[2]!.args),
        scheduled('chargePayment', 'orders-payments', chargeArgs),
        scheduled('createShipment', 'orders', steps[4]!.args),
        ...localActivities.slice(-1).map((name) => marker(name)),
      ],
    };
  }
  const localNames = ['createOrder', 'reserveInventory', 'completeOrder'];

  it('when a history is read, then its input, queue, activities and the local activities its markers name come out', () => {
    const facts = readHistory(historyOf(steps[3]!.args, localNames));
    expect(facts.input).toEqual({ orderId: '1' });
    expect(facts.taskQueue).toBe('orders');
    expect(facts.scheduled.map((step) => `${step.activity}@${step.taskQueue}`)).toEqual([
      'screenOrder@orders',
      'chargePayment@orders-payments',
      'createShipment@orders',
    ]);
    expect(facts.localActivities).toEqual(localNames);
    expect(facts.eventKinds).toMatchObject({ markerRecorded: 5, activityTaskScheduled: 3 });
    expect(disagreements(steps, facts)).toEqual([]);
  });

  it('when a replay does not match the history, then it is reported', () => {
    const otherArgs = readHistory(historyOf([{ idempotencyKey: 'order-2:chargePayment' }], localNames));
    expect(disagreements(steps, otherArgs)).toEqual([
      "the arguments of chargePayment differ from the history's",
    ]);
    const oneMarkerLess = readHistory(historyOf(steps[3]!.args, ['createOrder', 'completeOrder']));
    expect(disagreements(steps, oneMarkerLess).join()).toMatch(/local activities recorded .* markers/);
    const asActivities = steps.map((step) => ({ ...step, local: false, taskQueue: 'orders' }));
    expect(disagreements(asActivities, otherArgs).join()).toMatch(/not the ones scheduled/);
  });
});

/** A result with every phase missing; tests fill in what they look at. */
function emptyResult(overrides: Partial<BenchResult> = {}): BenchResult {
  return {
    schema: 3,
    mode: 'quick',
    startedAt: '2025-01-01T00:00:00.000Z',
    finishedAt: '2025-01-01T00:01:00.000Z',
    durationS: 60,
    machine: { cpuModel: 'Test CPU', cores: 2, memoryGiB: 4, os: 'Linux', node: 'v20' },
    contention: {
      loadAverageAtStart: [2.5, 2, 1],
      loadAverageAtEnd: [1, 1, 1],
      foreignCpuPctMean: 40,
      contended: true,
    },
    settings: {
      bounds: DEFAULT_BOUNDS,
      phaseOrder: [],
      worker: {},
      relay: {},
      logLevel: 'info',
      rateLimitMax: '1000000',
      embedded: { postgres: true, temporal: true, nats: true },
      workload: 'test',
    },
    saga: null,
    idle: null,
    happy: null,
    half: null,
    mix: null,
    hot: null,
    bare: null,
    direct: [],
    drain: null,
    ratios: { sagaOverBare: null, sagaOverDirect: null },
    perSaga: null,
    cpuMsPerSaga: null,
    cpuMsPerBareRun: null,
    notes: [],
    ...overrides,
  };
}

/** An idle step whose saga latencies are p50 / p99. */
function idleStep(p50: number, p99: number): StepRecord {
  const metrics = stepMetrics({ startedAtMs: 0, durationMs: 1_000, offeredPerS: 0 }, [], {});
  return {
    ...metrics,
    saga: { ...metrics.saga, p50, p99 },
    label: 'idle',
    sustained: true,
    probe: 'ladder',
    reasons: [],
    backlogAtStart: 0,
    cpu: undefined,
    cpuWhole: undefined,
  };
}

describe('report', () => {
  it('when latencies are formatted, then none is – and unfinished is ∞', () => {
    expect(formatMs(3.14159)).toBe('3.1');
    expect(formatMs(123.6)).toBe('124');
    expect(formatMs(Number.NaN)).toBe('–');
    expect(formatMs(Infinity)).toBe('∞');
  });

  it('when a markdown table is written, then pipes are escaped', () => {
    expect(markdownTable(['a', 'b'], [['1', 'x|y']])).toBe('| a | b |\n| --- | --- |\n| 1 | x\\|y |');
  });

  it('when a result misses phases, then it still renders', () => {
    const markdown = renderMarkdown(emptyResult({ notes: ['a note'] }));
    expect(markdown).toContain('Test CPU, 2 cores, 4 GiB');
    expect(markdown).toContain('load average at start 2.50 2.00 1.00');
    expect(markdown).toContain(
      '**Contended run**: load average 2.50 at start on 2 cores; other work used on average 40%',
    );
    expect(markdown).toContain('- a note');
  });

  it("when a report is rendered, then it names the saga's shape, each step's kind and queue, and the bare runs' shapes", () => {
    const markdown = renderMarkdown(
      emptyResult({
        saga: {
          steps: [
            { activity: 'createOrder', local: true, taskQueue: null },
            { activity: 'chargePayment', local: false, taskQueue: 'orders-payments' },
            { activity: 'createShipment', local: false, taskQueue: 'orders' },
          ],
          shape: '1 local + 2 activities, 1 on a second task queue',
          historyEvents: 30,
          eventKinds: {},
        },
        bare: {
          shape: '1 local + 2 activities, 1 on a second task queue',
          idle: idleStep(40, 60),
          variants: [
            { shape: '3 activities, 1 on a second task queue', idle: idleStep(90, 120) },
            { shape: '3 local activities', idle: idleStep(20, 30) },
          ],
          search: null,
        },
      }),
    );
    expect(markdown).toContain(
      'Saga happy path: 1 local + 2 activities, 1 on a second task queue (createOrder [local] → ' +
        'chargePayment [orders-payments] → createShipment [orders]), 30 history events.',
    );
    expect(markdown).toContain(
      "| bare Temporal (the saga's shape, no-op: 1 local + 2 activities, 1 on a second task queue), completed/s |",
    );
    expect(markdown).toContain(
      "| bare Temporal p50 / p99, idle: the saga's shape · 3 activities, 1 on a second task queue · " +
        '3 local activities | 40 / 60 ms · 90 / 120 ms · 20 / 30 ms |',
    );
  });
});

describe('result JSON', () => {
  it('when a result makes a round trip, then unfinished latencies stay infinite and empty statistics NaN', () => {
    const result = {
      idle: {
        saga: { count: 2, min: 5, mean: Infinity, p50: 5, p95: Infinity, p99: Infinity, max: Infinity },
      },
      half: { post: { count: 0, min: NaN, mean: NaN, p50: NaN, p95: NaN, p99: NaN, max: NaN } },
      ratios: { sagaOverBare: null },
    } as unknown as BenchResult;
    const text = stringifyResult(result);
    expect(text).toContain('"p99": 1e999');
    expect(text).toContain('"p50": null');
    expect(JSON.parse(text)).toBeTruthy(); // still plain JSON
    const back = parseResult(text);
    expect(back.idle?.saga.p99).toBe(Infinity);
    expect(back.idle?.saga.p50).toBe(5);
    expect(back.half?.post.p50).toBeNaN();
    expect(back.ratios.sagaOverBare).toBeNull();
  });

  it('when a schema 1 result (before local activities) is read, then it becomes schema 3, every step an activity', () => {
    const { schema: _schema, saga: _saga, bare: _bare, ...rest } = emptyResult();
    const v1 = {
      ...rest,
      schema: 1,
      saga: { activities: ['createOrder', 'completeOrder'], historyEvents: 20, eventKinds: {} },
      bare: { activities: 2, idle: idleStep(80, 90), localIdle: idleStep(30, 40), search: null },
    };
    const back = parseResult(JSON.stringify(v1));
    expect(back.schema).toBe(3);
    expect(back.perSaga).toBeNull();
    expect(back.hot).toBeNull();
    expect(back.saga).toEqual({
      steps: [
        { activity: 'createOrder', local: false, taskQueue: null },
        { activity: 'completeOrder', local: false, taskQueue: null },
      ],
      shape: '2 activities',
      historyEvents: 20,
      eventKinds: {},
    });
    expect(back.bare?.shape).toBe('2 activities');
    expect(back.bare?.idle?.saga.p50).toBe(80);
    expect(back.bare?.variants.map((variant) => [variant.shape, variant.idle.saga.p50])).toEqual([
      ['2 local activities', 30],
    ]);
    expect(renderMarkdown(back)).toContain('createOrder [?] → completeOrder [?]');
  });
});

describe('per saga counters', () => {
  const history = (events: object[]): History => ({ events });
  const marker = (markerName: string) => ({ markerRecordedEventAttributes: { markerName } });
  const saga = history([
    { workflowExecutionStartedEventAttributes: {} },
    { workflowTaskScheduledEventAttributes: {} },
    { workflowTaskStartedEventAttributes: {} },
    { workflowTaskCompletedEventAttributes: {} },
    marker(LOCAL_ACTIVITY_MARKER),
    marker(PATCH_MARKER),
    { upsertWorkflowSearchAttributesEventAttributes: {} },
    marker(LOCAL_ACTIVITY_MARKER),
    { activityTaskScheduledEventAttributes: {} },
    { activityTaskStartedEventAttributes: {} },
    { activityTaskCompletedEventAttributes: {} },
    { workflowTaskScheduledEventAttributes: {} },
    { workflowTaskStartedEventAttributes: {} },
    { workflowTaskCompletedEventAttributes: {} },
    marker('something_else'),
    { workflowExecutionCompletedEventAttributes: {} },
  ]);

  it('when a history is counted, then events, completed workflow tasks, activities, each kind of marker and upserts come out', () => {
    expect(countHistory(saga)).toEqual({
      events: 16,
      workflowTasks: 2,
      activities: 1,
      localActivities: 2,
      patchMarkers: 1,
      otherMarkers: 1,
      searchAttributeUpserts: 1,
    });
    expect(completedRun(saga)).toBe(true);
    expect(completedRun(history([{ workflowExecutionStartedEventAttributes: {} }]))).toBe(false);
  });

  it('when sampled sagas are summed up, then equal counts print as one integer and differing ones as mean (min–max)', () => {
    const one = countHistory(saga);
    const stats = counterStats([one, { ...one, events: 18 }])!;
    expect(formatCounter(stats.workflowTasks)).toBe('2');
    expect(formatCounter(stats.events)).toBe('17.0 (16–18)');
    expect(counterStats([])).toBeNull();
  });

  it("when transaction ids are read around a step, then the bench's own read is taken off and the rest divided by the sagas", () => {
    const writes = writeTransactions({ before: 1_000, after: 1_201, ms: 10_000 }, 20, 'everything');
    expect(writes).toMatchObject({ reads: 1, transactions: 200, sagas: 20, perSaga: 10, background: null });
    expect(writeTransactions({ before: 5, after: 6, ms: 1 }, 0, '').perSaga).toBeNaN();
    expect(() => writeTransactions({ before: 10, after: 5, ms: 1 }, 1, '')).toThrow(/not a window/);
    // With no load, 7 writes (8 ids less the read's own) in 2 s: about 35 of a 10 s window's.
    const idle = { before: 900, after: 908, ms: 2_000 };
    expect(writeTransactions({ before: 1_000, after: 1_201, ms: 10_000 }, 20, '', idle).background).toEqual({
      transactions: 7,
      ms: 2_000,
      inWindow: 35,
    });
  });

  it('when a sample is taken, then it is spread over the items, first and last included', () => {
    expect(spreadSample([1, 2, 3], 20)).toEqual([1, 2, 3]);
    expect(spreadSample([...Array(101).keys()], 5)).toEqual([0, 25, 50, 75, 100]);
  });
});

describe('bench workload', () => {
  it('when the catalog is listed, then it names every product once, sorted', () => {
    const skus = catalogSkus(CATALOG);
    expect(skus).toHaveLength(1_000);
    expect(skus[0]).toBe('BENCH-0001');
    expect(skus[999]).toBe('BENCH-1000');
    expect(new Set(skus).size).toBe(1_000);
  });

  it('when orders are drawn from a seed, then they are 1–3 distinct lines of 1–2 units, the same again from the same seed', () => {
    const draw = (seed: number) => {
      const next = orderLinesSource('spread', CATALOG, seededRng(seed));
      return Array.from({ length: 200 }, () => next());
    };
    const orders = draw(7);
    expect(draw(7)).toEqual(orders);
    expect(draw(8)).not.toEqual(orders);
    for (const lines of orders) {
      expect(lines.length).toBeGreaterThanOrEqual(1);
      expect(lines.length).toBeLessThanOrEqual(3);
      expect(new Set(lines.map((line) => line.sku)).size).toBe(lines.length);
      for (const { quantity } of lines) expect([1, 2]).toContain(quantity);
    }
    expect(new Set(orders.map((lines) => lines.length))).toEqual(new Set([1, 2, 3]));
    expect(spreadLines(seededRng(1), ['ONLY'], CATALOG)).toHaveLength(1);
    expect(orderLinesSource('hot', CATALOG, seededRng(1))()).toEqual([{ sku: 'BENCH-HOT', quantity: 1 }]);
  });

  it('when the direct baseline spreads a recipe, then each of its products gets a distinct catalog product, the same again from the same seed', () => {
    const recipe = ['BENCH-0007', 'BENCH-0420', 'BENCH-0999'];
    const draw = (seed: number) => {
      const rng = seededRng(seed);
      return Array.from({ length: 300 }, () => replacementProducts(recipe, catalogSkus(CATALOG), rng));
    };
    const runs = draw(4242);
    expect(draw(4242)).toEqual(runs);
    for (const products of runs) {
      expect([...products.keys()]).toEqual(recipe);
      expect(new Set(products.values()).size).toBe(recipe.length);
      for (const sku of products.values()) expect(catalogSkus(CATALOG)).toContain(sku);
    }
    // Spread: 300 runs × 3 lines land on many products, not on the recipe's three.
    expect(new Set(runs.flatMap((products) => [...products.values()])).size).toBeGreaterThan(500);
    expect(() => replacementProducts(recipe, ['ONLY', 'TWO'], seededRng(1))).toThrow(/catalog of 2/);
  });

  it('when a recipe is instantiated with other products, then the order id and each product change wherever they are named, and nothing else', () => {
    // A recipe naming its order and its two products in the input and in a step's arguments.
    const recipe = (orderId: string, [first, second]: [string, string]) => ({
      input: {
        orderId,
        items: [
          { sku: first, quantity: 2, unitPriceCents: 1000 },
          { sku: second, quantity: 1, unitPriceCents: 1000 },
        ],
        totalCents: 3000,
      },
      steps: [
        {
          activity: 'admitOrder',
          local: true,
          taskQueue: null,
          args: [{ key: `${orderId}:admit`, lines: [{ sku: first }, { sku: second }], note: 'BENCH-00100' }],
        },
      ],
    });
    const template = {
      orderId: 'order-1',
      ...recipe('order-1', ['BENCH-0001', 'BENCH-0010']),
    } as unknown as SagaTemplate;
    const products = new Map([
      ['BENCH-0001', 'BENCH-0500'],
      ['BENCH-0010', 'BENCH-0077'],
    ]);
    expect(instantiate(template, 'order-2', products)).toEqual(
      recipe('order-2', ['BENCH-0500', 'BENCH-0077']),
    );
    // In one pass: a product that replaces another is not replaced in turn.
    const chained = new Map([
      ['BENCH-0001', 'BENCH-0010'],
      ['BENCH-0010', 'BENCH-0500'],
    ]);
    expect(instantiate(template, 'order-4', chained).input.items.map((line) => line.sku)).toEqual([
      'BENCH-0010',
      'BENCH-0500',
    ]);
    expect(instantiate(template, 'order-3').input.items.map((line) => line.sku)).toEqual([
      'BENCH-0001',
      'BENCH-0010',
    ]);
  });
});

describe('bench options', () => {
  it('when no engine is given, then it is dev; cluster is accepted and anything else refused', () => {
    expect(loadBenchConfig([], {}).engine).toBe('dev');
    expect(loadBenchConfig(['--engine', 'cluster'], {}).engine).toBe('cluster');
    expect(() => loadBenchConfig(['--engine', 'prod'], {})).toThrow(ConfigError);
  });

  it('when --compare is given, then it takes exactly two files; a seed comes from --seed, else SEED, else the default', () => {
    expect(
      loadBenchConfig(['--compare', 'a.json', 'b.json'], {}).compare?.map((file) => file.split('/').pop()),
    ).toEqual(['a.json', 'b.json']);
    expect(() => loadBenchConfig(['--compare', 'a.json'], {})).toThrow(/two result files/);
    expect(() => loadBenchConfig(['stray'], {})).toThrow(ConfigError);
    expect(loadBenchConfig(['--seed', '12'], { SEED: '13' }).seed).toBe(12);
    expect(loadBenchConfig([], { SEED: '13' }).seed).toBe(13);
    expect(() => loadBenchConfig(['--seed', 'x'], {})).toThrow(ConfigError);
  });
});

describe('bench compare', () => {
  it('when two results are compared, then each figure sits side by side and what an older result lacks is —', () => {
    const older = parseResult(
      JSON.stringify({
        ...emptyResult({
          saga: {
            steps: [],
            shape: '3 local + 3 activities',
            historyEvents: 33,
            eventKinds: { workflowTaskCompleted: 4, upsertWorkflowSearchAttributes: 4 },
          },
          cpuMsPerSaga: { worker: 60, temporal: 100 },
        }),
        schema: 2,
        hot: undefined,
        perSaga: undefined,
      }),
    );
    const stats = counterStats([
      {
        events: 20,
        workflowTasks: 2,
        activities: 2,
        localActivities: 3,
        patchMarkers: 0,
        otherMarkers: 0,
        searchAttributeUpserts: 1,
      },
    ])!;
    const newer = emptyResult({
      perSaga: {
        step: 'half load',
        history: { sampled: 1, counters: stats },
        writeTransactions: writeTransactions({ before: 100, after: 191, ms: 5_000 }, 10, 'everything'),
      },
      cpuMsPerSaga: { worker: 30, temporal: 50 },
    });
    const table = compareTable(older, newer, ['before.json', 'after.json']);
    expect(table).toContain('| metric | before.json | after.json |');
    expect(table).toContain('| per saga: history events | 33 (first saga) | 20 |');
    expect(table).toContain('| per saga: workflow tasks | 4 (first saga) | 2 |');
    expect(table).toContain('| per saga: local activities | — | 3 |');
    expect(table).toContain('| per saga: Postgres write transactions | — | 9.0 |');
    expect(table).toContain("| per saga: CPU ms, all processes (not the bench's) | 160.0 | 80.0 |");
  });

  it("when an older result's direct runs bought the recipe's own products, then they compare with the newer same-products runs, not with the spread ones", () => {
    const run = (concurrency: number, sagasPerS: number) => ({
      concurrency,
      sagas: sagasPerS * 8,
      sagasPerS,
      latency: summarize([10, 20]),
      errors: 0,
    });
    const older = emptyResult({ direct: [run(1, 38), run(4, 30)] });
    const newer = emptyResult({ direct: [run(4, 120), run(16, 150)], directSameProducts: [run(1, 60)] });
    const table = compareTable(older, newer, ['before.json', 'after.json']);
    expect(table).toContain(
      '| direct (same SQL, no Temporal), products spread, sagas/s | — | 150 (16 at once) |',
    );
    expect(table).toContain(
      '| direct, the same products every run, sagas/s | 38.0 (1 at once) | 60.0 (1 at once) |',
    );
  });

  it('when a result has per saga counters, then the summary shows each against its target', () => {
    const stats = counterStats([
      {
        events: 33,
        workflowTasks: 4,
        activities: 3,
        localActivities: 3,
        patchMarkers: 3,
        otherMarkers: 0,
        searchAttributeUpserts: 4,
      },
    ])!;
    const markdown = renderMarkdown(
      emptyResult({
        perSaga: {
          step: 'half load',
          history: { sampled: 1, counters: stats },
          writeTransactions: writeTransactions(
            { before: 100, after: 301, ms: 8_000 },
            10,
            'the api and the worker',
            { before: 50, after: 61, ms: 4_000 },
          ),
        },
      }),
    );
    expect(markdown).toContain(
      '| per happy saga at 50 %: history events (history of 1 sagas) | 33 | ≤ 20 | missed |',
    );
    expect(markdown).toContain('| per happy saga at 50 %: patch markers (history of 1 sagas) | 3 |  |  |');
    expect(markdown).toMatch(
      /Postgres write transactions .* \| 20\.0 \(200 for 10 sagas; about 20 with time, not sagas\) \| ≤ 10 \| missed \|/,
    );
    expect(markdown).toContain('Included: the api and the worker.');
    expect(markdown).toContain('about 20 of the 200 came with the 8.0 s the step took');
  });
});
