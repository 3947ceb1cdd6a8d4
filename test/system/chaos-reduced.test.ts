/**
 * The reduced chaos run, inside `npm test`: `npm run test:chaos -- --reduced` as a child
 * process, exactly as an operator runs it (its own Postgres, Temporal dev server and NATS,
 * api, worker and relay as processes it kills and restarts). Every drill runs: worker
 * SIGKILLs, Postgres crash-restart, Temporal restart, NATS down, relay SIGKILL mid-batch,
 * the Idempotency-Key storm. The test then reads the run's report and asserts what the
 * drills promise, so a failure names the drill and the broken invariant.
 *
 * The seed is fixed (tools/fixtures/seed.ts), so a red run is red again on the same code;
 * `SEED=<n>` or `SEED=random` asks for another. It is printed; reproduce a failure with
 * `npm run test:chaos -- --reduced --seed <seed>`.
 */
import { DRILLS } from '../../tools/chaos/drills';
import { expectCleanRun, runReducedChaos } from '../support/chaos-run';

/** Seen: 140–260 s on 2 cores; the run's own watchdog ends it well before this. */
const RUN_TIMEOUT_MS = 15 * 60_000;

describe('chaos drills, reduced run', () => {
  it(
    'after every drill, every saga is at rest and every invariant holds: stock and money conserved, ledger keys applied once, each committed event in the stream exactly once and in order',
    async () => {
      const run = await runReducedChaos('dev');
      const drills = Object.keys(DRILLS);
      expectCleanRun(
        run,
        drills,
        drills.filter((drill) => !['baseline', 'idempotency-storm'].includes(drill)),
      );
    },
    RUN_TIMEOUT_MS,
  );
});
