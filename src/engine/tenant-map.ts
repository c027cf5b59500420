// Engine layer: tenant classification for the reference evaluator. A packet belongs to the tenant
// that owns its interface, else to the tenant of its VLAN id or VXLAN VNI, else to the tenant whose
// subnet is the longest prefix containing the packet's tenant-side address (the source of an
// inbound packet, the destination of an outbound one). Simple scans: the tenant count is small.
import type { Tenant } from '../policy/ir.js';
import type { EvalPacket } from './packet.js';
import { prefixContains, toNumPrefix, type NumPrefix, type ParsedAddr } from './reference-addr.js';

export class TenantMap {
  readonly #byIf = new Map<string, string>();
  readonly #byVlan = new Map<number, string>();
  readonly #byVni = new Map<number, string>();
  readonly #subnets: { tenant: string; p: NumPrefix }[] = [];
  readonly #count: number;

  constructor(tenants: Tenant[]) {
    this.#count = tenants.length;
    // First writer wins on a collision; the compiler rejects collisions anyway.
    for (const t of tenants) {
      for (const i of t.interfaces) if (!this.#byIf.has(i)) this.#byIf.set(i, t.id);
      if (t.vlan !== null && !this.#byVlan.has(t.vlan)) this.#byVlan.set(t.vlan, t.id);
      if (t.vxlan && !this.#byVni.has(t.vxlan.vni)) this.#byVni.set(t.vxlan.vni, t.id);
      for (const s of t.subnets) this.#subnets.push({ tenant: t.id, p: toNumPrefix(s) });
    }
  }

  get size(): number {
    return this.#count;
  }

  classify(pkt: EvalPacket, src: ParsedAddr, dst: ParsedAddr): string | null {
    const byIf = this.#byIf.get(pkt.ifname);
    if (byIf !== undefined) return byIf;
    if (pkt.vlan !== undefined) {
      const t = this.#byVlan.get(pkt.vlan);
      if (t !== undefined) return t;
    }
    if (pkt.vni !== undefined) {
      const t = this.#byVni.get(pkt.vni);
      if (t !== undefined) return t;
    }
    const a = pkt.dir === 'in' ? src : dst;
    let best: { tenant: string; p: NumPrefix } | null = null;
    for (const s of this.#subnets) {
      if (prefixContains(s.p, a) && (!best || s.p.len > best.p.len)) best = s;
    }
    return best?.tenant ?? null;
  }
}
