// CLI layer: `ztb-enforce test POLICY` — reads packet lines from stdin and runs them, in order,
// through one reference evaluator (so states carry from line to line), printing per line the
// verdict, the deciding rule and the tenant. A malformed line is reported with its line and column
// and the rest still run; the exit code then says 1.
import { createInterface } from 'node:readline';
import type { CliIo } from '../main.js';
import { parseArgs, flag, hasFlag, UsageError } from '../usage.js';
import { loadPolicyFile } from '../../policy/load.js';
import type { InterfaceAddressMap, Ir, IrRule, SourcePos } from '../../policy/ir.js';
import { ReferenceEvaluator } from '../../engine/reference.js';
import { isBlankPacketLine, MAX_PACKET_LINE, parsePacketLine, PacketLineError } from '../../engine/packet-line.js';
import { parseCidr } from '../../engine/reference-addr.js';
import type { EvalResult } from '../../engine/packet.js';
import { ZtbError } from '../../errors.js';

export const usage = `usage: ztb-enforce test POLICY [--json] [--states] [--counters] [--format pf|toml]
                         [--group NAME=IF1,IF2]... [--ifaddr IF=CIDR[,CIDR]]...

Reads packet lines from stdin and evaluates them in order through the reference evaluator (state
carries over from line to line). One packet per line:

  <in|out> on <ifname> <tcp|udp|icmp|icmp6|NUM> <src>[:<sport>] > <dst>[:<dport>]
      [flags <FSRPAUEW>] [len N] [vlan N] [vni N] [icmp-type N [code N]] [id N]

IPv6 addresses with a port go in brackets ([2001:db8::1]:443). tcp and udp need both ports; tcp
without flags is a SYN. Blank lines and # comments are skipped.

  --json           one JSON object per input line
  --states         after the input, print the state table (JSON: one {"states": [...]} line)
  --counters       after the input, print per-rule counters of rules that saw traffic
                   (JSON: one {"counters": [...]} line)
  --format F       policy format (pf or toml; default: from the file name)
  --group G=I,...  interface group members (repeatable; e.g. --group egress=em0)
  --ifaddr I=C,... interface addresses for (if), (if:network), (if:0), self (repeatable)

Exit: 0 all lines parsed, 1 a line was malformed (the others still ran) or the policy is invalid,
2 usage.`;

/** Caps so a hostile command line cannot blow up the maps. */
const MAX_GROUPS = 256;
const MAX_MEMBERS = 1024;
const IFNAME_RE = /^[A-Za-z0-9_.:-]{1,15}$/;

function parseGroups(values: string[]): Record<string, string[]> {
  if (values.length > MAX_GROUPS) throw new UsageError(`at most ${MAX_GROUPS} --group options`);
  const out: Record<string, string[]> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    const name = v.slice(0, eq);
    if (eq <= 0 || !IFNAME_RE.test(name)) throw new UsageError(`--group wants NAME=IF1,IF2, got '${v}'`);
    const members = v.slice(eq + 1).split(',').filter((m) => m !== '');
    if (members.length > MAX_MEMBERS) throw new UsageError(`--group ${name}: at most ${MAX_MEMBERS} members`);
    for (const m of members) if (!IFNAME_RE.test(m)) throw new UsageError(`--group ${name}: bad interface name '${m}'`);
    out[name] = [...(out[name] ?? []), ...members];
  }
  return out;
}

function parseIfaddrs(values: string[]): InterfaceAddressMap {
  if (values.length > MAX_GROUPS) throw new UsageError(`at most ${MAX_GROUPS} --ifaddr options`);
  const out: InterfaceAddressMap = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    const name = v.slice(0, eq);
    if (eq <= 0 || !IFNAME_RE.test(name)) throw new UsageError(`--ifaddr wants IF=CIDR[,CIDR], got '${v}'`);
    const cidrs = v.slice(eq + 1).split(',').filter((c) => c !== '');
    if (cidrs.length === 0 || cidrs.length > MAX_MEMBERS) throw new UsageError(`--ifaddr ${name}: 1-${MAX_MEMBERS} addresses`);
    for (const c of cidrs) if (!parseCidr(c)) throw new UsageError(`--ifaddr ${name}: bad address '${c}' (want ADDR/LEN)`);
    out[name] = [...(out[name] ?? []), ...cidrs];
  }
  return out;
}

function posText(p: SourcePos): string {
  return `${p.file}:${p.line}:${p.col}`;
}

function ruleJson(r: IrRule | undefined): { id: number; pos: SourcePos; nr: number; text: string; ruleset: string } | null {
  return r ? { id: r.id, pos: r.pos, nr: r.nr, text: r.text, ruleset: r.ruleset } : null;
}

/** The rule a result names: states may refer to rules of an earlier load; the test command loads
 *  once, so every id is in `ir`. */
function ruleOf(ir: Ir, id: number | null): IrRule | undefined {
  return id === null ? undefined : ir.rules[id];
}

