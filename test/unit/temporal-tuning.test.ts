import { devServerDynamicConfigFlags, temporalDynamicConfigText } from '../../tools/dev/temporal-tuning';

describe('the Temporal dynamic config every engine runs with (deploy/temporal/dynamicconfig.yaml)', () => {
  it('reaches the dev server as one --dynamic-config-value flag per key, the value as JSON', () => {
    const flags = devServerDynamicConfigFlags(temporalDynamicConfigText());
    expect(flags).toEqual([
      '--dynamic-config-value',
      'system.enableActivityEagerExecution=true',
      '--dynamic-config-value',
      'history.transferProcessorMaxPollRPS=1000',
    ]);
  });

  it('turns an empty file into no flags', () => {
    expect(devServerDynamicConfigFlags('# nothing overridden\n')).toEqual([]);
  });

  it('refuses a value with constraints, which the dev server flag cannot carry, instead of dropping it', () => {
    const text = 'limit.maxIDLength:\n  - value: 255\n    constraints: { namespace: default }\n';
    expect(() => devServerDynamicConfigFlags(text)).toThrow(/limit\.maxIDLength must have exactly one value/);
  });

  it('refuses a key whose entry is not a list of one value', () => {
    expect(() => devServerDynamicConfigFlags('limit.maxIDLength: 255\n')).toThrow(
      /limit\.maxIDLength must have exactly one value/,
    );
  });

  it('refuses a key with several values', () => {
    const text = 'limit.maxIDLength:\n  - value: 255\n  - value: 100\n';
    expect(() => devServerDynamicConfigFlags(text)).toThrow(/limit\.maxIDLength must have exactly one value/);
  });
});
