import {
  ConfigError,
  duration,
  hostPort,
  integer,
  list,
  loadOrExit,
  logLevel,
  optionalString,
  parseDuration,
  requireString,
  splitUrls,
  url,
  urls,
} from '../../lib/env';
import { loadTemporalConnection } from '../../lib/temporal-connection';

/** The error a reader throws, so its message can be checked in full. */
function errorOf(read: () => unknown): ConfigError {
  try {
    read();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, but the value was accepted');
}

describe('strings', () => {
  test('when a required variable is missing or blank, then the error names it', () => {
    expect(errorOf(() => requireString({}, 'DATABASE_URL')).message).toBe(
      'DATABASE_URL: is required but not set',
    );
    expect(errorOf(() => requireString({ DATABASE_URL: '  ' }, 'DATABASE_URL')).variable).toBe(
      'DATABASE_URL',
    );
  });

  test('when a value has surrounding spaces, then they are trimmed', () => {
    expect(requireString({ HOST: ' 0.0.0.0 ' }, 'HOST')).toBe('0.0.0.0');
  });

  test('when an optional variable is unset or blank, then the fallback applies', () => {
    expect(optionalString({}, 'TEMPORAL_NAMESPACE', 'default')).toBe('default');
    expect(optionalString({ TEMPORAL_NAMESPACE: '' }, 'TEMPORAL_NAMESPACE', 'default')).toBe('default');
    expect(optionalString({}, 'TEMPORAL_API_KEY')).toBeUndefined();
    expect(optionalString({ TEMPORAL_NAMESPACE: 'orders' }, 'TEMPORAL_NAMESPACE', 'default')).toBe('orders');
  });

  test('when a list is given, then it splits on commas and drops empty items', () => {
    expect(list({ API_TOKENS: 'a, b,,c ,' }, 'API_TOKENS')).toEqual(['a', 'b', 'c']);
    expect(list({}, 'API_TOKENS')).toEqual([]);
  });
});

describe('integers', () => {
  test('when unset, then the fallback; when set, then the number', () => {
    expect(integer({}, 'PORT', 3000)).toBe(3000);
    expect(integer({ PORT: '8080' }, 'PORT', 3000)).toBe(8080);
    expect(integer({ OFFSET: '-5' }, 'OFFSET', 0)).toBe(-5);
  });

  test('when not a whole number, then a one-line error quotes the value', () => {
    for (const raw of ['3.5', 'abc', '1e3', '0x10', '12abc']) {
      const error = errorOf(() => integer({ PORT: raw }, 'PORT', 3000));
      expect(error.message).toBe(`PORT: must be an integer, got "${raw}"`);
    }
  });

  test('when out of range or unsafe, then the error states the range', () => {
    expect(errorOf(() => integer({ PORT: '70000' }, 'PORT', 3000, { min: 1, max: 65535 })).message).toBe(
      'PORT: must be an integer between 1 and 65535, got "70000"',
    );
    expect(errorOf(() => integer({ N: '0' }, 'N', 1, { min: 1 })).variable).toBe('N');
    expect(errorOf(() => integer({ N: '9007199254740993' }, 'N', 1)).variable).toBe('N');
  });
});

describe('durations', () => {
  test('when given with a unit, then parsed into milliseconds', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('15m')).toBe(900_000);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration(' 2h ')).toBe(7_200_000);
  });

  test('when malformed, then not a duration', () => {
    for (const raw of ['', '24', 'h', '1.5h', '-1h', '1 h', '1w', '1H'])
      expect(parseDuration(raw)).toBeUndefined();
  });

  test('when unset, then the fallback, keeping its text', () => {
    expect(duration({}, 'APPROVAL_TIMEOUT', '24h')).toEqual({ text: '24h', ms: 86_400_000 });
    expect(duration({ APPROVAL_TIMEOUT: '90s' }, 'APPROVAL_TIMEOUT', '24h')).toEqual({
      text: '90s',
      ms: 90_000,
    });
  });

  test('when malformed or zero, then a one-line error with an example', () => {
    for (const raw of ['soon', '0s']) {
      const error = errorOf(() => duration({ APPROVAL_TIMEOUT: raw }, 'APPROVAL_TIMEOUT', '24h'));
      expect(error.message).toBe(
        `APPROVAL_TIMEOUT: must be a duration such as 30s, 15m or 24h, got "${raw}"`,
      );
    }
  });
});