function stateWord(res: EvalResult): 'created' | 'matched' | null {
  return res.stateCreated ? 'created' : res.reason === 'state' ? 'matched' : null;
}

function textLine(n: number, res: EvalResult, ir: Ir): string {
  const r = ruleOf(ir, res.ruleId);
  const parts = [`${n}: ${res.verdict.padEnd(5)}`];
  if (r) {
    parts.push(`rule ${r.id} ${posText(r.pos)}${r.ruleset ? ` [${r.ruleset}]` : ''} "${r.text}"`);
    if (res.reason !== 'rule') parts.push(`(${res.reason})`);
  } else {
    parts.push(res.reason === 'default' ? 'default (no rule matched)' : res.reason);
  }
  parts.push(`tenant=${res.tenant ?? '-'}`);
  const st = stateWord(res);
  if (st) parts.push(`state=${st}`);
  if (res.returnAction) parts.push(`return=${res.returnAction}`);
  if (res.translated) {
    const t = res.translated;
    parts.push(`translated=${t.src}:${t.sport}>${t.dst}:${t.dport}`);
  }
  return parts.join(' ');
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const args = parseArgs(argv, {
    json: {},
    states: {},
    counters: {},
    format: { value: true },
    group: { value: true, repeat: true },
    ifaddr: { value: true, repeat: true },
  });
  if (args.positionals.length !== 1) throw new UsageError('expected exactly one POLICY file');
  const file = args.positionals[0]!;
  const format = flag(args, 'format');
  if (format !== undefined && format !== 'pf' && format !== 'toml') throw new UsageError(`--format must be pf or toml, got '${format}'`);
  const groups = parseGroups(args.flags.get('group') ?? []);
  const ifaddrs = parseIfaddrs(args.flags.get('ifaddr') ?? []);
  const json = hasFlag(args, 'json');

  const ir: Ir = loadPolicyFile(file, format ? { format } : undefined);
  const ev = new ReferenceEvaluator(ir, { groups, ifaddrs });

  const out = (s: string): void => {
    io.stdout.write(s + '\n');
  };
  let bad = 0;
  let n = 0;
  const rl = createInterface({ input: io.stdin, crlfDelay: Infinity });
  for await (const raw of rl) {
    n++;
    if (isBlankPacketLine(raw)) continue;
    try {
      const pkt = parsePacketLine(raw.length > MAX_PACKET_LINE + 1 ? raw.slice(0, MAX_PACKET_LINE + 1) : raw, n, '<stdin>');
      const res = ev.evaluate(pkt);
      if (json) {
        out(
          JSON.stringify({
            line: n,
            verdict: res.verdict,
            reason: res.reason,
            rule: ruleJson(ruleOf(ir, res.ruleId)),
            anchorRule: ruleJson(ruleOf(ir, res.anchorRuleId)),
            matchRules: res.matchRuleIds,
            tenant: res.tenant,
            state: stateWord(res),
            returnAction: res.returnAction,
            translated: res.translated,
          }),
        );
      } else {
        out(textLine(n, res, ir));
      }
    } catch (e) {
      if (!(e instanceof ZtbError)) throw e;
      bad++;
      const msg = e instanceof PacketLineError ? e.message : `<stdin>:${n}:1: ${e.message}`;
      if (json) out(JSON.stringify({ line: n, error: msg }));
      else io.stderr.write(msg + '\n');
    }
  }
  if (hasFlag(args, 'states')) {
    const states = ev.states();
    if (json) out(JSON.stringify({ states }));
    else {
      out(`states: ${states.length}`);
      for (const st of states) {
        const k = (t: { src: string; sport: number; dst: string; dport: number }) => `${t.src}:${t.sport} > ${t.dst}:${t.dport}`;
        const nat = k(st.wire) === k(st.stack) ? '' : ` (stack ${k(st.stack)})`;
        out(`  #${st.id} ${st.dir} on ${st.boundIf ?? st.ifname}${st.boundIf ? '' : ' (floating)'} proto ${st.proto} ${k(st.wire)}${nat} ` +
          `${st.peers.join(':')} ${st.timeout} rule ${st.ruleId} pkts ${st.packets.join('/')}`);
      }
    }
  }
  if (hasFlag(args, 'counters')) {
    const counters = ev.counters().filter((c) => c.evaluations > 0 || c.packets[0] + c.packets[1] > 0 || c.statesTotal > 0);
    if (json) out(JSON.stringify({ counters }));
    else {
      out('counters: rule evaluations matches packets(in/out) bytes(in/out) states/total');
      for (const c of counters) {
        out(`  @${c.ruleId} ${c.evaluations} ${c.matches} ${c.packets.join('/')} ${c.bytes.join('/')} ${c.states}/${c.statesTotal}  ${ir.rules[c.ruleId]!.text}`);
      }
    }
  }
  return bad > 0 ? 1 : 0;
}
