// Backend layer (nftables): typed errors. NftRenderError is a policy the nftables encoding cannot
// express (names the rule and its source position); NftCommandError is a failed `nft` run (the
// command, its exit status and what nft printed, with the first line of nft's own diagnostic);
// NftUnavailableError says which prerequisite is missing (root, the nft binary, netns support).
import { ZtbError } from '../../errors.js';
import type { SourcePos } from '../../policy/ir.js';

export class NftRenderError extends ZtbError {
  readonly pos: SourcePos | null;
  constructor(message: string, pos?: SourcePos | null) {
    super('ERR_ZTB_NFT_RENDER', pos ? `${pos.file}:${pos.line}:${pos.col}: ${message}` : message);
    this.pos = pos ?? null;
  }
}

export class NftCommandError extends ZtbError {
  readonly argv: string[];
  readonly status: number | null;
  readonly stderr: string;
  constructor(argv: string[], status: number | null, stderr: string) {
    const first = stderr.split('\n').find((l) => l.trim() !== '') ?? '(no output)';
    super('ERR_ZTB_NFT_COMMAND', `${argv.join(' ')} failed (exit ${status ?? 'signal'}): ${first.trim()}`);
    this.argv = argv;
    this.status = status;
    this.stderr = stderr;
  }
}

export class NftUnavailableError extends ZtbError {
  constructor(message: string) {
    super('ERR_ZTB_NFT_UNAVAILABLE', message);
  }
}
