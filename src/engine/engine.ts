// Engine layer: NativeEngine, the typed wrapper over the addon's engine (native/core/engine.h).
// It compiles an IR with compile-native.ts, loads it (an atomic ruleset swap that keeps states),
// and runs batches of raw frames or pre-parsed headers through caller-owned typed arrays — no
// object or call per packet. `evaluate()` is the one-packet convenience used by tests and the CLI;
// it returns the same EvalResult as the reference evaluator.
import type { Ir } from '../policy/ir.js';
import {
  addrWords,
  compileNative,
  InterfaceIds,
  NONE,
  TenantIds,
  wordsToValue,
  type CompiledProgram,
  type NativeLoadOptions,
} from './compile-native.js';
import { loadNative, NativeError, type NativeAddon } from './native.js';
import type { EvalPacket, EvalReason, EvalResult } from './packet.js';
import { formatAddr, parseAddr } from './reference-addr.js';

export type { NativeLoadOptions } from './compile-native.js';

/** Words per packet in processHeaders' input (native/binding/engine_binding.cc). */
export const HEADER_WORDS = 16;
/** Translated tuple words per packet: src[4], dst[4], sport, dport. */
export const XLAT_WORDS = 10;
/** Match rule ids reported per packet at most (native kMaxMatchIds). */
export const MAX_MATCH_IDS = 8;
export const RULE_COUNTER_FIELDS = 8;
export const TENANT_COUNTER_FIELDS = 3;

/** Reason codes of out.reason, in native order. */
export const NATIVE_REASONS = ['rule', 'state', 'default', 'skip', 'normalize', 'state-limit', 'malformed', 'non-ip'] as const;
export type NativeReason = (typeof NATIVE_REASONS)[number];
/** MalformedReason names, in native order (engine stats). */
export const MALFORMED_REASONS = [
  'none',
  'truncated-ethernet',
  'truncated-vlan',
  'truncated-ip',
  'bad-ip-version',
  'bad-ip-header-length',
  'bad-ip-total-length',
  'truncated-transport',
  'ipv6-extension-limit',
  'truncated-ipv6-extension',
  'truncated-vxlan',
  'bad-vxlan',
] as const;

export interface NativeEngineOptions {
  /** State table capacity (default 100,000; a full table refuses new states: 'state-limit'). */
  maxStates?: number;
  /** Dead states freed per batch at most (default 64). 0 = only on lookup and when full. */
  expireBudget?: number;
  /** Run the slow twin (the linear walk of the flattened program) instead of the classifier. */
  linearWalk?: boolean;
  /** Cap on compiled boxes (default 1,048,576). */
  maxBoxes?: number;
  /** Count pf's per-rule `evaluations` (skip steps on, like the reference evaluator) by replaying
   *  the walk for every packet that reaches the rules (default false: it costs a visit per rule
   *  the walk reaches; docs/engine.md gives the measured cost). Off, `evaluations` stays 0. */
  countEvaluations?: boolean;
}

/** Caller-owned outputs of one batch. Optional arrays are filled only when present. */
export interface BatchOutputs {
  verdict: Uint8Array;
  ruleId: Uint32Array;
  tenant: Uint16Array | Uint32Array;
  reason: Uint8Array;
  anchorRuleId?: Uint32Array;
  /** bit 0 state created, bit 1 translated. */
  flags?: Uint8Array;
  /** 0 none, 1 rst, 2 icmp-unreach. */
  returnAction?: Uint8Array;
  xlat?: Uint32Array;
  nMatch?: Uint8Array;
  matchIds?: Uint32Array;
}

export interface NativeRuleCounters {
  ruleId: number;
  matches: number;
  /** pf's evaluations (rules visited by the walk, skip steps on); 0 unless countEvaluations. */
  evaluations: number;
  packets: [number, number];
  bytes: [number, number];
  states: number;
  statesTotal: number;
}

export interface NativeTenantCounters {
  tenant: string;
  packets: number;
  bytes: number;
  blocked: number;
}

export interface NativeEngineStats {
  packets: number;
  bytes: number;
  statesCreated: number;
  statesExpired: number;
  stateLimitDrops: number;
  states: number;
  reasons: Record<NativeReason, number>;
  malformed: Record<string, number>;
}

/** One state as the engine holds it (inspection; `forward` is the creating packet's tuple before
 *  translation, `reply` what a reply looks like). */
