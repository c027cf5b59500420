// Engine layer: the one place that loads the compiled addon (build/Release/ztb_native.node). It
// checks the ABI version, hands the addon our NativeError class so native failures arrive as typed
// errors with a `code`, and, when loading fails, reports every path it tried and how to rebuild.
// Feature modules extend the NativeAddon interface by declaration merging
// (`declare module '../engine/native.js' { interface NativeAddon { ... } }`), so the exports stay
// typed without this file knowing every feature.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ZtbError } from '../errors.js';

export const NATIVE_ABI_VERSION = 1;

export class NativeError extends ZtbError {
  constructor(message: string, code = 'ERR_ZTB_NATIVE') {
    super(code, message);
  }
}

export interface NativeAddon {
  abiVersion(): number;
  setErrorClass(ctor: new (message: string, code: string) => Error): void;
}

let cached: NativeAddon | undefined;

function candidatePaths(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const roots = new Set<string>();
  // src/engine or dist/engine -> package root is two levels up.
  roots.add(resolve(here, '..', '..'));
  if (process.env.ZTB_NATIVE_DIR) roots.add(resolve(process.env.ZTB_NATIVE_DIR));
  const out: string[] = [];
  for (const r of roots) {
    out.push(join(r, 'build', 'Release', 'ztb_native.node'));
    out.push(join(r, 'build', 'Debug', 'ztb_native.node'));
  }
  return out;
}

export function loadNative(): NativeAddon {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const p of candidatePaths()) {
    if (!existsSync(p)) {
      tried.push(`${p} (missing)`);
      continue;
    }
    let mod: NativeAddon;
    try {
      mod = require(p) as NativeAddon;
    } catch (e) {
      tried.push(`${p} (${(e as Error).message})`);
      continue;
    }
    const abi = mod.abiVersion();
    if (abi !== NATIVE_ABI_VERSION) {
      tried.push(`${p} (ABI ${abi}, expected ${NATIVE_ABI_VERSION})`);
      continue;
    }
    mod.setErrorClass(NativeError);
    cached = mod;
    return mod;
  }
  throw new NativeError(
    `cannot load the native addon; tried:\n  ${tried.join('\n  ')}\n` +
      'rebuild it with `npm run build` (needs g++, make, python3 and Node headers)',
    'ERR_ZTB_NATIVE_LOAD',
  );
}
