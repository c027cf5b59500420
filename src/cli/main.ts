#!/usr/bin/env node
// CLI layer: the `ztb-enforce` entry point. It only dispatches: each subcommand lives in
// src/cli/commands/<name>.ts and exports `run(argv, io)` and `usage`. User errors (ZtbError) are
// printed as their message without a stack trace; exit codes: 0 ok, 1 failure or invalid policy or
// drift, 2 usage.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ZtbError } from '../errors.js';
import { UsageError } from './usage.js';

export interface CliIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export interface CommandModule {
  usage: string;
  run(argv: string[], io: CliIo): Promise<number>;
}

const COMMANDS: Record<string, string> = {
  check: 'validate a policy and print its compiled rules with ids and positions',
  test: 'evaluate packet lines from stdin through the reference evaluator',
  apply: 'build tenant networks (and, with --backend, the kernel ruleset) from a policy',
  verify: 'report drift between a policy and the live tenant networks',
  down: 'remove every network object the policy owns',
  probe: 'send real traffic between sandbox workloads; compare with the evaluator',
  demo: 'run the embedded two-tenant example in a sandbox namespace',
  bench: 'benchmarks (bench classbench RULES [TRACE])',
};

function help(): string {
  const lines = ['usage: ztb-enforce <command> [options]', '', 'commands:'];
  for (const [name, summary] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(8)} ${summary}`);
  lines.push('', 'ztb-enforce <command> --help prints the options of a command.');
  return lines.join('\n') + '\n';
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    io.stdout.write(help());
    return cmd ? 0 : 2;
  }
  if (cmd === '--version') {
    io.stdout.write('ztb-enforce 0.1.0\n');
    return 0;
  }
  if (!(cmd in COMMANDS)) {
    io.stderr.write(`ztb-enforce: unknown command '${cmd}'\n\n${help()}`);
    return 2;
  }
  let mod: CommandModule;
  try {
    mod = (await import(`./commands/${cmd}.js`)) as CommandModule;
  } catch (e) {
    io.stderr.write(`ztb-enforce: command '${cmd}' failed to load: ${(e as Error).message}\n`);
    return 1;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout.write(mod.usage.endsWith('\n') ? mod.usage : mod.usage + '\n');
    return 0;
  }
  try {
    return await mod.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`ztb-enforce ${cmd}: ${e.message}\n${mod.usage}\n`);
      return 2;
    }
    if (e instanceof ZtbError) {
      io.stderr.write(e.message.endsWith('\n') ? e.message : e.message + '\n');
      return 1;
    }
    throw e;
  }
}

function isEntry(): boolean {
  const arg = process.argv[1];
  if (!arg) return false;
  try {
    return realpathSync(arg) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntry()) {
  main(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`ztb-enforce: internal error: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 70;
    },
  );
}
