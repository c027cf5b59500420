// Engine layer: typed wrapper over the native classifier and its ClassBench helpers (parsers, trace
// generator, native timing loops). Rules cross the boundary as one Uint32Array (per rule:
// priority, value, then lo/hi per dimension) and lookups write into a caller-owned Uint32Array, so
// a batch costs one native call and no allocation. Used by the benchmark (src/cli/commands/bench.ts)
// and the ClassBench proof tests; the packet engine reaches the classifier from C++ directly.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { loadNative } from './native.js';

/** Opaque native handle (an External with a type tag). */
export type ClassifierHandle = { readonly __brand: 'ZtbClassifier' };

export interface ClassifierBuildOptions {
  /** Cap on the bit-vector tables in bytes (default 64 MiB); groups are split to stay under it. */
  memoryBudget?: number;
  /** Rules per group, a multiple of 256 (default 16384). */
  maxGroupRules?: number;
  simd?: 'auto' | 'scalar' | 'avx2';
  /** Build the linear-scan oracle instead (baseline and expected results). */
  linear?: boolean;
}

export interface ClassifierInfo {
  kind: 'bitvector' | 'linear';
  nDims: number;
  nRules: number;
  memoryBytes: number;
  groups: number;
  simd: 'avx2' | 'scalar';
  /** 'ok' or the first broken invariant. */
  invariants: string;
}

export interface ClassbenchTrace {
  /** n * 5 words: src, dst, sport, dport, proto. */
  keys: Uint32Array;
  /** Last column: 1-based first match (primary) or 0-based generating rule (alt-6field). */
  last: Uint32Array;
  /** True for the 7-column alt-6field format. */
  alt: boolean;
}

export interface LoopTiming {
  seconds: number;
  lookups: number;
  checksum: number;
}

export interface UpdateTiming {
  updates: number;
  seconds: number;
  updatesPerSec: number;
  /** Updates per second of the writer thread's CPU time (load-independent cost of an update). */
  updatesPerWriterCpuSec: number;
  writerCpuSeconds: number;
  lookupsPerSec: number;
  rebuilds: number;
  maxDelta: number;
  invariants: string;
}

declare module './native.js' {
  interface NativeAddon {
    classifierBuild(rules: Uint32Array, nDims: number, options?: ClassifierBuildOptions): ClassifierHandle;
    classifierLookupBatch(handle: ClassifierHandle, keys: Uint32Array, out: Uint32Array): number;
    classifierMatches(handle: ClassifierHandle, key: Uint32Array, minPriority: number, limit: number): Uint32Array;
    classifierInfo(handle: ClassifierHandle): ClassifierInfo;
    classbenchParseRules(text: string | Buffer): Uint32Array;
    classbenchParseTrace(text: string | Buffer): ClassbenchTrace;
    classbenchGenerateTrace(rules: Uint32Array, n: number, seed: number): Uint32Array;
    benchLookupLoop(handle: ClassifierHandle, keys: Uint32Array, iterations: number, batchSize: number, cpu?: number): LoopTiming;
    benchUpdates(rules: Uint32Array, nDims: number, keys: Uint32Array, nUpdates: number): UpdateTiming;
    cpuHasAvx2(): boolean;
  }
}

/** The value a lookup reports when no rule matches. */
export const NO_MATCH = 0xffffffff;
export const CLASSBENCH_DIMS = 5;

/** A built classifier (bit-vector or the linear oracle). */
export class NativeClassifier {
  readonly handle: ClassifierHandle;
  readonly nDims: number;

  private constructor(handle: ClassifierHandle, nDims: number) {
    this.handle = handle;
    this.nDims = nDims;
  }

  static build(rules: Uint32Array, nDims: number, options: ClassifierBuildOptions = {}): NativeClassifier {
    return new NativeClassifier(loadNative().classifierBuild(rules, nDims, options), nDims);
  }

  /** Writes the first match of each key (n * nDims words) into out[0..n); returns n. */
  lookupBatch(keys: Uint32Array, out: Uint32Array): number {
    return loadNative().classifierLookupBatch(this.handle, keys, out);
  }

  /** Every match of one key with priority >= minPriority, in order, at most `limit`. */
  matches(key: Uint32Array, minPriority = 0, limit = 0xffffffff): Array<{ priority: number; value: number }> {
    const flat = loadNative().classifierMatches(this.handle, key, minPriority, limit);
    const out: Array<{ priority: number; value: number }> = [];
    for (let i = 0; i < flat.length; i += 2) out.push({ priority: flat[i]!, value: flat[i + 1]! });
    return out;
  }

  info(): ClassifierInfo {
    return loadNative().classifierInfo(this.handle);
  }
}

/** Reads a ClassBench file, gunzipping `*.gz` (the vendored 10K and large sets are compressed). */
export function readClassbenchFile(path: string): Buffer {
  const raw = readFileSync(path);
  return path.endsWith('.gz') ? gunzipSync(raw) : raw;
}

export function parseClassbenchRules(text: string | Buffer): Uint32Array {
  return loadNative().classbenchParseRules(text);
}

export function parseClassbenchTrace(text: string | Buffer): ClassbenchTrace {
  return loadNative().classbenchParseTrace(text);
}

/** ClassBench-style trace from rule corners (seeded): n * 5 words. */
export function generateClassbenchTrace(rules: Uint32Array, n: number, seed: number): Uint32Array {
  return loadNative().classbenchGenerateTrace(rules, n, seed);
}

/** Native-only timing loop (batchSize 0 = one first_match per key); cpu pins the thread (Linux). */
export function benchLookupLoop(c: NativeClassifier, keys: Uint32Array, iterations: number, batchSize: number, cpu = -1): LoopTiming {
  return loadNative().benchLookupLoop(c.handle, keys, iterations, batchSize, cpu);
}

/** True when the classifier runs its AVX2 kernels on this CPU. */
export function cpuHasAvx2(): boolean {
  return loadNative().cpuHasAvx2();
}

export function benchUpdates(rules: Uint32Array, nDims: number, keys: Uint32Array, nUpdates: number): UpdateTiming {
  return loadNative().benchUpdates(rules, nDims, keys, nUpdates);
}