export interface NativeStateView {
  af: 'inet' | 'inet6';
  proto: number;
  dir: 'in' | 'out';
  ifindex: number;
  ruleId: number;
  anchorRuleId: number | null;
  /** TCP: pf TCPS_* numbers; UDP/other: 0 none, 1 single, 2 multiple. */
  peers: [number, number];
  createdMs: number;
  lastMs: number;
  timeoutMs: number;
  packets: [number, number];
  bytes: [number, number];
  bound: boolean;
  forward: { src: string; sport: number; dst: string; dport: number };
  reply: { src: string; sport: number; dst: string; dport: number };
}

const STATE_FIELDS = 36;

export interface NativeCounters {
  rules: NativeRuleCounters[];
  tenants: NativeTenantCounters[];
  stats: NativeEngineStats;
}

type Handle = { readonly __engine: unique symbol };

declare module './native.js' {
  interface NativeAddon {
    engineCreate(opts: NativeEngineOptions): Handle;
    engineLoad(h: Handle, compiled: CompiledProgram): void;
    engineProcessFrames(
      h: Handle,
      buf: ArrayBuffer | Uint8Array,
      offsets: Uint32Array,
      lengths: Uint32Array,
      ifindex: Uint16Array | Uint32Array,
      dir: Uint8Array,
      nowMs: number,
      out: BatchOutputs,
    ): number;
    engineProcessHeaders(h: Handle, headers: Uint32Array, nowMs: number, out: BatchOutputs): number;
    engineRuleCounters(h: Handle, out: Float64Array, tenants: Float64Array): number;
    engineStats(h: Handle, out: Float64Array): number;
    engineExpire(h: Handle, nowMs: number, budget: number): number;
    engineStates(h: Handle, out: Float64Array): number;
    engineClose(h: Handle): void;
  }
}

/** Allocates full outputs for batches of up to n packets. */
export function allocOutputs(n: number): Required<BatchOutputs> {
  return {
    verdict: new Uint8Array(n),
    ruleId: new Uint32Array(n),
    tenant: new Uint32Array(n),
    reason: new Uint8Array(n),
    anchorRuleId: new Uint32Array(n),
    flags: new Uint8Array(n),
    returnAction: new Uint8Array(n),
    xlat: new Uint32Array(n * XLAT_WORDS),
    nMatch: new Uint8Array(n),
    matchIds: new Uint32Array(n * MAX_MATCH_IDS),
  };
}

const STATS_WORDS = 6 + NATIVE_REASONS.length + MALFORMED_REASONS.length;

function isIcmp(proto: number): boolean {
  return proto === 1 || proto === 58;
}

export class NativeEngine {
  readonly #n: NativeAddon;
  #h: Handle | null;
  readonly #ids = new InterfaceIds();
  readonly #tenants = new TenantIds();
  #compiled: CompiledProgram | null = null;
  readonly #one = { headers: new Uint32Array(HEADER_WORDS), out: allocOutputs(1) };
  #stats = new Float64Array(STATS_WORDS);

  constructor(opts: NativeEngineOptions = {}) {
    for (const [k, v] of Object.entries(opts)) {
      if (!['maxStates', 'expireBudget', 'linearWalk', 'maxBoxes', 'countEvaluations'].includes(k)) {
        throw new NativeError(`unknown engine option '${k}'`, 'ERR_ZTB_INVALID_ARGUMENT');
      }
      if (k === 'linearWalk' || k === 'countEvaluations') {
        if (typeof v !== 'boolean') throw new NativeError(`engine option ${k} must be a boolean`, 'ERR_ZTB_INVALID_ARGUMENT');
      } else if (!Number.isInteger(v) || (v as number) < 0) {
        throw new NativeError(`engine option ${k} must be a non-negative integer`, 'ERR_ZTB_INVALID_ARGUMENT');
      }
    }
    this.#n = loadNative();
    this.#h = this.#n.engineCreate(opts);
  }

  #handle(): Handle {
    if (!this.#h) throw new NativeError('the engine was closed', 'ERR_ZTB_CLOSED');
    return this.#h;
  }

