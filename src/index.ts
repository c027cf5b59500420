// Public library surface: re-exports only.
export * from './errors.js';
export type * from './policy/ir.js';
export { PolicyError, type Diagnostic } from './policy/errors.js';
export { loadNative, NativeError } from './engine/native.js';
