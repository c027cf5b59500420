import { describe, expect, it } from 'vitest';
import { loadNative, NATIVE_ABI_VERSION, NativeError } from '../src/engine/native.js';

describe('native addon loader', () => {
  it('loads the addon and checks its ABI version', () => {
    const n = loadNative();
    expect(n.abiVersion()).toBe(NATIVE_ABI_VERSION);
  });
  it('NativeError carries a code', () => {
    const e = new NativeError('x', 'ERR_ZTB_LIMIT');
    expect(e.code).toBe('ERR_ZTB_LIMIT');
    expect(e).toBeInstanceOf(Error);
  });
});