describe('URLs and addresses', () => {
  test('when the scheme is allowed, then the URL comes back as given', () => {
    const raw = 'postgres://app:secret@db:5432/orders';
    expect(url({ DATABASE_URL: raw }, 'DATABASE_URL', ['postgres', 'postgresql'])).toBe(raw);
    expect(url({}, 'NATS_URL', ['nats'], true)).toBeUndefined();
  });

  test('when missing, not a URL, or of another scheme, then the error names the variable', () => {
    expect(errorOf(() => url({}, 'DATABASE_URL', ['postgres'])).message).toBe(
      'DATABASE_URL: is required but not set',
    );
    expect(errorOf(() => url({ DATABASE_URL: 'not a url' }, 'DATABASE_URL', ['postgres'])).message).toBe(
      'DATABASE_URL: is not a valid URL',
    );
    expect(errorOf(() => url({ NATS_URL: 'http://x:4222' }, 'NATS_URL', ['nats', 'tls'])).message).toBe(
      'NATS_URL: must use nats or tls, got http',
    );
  });

  test('when NATS_URL lists several nodes, then each is checked and splitUrls lists them', () => {
    const raw = 'nats://127.0.0.1:4222, nats://127.0.0.1:4223,nats://127.0.0.1:4224';
    expect(urls({ NATS_URL: raw }, 'NATS_URL', ['nats', 'tls'])).toBe(raw);
    expect(splitUrls(raw)).toEqual([
      'nats://127.0.0.1:4222',
      'nats://127.0.0.1:4223',
      'nats://127.0.0.1:4224',
    ]);
    expect(urls({}, 'NATS_URL', ['nats'], true)).toBeUndefined();
    expect(
      errorOf(() => urls({ NATS_URL: 'nats://a:4222,http://b:4222' }, 'NATS_URL', ['nats'])).message,
    ).toBe('NATS_URL: must use nats, got http');
    expect(errorOf(() => urls({ NATS_URL: ' , ' }, 'NATS_URL', ['nats'])).message).toBe(
      'NATS_URL: is not a valid URL',
    );
  });

  test('when the URL carries a password, then the error does not repeat it', () => {
    const error = errorOf(() =>
      url({ DATABASE_URL: 'mysql://u:hunter2@db/x' }, 'DATABASE_URL', ['postgres']),
    );
    expect(error.message).not.toContain('hunter2');
  });

  test('when a host:port is given, then accepted; otherwise rejected with the value', () => {
    expect(hostPort({ TEMPORAL_ADDRESS: 'temporal.internal:7233' }, 'TEMPORAL_ADDRESS')).toBe(
      'temporal.internal:7233',
    );
    expect(hostPort({ TEMPORAL_ADDRESS: '[::1]:7233' }, 'TEMPORAL_ADDRESS')).toBe('[::1]:7233');
    expect(hostPort({}, 'TEMPORAL_ADDRESS', '127.0.0.1:7233')).toBe('127.0.0.1:7233');
    expect(errorOf(() => hostPort({ TEMPORAL_ADDRESS: 'http://t:7233' }, 'TEMPORAL_ADDRESS')).message).toBe(
      'TEMPORAL_ADDRESS: must be host:port, got "http://t:7233"',
    );
    expect(errorOf(() => hostPort({}, 'TEMPORAL_ADDRESS')).variable).toBe('TEMPORAL_ADDRESS');
  });
});

describe('log level', () => {
  test('when unset, then info; when known, then kept; when unknown, then rejected', () => {
    expect(logLevel({})).toBe('info');
    expect(logLevel({ LOG_LEVEL: 'debug' })).toBe('debug');
    expect(errorOf(() => logLevel({ LOG_LEVEL: 'loud' })).message).toMatch(
      /^LOG_LEVEL: must be one of .*, got "loud"$/,
    );
  });
});

describe('every error', () => {
  test('when raised, then its message is one line starting with the variable', () => {
    const errors = [
      errorOf(() => requireString({}, 'A')),
      errorOf(() => integer({ B: 'x' }, 'B', 0)),
      errorOf(() => duration({ C: 'x' }, 'C', '1s')),
      errorOf(() => url({ D: 'x' }, 'D', ['http'])),
      errorOf(() => hostPort({ E: 'x' }, 'E')),
      errorOf(() => logLevel({ LOG_LEVEL: 'x' })),
    ];
    for (const error of errors) {
      expect(error.message).not.toContain('\n');
      expect(error.message.startsWith(`${error.variable}: `)).toBe(true);
    }
  });
});

describe('loadOrExit', () => {
  test('when loading succeeds, then its value is returned', () => {
    expect(loadOrExit(() => 42)).toBe(42);
  });

  test('when a ConfigError is thrown, then one line goes to stderr and the process exits 1', () => {
    const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const exit = jest.spyOn(process, 'exit').mockImplementation(() => {
      throw new Error('exit called');
    });
    try {
      expect(() => loadOrExit(() => requireString({}, 'DATABASE_URL'))).toThrow('exit called');
      expect(write).toHaveBeenCalledWith('configuration error: DATABASE_URL: is required but not set\n');
      expect(exit).toHaveBeenCalledWith(1);
    } finally {
      write.mockRestore();
      exit.mockRestore();
    }
  });

  test('when another error is thrown, then it propagates untouched', () => {
    const bug = new TypeError('bug');
    expect(() =>
      loadOrExit(() => {
        throw bug;
      }),
    ).toThrow(bug);
  });
});

describe('loadTemporalConnection (api, worker, replay and bench read the same)', () => {
  const address = { TEMPORAL_ADDRESS: 'temporal:7233' };

  it('when only the address is set, then plain TCP to the default namespace', () => {
    expect(loadTemporalConnection(address)).toEqual({ address: 'temporal:7233', namespace: 'default' });
  });

  it('when an API key is set, then TLS is on even without certificates (Temporal Cloud)', () => {
    expect(loadTemporalConnection({ ...address, TEMPORAL_API_KEY: 'k', TEMPORAL_NAMESPACE: 'ns' })).toEqual({
      address: 'temporal:7233',
      namespace: 'ns',
      apiKey: 'k',
      tls: {},
    });
  });

  it('when a certificate comes without its key, then a ConfigError names the missing one', () => {
    expect(
      errorOf(() => loadTemporalConnection({ ...address, TEMPORAL_TLS_CERT: '/c.pem' })).message,
    ).toMatch(/TEMPORAL_TLS_KEY/);
  });

  it('when a file cannot be read, then a ConfigError names the variable and the path', () => {
    const error = errorOf(() =>
      loadTemporalConnection({ ...address, TEMPORAL_TLS_CA: '/nonexistent/ca.pem' }),
    );
    expect(error.message).toMatch(/TEMPORAL_TLS_CA/);
    expect(error.message).toMatch(/\/nonexistent\/ca\.pem/);
  });
});
