// CLI layer: usage errors (exit 2) and the small argument parser every command shares. Commands
// declare their flags; unknown flags are errors, never ignored.
import { ZtbError } from '../errors.js';

export class UsageError extends ZtbError {
  constructor(message: string) {
    super('ERR_ZTB_USAGE', message);
  }
}

export interface FlagSpec {
  /** Takes a value (`--netns NAME` or `--netns=NAME`). */
  value?: boolean;
  /** May be given several times; values are collected in order. */
  repeat?: boolean;
}

export interface ParsedArgs {
  positionals: string[];
  flags: Map<string, string[]>;
}

export function parseArgs(argv: string[], spec: Record<string, FlagSpec>): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      const s = spec[name];
      if (!s) throw new UsageError(`unknown option --${name}`);
      let value = 'true';
      if (s.value) {
        if (eq >= 0) value = a.slice(eq + 1);
        else {
          const next = argv[i + 1];
          if (next === undefined) throw new UsageError(`option --${name} needs a value`);
          value = next;
          i++;
        }
      } else if (eq >= 0) {
        throw new UsageError(`option --${name} takes no value`);
      }
      const prev = flags.get(name);
      if (prev && !s.repeat) throw new UsageError(`option --${name} given twice`);
      flags.set(name, [...(prev ?? []), value]);
    } else {
      positionals.push(a);
    }
  }
  return { positionals, flags };
}

export function flag(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags.get(name);
  return v ? v[v.length - 1] : undefined;
}

export function hasFlag(args: ParsedArgs, name: string): boolean {
  return args.flags.has(name);
}
