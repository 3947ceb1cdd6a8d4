/**
 * Who a bearer token belongs to and what it may do (CONTRACT §2). Three sources, combined:
 * - API_TOKENS: static tokens with every scope (development), principal `static`;
 * - API_KEYS_FILE: `{"keys":[{"id","sha256","scopes"}]}`, tokens kept only as sha256 hashes;
 * - AUTH_JWKS_URL + AUTH_ISSUER + AUTH_AUDIENCE: JWTs (RS256/ES256) verified with `jose`
 *   against the issuer's JWKS (cached, refetched for an unknown `kid`), principal `sub`,
 *   scopes from the space-separated `scope` claim.
 * Tokens are compared as sha256 digests with timingSafeEqual against every candidate, so
 * the time taken says nothing about which token, or how much of it, matched.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { ConfigError, list, optionalString, url, type Env } from '../../lib/env';

export const SCOPES = ['orders:read', 'orders:write', 'orders:approve', 'catalog:write'] as const;
export type Scope = (typeof SCOPES)[number];
const isScope = (value: string): value is Scope => (SCOPES as readonly string[]).includes(value);

/** A caller the API recognised. `id` is what decisions and logs record; never a token. */
export interface Principal {
  id: string;
  source: 'static' | 'api-key' | 'jwt' | 'none';
  scopes: ReadonlySet<Scope>;
}

export interface ApiKey {
  id: string;
  /** sha256 of the token, 32 bytes. */
  digest: Buffer;
  scopes: Scope[];
}

export interface JwtSettings {
  jwksUrl: string;
  issuer: string;
  audience: string;
}

export interface AuthSettings {
  /** API_TOKENS. */
  staticTokens: string[];
  /** API_KEYS_FILE, read and checked at start. */
  apiKeys: ApiKey[];
  jwt?: JwtSettings;
}

/** Whether any source is configured; none: no authentication, every caller has every scope. */
export const authEnabled = (settings: AuthSettings): boolean =>
  settings.staticTokens.length > 0 || settings.apiKeys.length > 0 || settings.jwt !== undefined;

/** API_TOKENS, API_KEYS_FILE, AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE. */
export function loadAuthSettings(env: Env): AuthSettings {
  const keysFile = optionalString(env, 'API_KEYS_FILE');
  const jwksUrl = url(env, 'AUTH_JWKS_URL', ['https', 'http'], true);
  const issuer = optionalString(env, 'AUTH_ISSUER');
  const audience = optionalString(env, 'AUTH_AUDIENCE');
  const jwtSet = [jwksUrl, issuer, audience].filter((value) => value !== undefined).length;
  if (jwtSet > 0 && jwtSet < 3) {
    const missing = [
      ['AUTH_JWKS_URL', jwksUrl],
      ['AUTH_ISSUER', issuer],
      ['AUTH_AUDIENCE', audience],
    ].find(([, value]) => value === undefined)![0]!;
    throw new ConfigError(missing, 'AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE must be set together');
  }
  return {
    staticTokens: list(env, 'API_TOKENS'),
    apiKeys: keysFile === undefined ? [] : readApiKeys(keysFile),
    ...(jwksUrl && issuer && audience ? { jwt: { jwksUrl, issuer, audience } } : {}),
  };
}

/** Reads and checks API_KEYS_FILE; every problem is a ConfigError naming the variable. */
export function readApiKeys(path: string): ApiKey[] {
  const fail = (problem: string): never => {
    throw new ConfigError('API_KEYS_FILE', `${path}: ${problem}`);
  };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return fail('cannot read the file');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return fail('is not JSON');
  }
  const entries = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(entries)) return fail('expected {"keys":[{"id","sha256","scopes"}]}');
  const keys: ApiKey[] = [];
  for (const [index, entry] of (entries as unknown[]).entries()) {
    const { id, sha256, scopes } = (entry ?? {}) as { id?: unknown; sha256?: unknown; scopes?: unknown };
    const at = `keys[${index}]`;
    if (typeof id !== 'string' || !/^[\w.:@-]{1,64}$/.test(id))
      fail(`${at}.id must be 1-64 of A-Z a-z 0-9 _ . : @ -`);
    if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/i.test(sha256))
      fail(`${at}.sha256 must be 64 hex digits`);
    if (!Array.isArray(scopes) || scopes.length === 0) fail(`${at}.scopes must list at least one scope`);
    for (const scope of scopes as unknown[]) {
      if (typeof scope !== 'string' || !isScope(scope)) {
        fail(`${at}.scopes: unknown scope ${JSON.stringify(scope)} (known: ${SCOPES.join(', ')})`);
      }
    }
    if (keys.some((key) => key.id === id)) fail(`${at}.id "${id as string}" is listed twice`);
    keys.push({ id: id as string, digest: Buffer.from(sha256 as string, 'hex'), scopes: scopes as Scope[] });
  }
  return keys;
}