  /** Compiles and swaps in a new ruleset; existing states are kept (with their old rule ids). */
  load(ir: Ir, opts: NativeLoadOptions = {}): CompiledProgram {
    const h = this.#handle();
    if (opts.ifindex) this.#ids.setKernelIndices(opts.ifindex);
    const compiled = compileNative(ir, opts, this.#ids, this.#tenants);
    this.#n.engineLoad(h, compiled);
    this.#compiled = compiled;
    return compiled;
  }

  /** The engine's id for an interface name (the value processFrames' ifindex array carries). */
  interfaceId(name: string): number {
    return this.#ids.id(name);
  }

  get tenantNames(): readonly string[] {
    return this.#compiled?.tenantNames ?? [];
  }

  processFrames(
    buf: ArrayBuffer | Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    ifindex: Uint16Array | Uint32Array,
    dir: Uint8Array,
    nowMs: number,
    out: BatchOutputs,
  ): number {
    return this.#n.engineProcessFrames(this.#handle(), buf, offsets, lengths, ifindex, dir, nowMs, out);
  }

  processHeaders(headers: Uint32Array, nowMs: number, out: BatchOutputs): number {
    return this.#n.engineProcessHeaders(this.#handle(), headers, nowMs, out);
  }

  /** Writes one EvalPacket as a header record at `headers[i * HEADER_WORDS]`. */
  encodeHeader(pkt: EvalPacket, headers: Uint32Array, i: number): void {
    const src = parseAddr(pkt.src);
    const dst = parseAddr(pkt.dst);
    if (!src || !dst || src.af !== pkt.af || dst.af !== pkt.af) {
      throw new NativeError(`packet addresses ${pkt.src} > ${pkt.dst} are not ${pkt.af} addresses`, 'ERR_ZTB_PACKET');
    }
    for (const [n, v, max] of [
      ['sport', pkt.sport, 65535],
      ['dport', pkt.dport, 65535],
      ['proto', pkt.proto, 255],
      ['tcpFlags', pkt.tcpFlags, 255],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || v > max) throw new NativeError(`${n} ${v} out of range 0-${max}`, 'ERR_ZTB_PACKET');
    }
    const o = i * HEADER_WORDS;
    headers[o] = this.#ids.id(pkt.ifname);
    headers[o + 1] = (pkt.dir === 'out' ? 1 : 0) | ((pkt.af === 'inet' ? 4 : 6) << 8) | (pkt.proto << 16) | ((pkt.tcpFlags & 0xff) << 24);
    headers.set(addrWords(src.af, src.value), o + 2);
    headers.set(addrWords(dst.af, dst.value), o + 6);
    headers[o + 10] = (pkt.sport & 0xffff) | ((pkt.dport & 0xffff) << 16);
    const hasPorts = pkt.proto === 6 || pkt.proto === 17;
    const hasIcmp = isIcmp(pkt.proto) && pkt.icmpType !== undefined;
    let bits = (hasPorts ? 1 : 0) | (hasIcmp ? 2 : 0);
    if (pkt.vlan !== undefined) bits |= 8;
    if (pkt.vni !== undefined) bits |= 16;
    if (pkt.icmpCode !== undefined) bits |= 32;
    headers[o + 11] = ((pkt.icmpType ?? 0) & 0xff) | (((pkt.icmpCode ?? 0) & 0xff) << 8) | (bits << 16);
    headers[o + 12] = pkt.vlan ?? 0;
    headers[o + 13] = pkt.vni ?? 0;
    headers[o + 14] = pkt.length ?? 64;
    headers[o + 15] = 0;
  }

  /** Decodes packet i of a batch's full outputs into an EvalResult (af: the packet's family). */
  decodeResult(out: Required<BatchOutputs>, i: number, af: 'inet' | 'inet6'): EvalResult {
    const reason = NATIVE_REASONS[out.reason[i]!];
    if (reason === undefined || reason === 'malformed' || reason === 'non-ip') {
      throw new NativeError(`packet ${i} has no EvalResult (native reason ${reason ?? out.reason[i]})`, 'ERR_ZTB_PACKET');
    }
    const rule = out.ruleId[i]!;
    const anchor = out.anchorRuleId[i]!;
    const tenant = out.tenant[i]!;
    const nm = out.nMatch[i]!;
    const flags = out.flags[i]!;
    const ret = out.returnAction[i]!;
    let translated: EvalResult['translated'] = null;
    if (flags & 2) {
      const x = out.xlat.subarray(i * XLAT_WORDS, (i + 1) * XLAT_WORDS);
      translated = {
        src: formatAddr({ af, value: wordsToValue(af, x.subarray(0, 4)) }),
        sport: x[8]!,
        dst: formatAddr({ af, value: wordsToValue(af, x.subarray(4, 8)) }),
        dport: x[9]!,
      };
    }
    const names = this.tenantNames;
    return {
      verdict: out.verdict[i] ? 'block' : 'pass',
      reason: reason as EvalReason,
      ruleId: rule === NONE ? null : rule,
      anchorRuleId: anchor === NONE ? null : anchor,
      matchRuleIds: Array.from(out.matchIds.subarray(i * MAX_MATCH_IDS, i * MAX_MATCH_IDS + nm)),
      stateCreated: (flags & 1) !== 0,
      returnAction: ret === 1 ? 'rst' : ret === 2 ? 'icmp-unreach' : null,
      tenant: tenant === NONE ? null : (names[tenant] ?? null),
      translated,
    };
  }

  /** One packet through the engine (a one-packet batch). */
  evaluate(pkt: EvalPacket, nowMs: number): EvalResult {
    const { headers, out } = this.#one;
    this.encodeHeader(pkt, headers, 0);
    this.#n.engineProcessHeaders(this.#handle(), headers, nowMs, out);
    return this.decodeResult(out, 0, pkt.af);
  }

  /** Frees at most `budget` dead states; returns how many. */
  expire(nowMs: number, budget = 1 << 30): number {
    return this.#n.engineExpire(this.#handle(), nowMs, budget);
  }

  counters(): NativeCounters {
    const h = this.#handle();
    const nRules = this.#compiled?.nRules ?? 0;
    const names = this.tenantNames;
    const r = new Float64Array(Math.max(1, nRules * RULE_COUNTER_FIELDS));
    const t = new Float64Array(Math.max(1, names.length * TENANT_COUNTER_FIELDS));
    this.#n.engineRuleCounters(h, r, t);
    this.#n.engineStats(h, this.#stats);
    const s = this.#stats;
    const rules: NativeRuleCounters[] = [];
    for (let i = 0; i < nRules; i++) {
      const o = i * RULE_COUNTER_FIELDS;
      rules.push({
        ruleId: i,
        matches: r[o]!,
        evaluations: r[o + 7]!,
        packets: [r[o + 1]!, r[o + 2]!],
        bytes: [r[o + 3]!, r[o + 4]!],
        states: r[o + 5]!,
        statesTotal: r[o + 6]!,
      });
    }
    const reasons = {} as Record<NativeReason, number>;
    NATIVE_REASONS.forEach((n, i) => (reasons[n] = s[6 + i]!));
    const malformed: Record<string, number> = {};
    MALFORMED_REASONS.forEach((n, i) => {
      if (i > 0) malformed[n] = s[6 + NATIVE_REASONS.length + i]!;
    });
    return {
      rules,
      tenants: names.map((tenant, i) => ({
        tenant,
        packets: t[i * 3]!,
        bytes: t[i * 3 + 1]!,
        blocked: t[i * 3 + 2]!,
      })),
      stats: {
        packets: s[0]!,
        bytes: s[1]!,
        statesCreated: s[2]!,
        statesExpired: s[3]!,
        stateLimitDrops: s[4]!,
        states: s[5]!,
        reasons,
        malformed,
      },
    };
  }

  /** Every state in the table (dead ones not yet freed included), at most `max`. */
  states(max = 100_000): NativeStateView[] {
    const buf = new Float64Array(Math.max(1, max) * STATE_FIELDS);
    const n = this.#n.engineStates(this.#handle(), buf);
    const out: NativeStateView[] = [];
    for (let i = 0; i < n; i++) {
      const o = buf.subarray(i * STATE_FIELDS, (i + 1) * STATE_FIELDS);
      const af = o[0] === 6 ? 'inet6' : 'inet';
      const addr = (at: number): string => formatAddr({ af, value: wordsToValue(af, Array.from(o.subarray(at, at + 4))) });
      out.push({
        af,
        proto: o[1]!,
        dir: o[2] ? 'out' : 'in',
        ifindex: o[3]!,
        ruleId: o[4]!,
        anchorRuleId: o[5] === NONE ? null : o[5]!,
        peers: [o[6]!, o[7]!],
        createdMs: o[8]!,
        lastMs: o[9]!,
        timeoutMs: o[10]!,
        packets: [o[11]!, o[12]!],
        bytes: [o[13]!, o[14]!],
        bound: o[19] === 1,
        forward: { src: addr(20), sport: o[15]!, dst: addr(24), dport: o[16]! },
        reply: { src: addr(28), sport: o[17]!, dst: addr(32), dport: o[18]! },
      });
    }
    return out;
  }

  /** Frees the native engine now (it is also freed when garbage-collected). */
  close(): void {
    if (this.#h) this.#n.engineClose(this.#h);
    this.#h = null;
  }
}
