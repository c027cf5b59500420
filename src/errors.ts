// Shared error base for every layer. Each layer defines its own subclass (PolicyError with source
// positions, NativeError with a native status code, NetlinkError with errno and object name,
// BackendError for kernel backends) so callers can branch on `code` without parsing messages; the
// CLI prints `message` of a ZtbError without a stack trace and maps it to an exit code.
export class ZtbError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}