/** Why a token was not accepted: the caller's fault (401) or the identity provider's (503). */
export class TokenRejected extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'TokenRejected';
  }
}
export class IdentityProviderUnavailable extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'IdentityProviderUnavailable';
  }
}

/** Leeway for `exp` and `nbf` between our clock and the issuer's. */
export const CLOCK_TOLERANCE_SECONDS = 30;
/** How long a JWKS fetch may take before the request answers 503. */
const JWKS_TIMEOUT_MS = 5_000;
/** The least time between two JWKS fetches (a flood of unknown `kid`s cannot hammer the issuer). */
const JWKS_COOLDOWN_MS = 30_000;
const ALGORITHMS = ['RS256', 'ES256'];
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]*$/;

export type Authenticate = (token: string) => Promise<Principal | undefined>;

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();
const ALL_SCOPES: ReadonlySet<Scope> = new Set(SCOPES);

/**
 * The verifier over the configured sources: resolves the principal, undefined for a token
 * no source knows, or throws TokenRejected (a JWT that fails verification) /
 * IdentityProviderUnavailable (the JWKS cannot be fetched).
 */
export function createAuthenticator(
  settings: AuthSettings,
  options: { jwks?: JWTVerifyGetKey; jwksCooldownMs?: number } = {},
): Authenticate {
  const staticDigests = settings.staticTokens.map(sha256);
  const jwt = settings.jwt;
  // jose caches the key set, refetches it when a token names an unknown `kid` (a rotated
  // key), at most once per cooldown, and after maxAge.
  const jwks =
    options.jwks ??
    (jwt
      ? createRemoteJWKSet(new URL(jwt.jwksUrl), {
          timeoutDuration: JWKS_TIMEOUT_MS,
          cooldownDuration: options.jwksCooldownMs ?? JWKS_COOLDOWN_MS,
        })
      : undefined);

  return async (token) => {
    const presented = sha256(token);
    // Every candidate is compared, whatever matched before it.
    let staticMatch = false;
    for (const digest of staticDigests) staticMatch = timingSafeEqual(digest, presented) || staticMatch;
    let keyMatch: ApiKey | undefined;
    for (const key of settings.apiKeys) {
      if (timingSafeEqual(key.digest, presented)) keyMatch ??= key;
    }
    if (keyMatch) return { id: keyMatch.id, source: 'api-key', scopes: new Set(keyMatch.scopes) };
    if (staticMatch) return { id: 'static', source: 'static', scopes: ALL_SCOPES };
    if (!jwt || !jwks || !JWT_SHAPE.test(token)) return undefined;
    return verifyJwt(token, jwt, jwks);
  };
}

async function verifyJwt(token: string, jwt: JwtSettings, jwks: JWTVerifyGetKey): Promise<Principal> {
  try {
    const { payload } = await jwtVerify(token, jwks, {
      issuer: jwt.issuer,
      audience: jwt.audience,
      algorithms: ALGORITHMS,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ['exp', 'sub'],
    });
    const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(isScope) : [];
    return { id: payload.sub!, source: 'jwt', scopes: new Set(scopes) };
  } catch (error) {
    if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid) {
      throw new IdentityProviderUnavailable(error.message);
    }
    if (error instanceof joseErrors.JOSEError) throw new TokenRejected(describeJoseError(error));
    // fetch() failing (connection refused, DNS): the JWKS is unreachable.
    throw new IdentityProviderUnavailable(error instanceof Error ? error.message : String(error));
  }
}

/** A short, token-free reason for logs and the 401's detail. */
function describeJoseError(error: InstanceType<typeof joseErrors.JOSEError>): string {
  if (error instanceof joseErrors.JWTExpired) return 'the token has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return 'the token is not valid yet';
    return `the token's ${error.claim} claim is not accepted`;
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'the token is not signed with RS256 or ES256';
  if (error instanceof joseErrors.JWKSNoMatchingKey)
    return "the token's signing key is not in the issuer's key set";
  if (error instanceof joseErrors.JWSSignatureVerificationFailed)
    return "the token's signature does not verify";
  return 'the token is not a valid JWT';
}
