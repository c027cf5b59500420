// Backend layer (pf ABI): a tiny C struct layout calculator. Each OpenBSD release's pfvar.h structs
// are written down as ordered field lists (releases.ts); this file computes offsets, sizes and
// alignment with the LP64 (amd64) C rules, flattens them into dotted field paths
// ("src.addr.v.a.mask") and gives a bounds-checked view for reading and writing those fields in a
// Buffer. Computing offsets instead of typing them in means a new release is a field-list edit, and
// the golden tests check the computed numbers against the ones pfvar.h implies.

/** Scalar C types as they exist on OpenBSD/amd64. `ptr`, `long` and `time_t` are 8 bytes. */
export type ScalarName = 'u8' | 'u16' | 'u32' | 'i32' | 'u64' | 'i64' | 'ptr';

export type CType =
  | { kind: 'scalar'; name: ScalarName }
  | { kind: 'array'; of: CType; count: number }
  | { kind: 'struct'; name: string; fields: readonly (readonly [string, CType])[] }
  | { kind: 'union'; name: string; fields: readonly (readonly [string, CType])[] };

const SCALAR_SIZE: Record<ScalarName, number> = { u8: 1, u16: 2, u32: 4, i32: 4, u64: 8, i64: 8, ptr: 8 };

export const u8: CType = { kind: 'scalar', name: 'u8' };
export const u16: CType = { kind: 'scalar', name: 'u16' };
export const u32: CType = { kind: 'scalar', name: 'u32' };
export const i32: CType = { kind: 'scalar', name: 'i32' };
export const u64: CType = { kind: 'scalar', name: 'u64' };
export const i64: CType = { kind: 'scalar', name: 'i64' };
export const ptr: CType = { kind: 'scalar', name: 'ptr' };
export const array = (of: CType, count: number): CType => ({ kind: 'array', of, count });
export const chars = (count: number): CType => array(u8, count);
export const struct = (name: string, fields: (readonly [string, CType])[]): CType => ({ kind: 'struct', name, fields });
export const union = (name: string, fields: (readonly [string, CType])[]): CType => ({ kind: 'union', name, fields });

export function alignOf(t: CType): number {
  switch (t.kind) {
    case 'scalar':
      return SCALAR_SIZE[t.name];
    case 'array':
      return alignOf(t.of);
    case 'struct':
    case 'union':
      return Math.max(1, ...t.fields.map(([, f]) => alignOf(f)));
  }
}

const roundUp = (n: number, a: number): number => Math.ceil(n / a) * a;

export function sizeOf(t: CType): number {
  switch (t.kind) {
    case 'scalar':
      return SCALAR_SIZE[t.name];
    case 'array':
      return sizeOf(t.of) * t.count;
    case 'union':
      return roundUp(Math.max(0, ...t.fields.map(([, f]) => sizeOf(f))), alignOf(t));
    case 'struct': {
      let off = 0;
      for (const [, f] of t.fields) off = roundUp(off, alignOf(f)) + sizeOf(f);
      return roundUp(off, alignOf(t));
    }
  }
}

/** One flattened field: where it is, how big, and (for arrays) the element size and type. */
export interface FieldInfo {
  offset: number;
  size: number;
  type: CType;
  /** For arrays: element size and count; for everything else elemSize === size, count === 1. */
  elemSize: number;
  count: number;
}

export interface StructLayout {
  name: string;
  size: number;
  align: number;
  type: CType;
  fields: ReadonlyMap<string, FieldInfo>;
}

function flattenInto(t: CType, base: number, prefix: string, out: Map<string, FieldInfo>): void {
  if (prefix) {
    const isArray = t.kind === 'array';
    out.set(prefix, {
      offset: base,
      size: sizeOf(t),
      type: t,
      elemSize: isArray ? sizeOf(t.of) : sizeOf(t),
      count: isArray ? t.count : 1,
    });
  }
  if (t.kind === 'struct') {
    let off = 0;
    for (const [name, f] of t.fields) {
      off = roundUp(off, alignOf(f));
      flattenInto(f, base + off, prefix ? `${prefix}.${name}` : name, out);
      off += sizeOf(f);
    }
  } else if (t.kind === 'union') {
    for (const [name, f] of t.fields) flattenInto(f, base, prefix ? `${prefix}.${name}` : name, out);
  } else if (t.kind === 'array' && (t.of.kind === 'struct' || t.of.kind === 'union')) {
    // Arrays of structs (pf_rule.skip[]): index the elements as "skip[3]".
    const es = sizeOf(t.of);
    for (let i = 0; i < t.count; i++) flattenInto(t.of, base + i * es, `${prefix}[${i}]`, out);
  }
}

export function layoutOf(t: CType): StructLayout {
  if (t.kind !== 'struct' && t.kind !== 'union') throw new TypeError('layoutOf needs a struct or union');
  const fields = new Map<string, FieldInfo>();
  flattenInto(t, 0, '', fields);
  return { name: t.name, size: sizeOf(t), align: alignOf(t), type: t, fields };
}

