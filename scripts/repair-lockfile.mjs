#!/usr/bin/env node
// The npm registry mirror this project is developed against serves only some platforms'
// prebuilt binaries (for example @swc/core-darwin-arm64 answers 404), so `npm install`
// here leaves those optional packages out of package-lock.json, and `npm ci` then refuses
// the lockfile ("Missing: … from lock file") on every machine.
// This adds the missing entries: name, version, optional, and the os/cpu/libc that the
// package name states, so npm skips them on other platforms and fetches them by version
// on theirs. Run it after any `npm install` that changes the lockfile; `npm ci` in CI
// fails loudly if it was forgotten.
import { readFileSync, writeFileSync } from 'node:fs';

const LOCK = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(LOCK, 'utf8'));
const packages = lock.packages;

const OS = ['darwin', 'linux', 'win32', 'android', 'freebsd', 'openharmony'];
const CPU = { arm64: 'arm64', x64: 'x64', arm: 'arm', ia32: 'ia32', ppc64: 'ppc64', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64' };

/** `@scope/pkg-linux-arm-musleabihf` → { os: ['linux'], cpu: ['arm'], libc: ['musl'] } */
function platformOf(name) {
  const parts = name.split('/').pop().split('-');
  const osIndex = parts.findIndex((p) => OS.includes(p));
  if (osIndex < 0) return undefined;
  const cpu = CPU[parts[osIndex + 1]];
  if (!cpu) return undefined;
  const abi = parts.slice(osIndex + 2).join('-');
  const libc = /^musl/.test(abi) ? ['musl'] : /^gnu/.test(abi) && parts[osIndex] === 'linux' ? ['glibc'] : undefined;
  return { os: [parts[osIndex]], cpu: [cpu], ...(libc ? { libc } : {}) };
}

let added = 0;
for (const [path, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const nested = `${path ? `${path}/` : ''}node_modules/${name}`;
    if (packages[nested] || packages[`node_modules/${name}`]) continue;
    const platform = platformOf(name);
    if (!platform || !/^\d+\.\d+\.\d+/.test(version)) {
      console.error(`cannot derive a lock entry for ${name}@${version} (needed by ${path || 'the root'})`);
      process.exitCode = 1;
      continue;
    }
    packages[`node_modules/${name}`] = { version, dev: entry.dev, optional: true, ...platform };
    if (!entry.dev) delete packages[`node_modules/${name}`].dev;
    added++;
  }
}
writeFileSync(LOCK, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`repair-lockfile: added ${added} platform entr${added === 1 ? 'y' : 'ies'}`);
