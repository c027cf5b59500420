// Policy layer: the name tables pfctl gets from /etc/services, /etc/protocols and its own ICMP
// tables. They are built in so that compiling a policy never depends on the host's files, which
// differ between the Linux hosts we run on and the OpenBSD gateways the policy is written for.

/** Service names accepted after `port`; a name is always both tcp and udp here. */
export const SERVICES: Readonly<Record<string, number>> = {
  echo: 7, discard: 9, daytime: 13, 'ftp-data': 20, ftp: 21, ssh: 22, telnet: 23, smtp: 25,
  time: 37, whois: 43, domain: 53, tftp: 69, gopher: 70, finger: 79, http: 80, www: 80,
  kerberos: 88, pop3: 110, sunrpc: 111, auth: 113, nntp: 119, ntp: 123, 'netbios-ns': 137,
  'netbios-dgm': 138, 'netbios-ssn': 139, imap: 143, snmp: 161, 'snmp-trap': 162, bgp: 179,
  ldap: 389, https: 443, 'microsoft-ds': 445, isakmp: 500, syslog: 514, submission: 587,
  ldaps: 636, rsync: 873, imaps: 993, pop3s: 995, openvpn: 1194, 'ms-sql-s': 1433,
  radius: 1812, 'radius-acct': 1813, nfsd: 2049, mysql: 3306, 'ipsec-nat-t': 4500,
  postgresql: 5432, 'x11': 6000, 'http-alt': 8080, wireguard: 51820,
};

export const PROTOCOLS: Readonly<Record<string, number>> = {
  ip: 0, icmp: 1, igmp: 2, ggp: 3, ipencap: 4, tcp: 6, egp: 8, igp: 9, pup: 12, udp: 17,
  idp: 22, ipv6: 41, 'ipv6-route': 43, 'ipv6-frag': 44, rsvp: 46, gre: 47, esp: 50, ah: 51,
  'ipv6-icmp': 58, icmp6: 58, 'ipv6-nonxt': 59, 'ipv6-opts': 60, eigrp: 88, ospf: 89,
  etherip: 97, encap: 98, pim: 103, ipcomp: 108, vrrp: 112, carp: 112, l2tp: 115, sctp: 132,
  udplite: 136, pfsync: 240,
};

/** Canonical name of each protocol number (the one pfctl prints). */
export const PROTOCOL_NAMES: Readonly<Record<number, string>> = {
  1: 'icmp', 2: 'igmp', 4: 'ipencap', 6: 'tcp', 17: 'udp', 41: 'ipv6', 47: 'gre', 50: 'esp',
  51: 'ah', 58: 'ipv6-icmp', 89: 'ospf', 103: 'pim', 112: 'carp', 132: 'sctp', 240: 'pfsync',
};

export const ICMP_TYPES: Readonly<Record<string, number>> = {
  echorep: 0, unreach: 3, squench: 4, redir: 5, althost: 6, echoreq: 8, routeradv: 9,
  routersol: 10, timex: 11, paramprob: 12, timereq: 13, timerep: 14, inforeq: 15, inforep: 16,
  maskreq: 17, maskrep: 18, trace: 30,
};

export const ICMP6_TYPES: Readonly<Record<string, number>> = {
  unreach: 1, toobig: 2, timex: 3, paramprob: 4, echoreq: 128, echorep: 129, groupqry: 130,
  listqry: 130, grouprep: 131, listenrep: 131, groupterm: 132, listendone: 132, routersol: 133,
  routeradv: 134, neighbrsol: 135, neighbradv: 136, redir: 137, routrrenum: 138,
};

export function nameOf(table: Readonly<Record<string, number>>, value: number): string | undefined {
  for (const [k, v] of Object.entries(table)) if (v === value) return k;
  return undefined;
}