/**
 * A typed view over one struct instance inside a Buffer. Every access names a field path that must
 * exist in the layout and checks the value's range, so an encoder bug is an exception, not a
 * silently corrupted kernel argument. Integers are little-endian (amd64) except where the caller
 * asks for network order (`setU16be`, used for ports and nothing else).
 */
export class StructView {
  readonly layout: StructLayout;
  readonly buf: Buffer;
  readonly base: number;

  constructor(layout: StructLayout, buf?: Buffer, base = 0) {
    this.layout = layout;
    this.buf = buf ?? Buffer.alloc(layout.size);
    this.base = base;
    if (base < 0 || base + layout.size > this.buf.length) {
      throw new RangeError(`${layout.name} (${layout.size} bytes) does not fit at ${base} in a ${this.buf.length}-byte buffer`);
    }
  }

  field(path: string): FieldInfo {
    const f = this.layout.fields.get(path);
    if (!f) throw new TypeError(`struct ${this.layout.name} has no field ${path}`);
    return f;
  }

  /** Absolute offset in the buffer of element `idx` of `path`. */
  offsetOf(path: string, idx = 0, width?: number): number {
    const f = this.field(path);
    if (!Number.isInteger(idx) || idx < 0 || idx >= f.count) throw new RangeError(`${path}[${idx}] out of range`);
    if (width !== undefined && width !== f.elemSize) {
      throw new TypeError(`${this.layout.name}.${path} is ${f.elemSize} bytes wide, not ${width}`);
    }
    return this.base + f.offset + idx * f.elemSize;
  }

  setU8(path: string, v: number, idx = 0): this {
    checkInt(path, v, 0, 0xff);
    this.buf.writeUInt8(v, this.offsetOf(path, idx, 1));
    return this;
  }
  setU16(path: string, v: number, idx = 0): this {
    checkInt(path, v, 0, 0xffff);
    this.buf.writeUInt16LE(v, this.offsetOf(path, idx, 2));
    return this;
  }
  /** Network byte order: pf keeps rule ports as the packet carries them. */
  setU16be(path: string, v: number, idx = 0): this {
    checkInt(path, v, 0, 0xffff);
    this.buf.writeUInt16BE(v, this.offsetOf(path, idx, 2));
    return this;
  }
  setU32(path: string, v: number, idx = 0): this {
    checkInt(path, v, 0, 0xffffffff);
    this.buf.writeUInt32LE(v, this.offsetOf(path, idx, 4));
    return this;
  }
  setI32(path: string, v: number, idx = 0): this {
    checkInt(path, v, -0x80000000, 0x7fffffff);
    this.buf.writeInt32LE(v, this.offsetOf(path, idx, 4));
    return this;
  }
  setU64(path: string, v: bigint, idx = 0): this {
    this.buf.writeBigUInt64LE(v, this.offsetOf(path, idx, 8));
    return this;
  }
  /** A NUL-terminated C string; refuses strings that would not leave room for the NUL. */
  setString(path: string, s: string): this {
    const f = this.field(path);
    const bytes = Buffer.from(s, 'utf8');
    if (bytes.length >= f.size) {
      throw new RangeError(`${this.layout.name}.${path}: "${s}" is ${bytes.length} bytes, the field holds at most ${f.size - 1}`);
    }
    const at = this.base + f.offset;
    this.buf.fill(0, at, at + f.size);
    bytes.copy(this.buf, at);
    return this;
  }
  setBytes(path: string, bytes: Uint8Array): this {
    const f = this.field(path);
    if (bytes.length > f.size) throw new RangeError(`${this.layout.name}.${path}: ${bytes.length} bytes > ${f.size}`);
    const at = this.base + f.offset;
    if (bytes.length < f.size) this.buf.fill(0, at + bytes.length, at + f.size);
    this.buf.set(bytes, at);
    return this;
  }

  u8(path: string, idx = 0): number {
    return this.buf.readUInt8(this.offsetOf(path, idx, 1));
  }
  u16(path: string, idx = 0): number {
    return this.buf.readUInt16LE(this.offsetOf(path, idx, 2));
  }
  u16be(path: string, idx = 0): number {
    return this.buf.readUInt16BE(this.offsetOf(path, idx, 2));
  }
  u32(path: string, idx = 0): number {
    return this.buf.readUInt32LE(this.offsetOf(path, idx, 4));
  }
  i32(path: string, idx = 0): number {
    return this.buf.readInt32LE(this.offsetOf(path, idx, 4));
  }
  u64(path: string, idx = 0): bigint {
    return this.buf.readBigUInt64LE(this.offsetOf(path, idx, 8));
  }
  string(path: string): string {
    const f = this.field(path);
    const at = this.base + f.offset;
    const raw = this.buf.subarray(at, at + f.size);
    const nul = raw.indexOf(0);
    return raw.subarray(0, nul < 0 ? raw.length : nul).toString('utf8');
  }
  bytes(path: string): Buffer {
    const f = this.field(path);
    const at = this.base + f.offset;
    return this.buf.subarray(at, at + f.size);
  }
}

function checkInt(path: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${path}: ${v} is outside ${lo}..${hi}`);
}
