// Backend layer (nftables): the packet agent used to prove enforcement with real traffic — a small
// python3 program (python3 is the one packet tool we can count on where nftables runs) started
// inside a namespace by argv. Modes: `sniff IF` prints every packet arriving on IF as a JSON line;
// `send` crafts raw IPv4/IPv6 TCP/UDP/ICMP packets (any flags, ports, addresses) from a JSON list on
// stdin; `serve PORT` answers TCP connects and echoes UDP; `connect` runs real TCP/UDP/ICMP
// reachability probes from a JSON list and prints one result per probe. Every crafted packet
// carries an 8-byte token in its payload so the receiver can tell exactly which probes arrived.
export const AGENT_PY = String.raw`
import json, os, select, socket, struct, sys, time

def csum(data):
    if len(data) % 2: data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def l4(p, src, dst, v6):
    proto, token = p['proto'], p['token'].encode()[:8].ljust(8, b'.')
    if proto == 6:
        h = struct.pack('!HHIIBBHHH', p['sport'], p['dport'], 1000, 0, 5 << 4, p.get('flags', 2), 65535, 0, 0) + token
    elif proto == 17:
        h = struct.pack('!HHHH', p['sport'], p['dport'], 8 + len(token), 0) + token
    elif proto in (1, 58):
        h = struct.pack('!BBHHH', p.get('icmpType', 128 if v6 else 8), p.get('icmpCode', 0), 0, p['sport'], 1) + token
        if proto == 1:
            return h[:2] + struct.pack('!H', csum(h)) + h[4:]
    else:
        return token
    if v6:
        pseudo = src + dst + struct.pack('!IxxxB', len(h), proto)
    else:
        pseudo = src + dst + struct.pack('!BBH', 0, proto, len(h))
    c = csum(pseudo + h)
    off = {6: 16, 17: 6, 58: 2}[proto]
    return h[:off] + struct.pack('!H', c if c else 0xffff) + h[off + 2:]

def send():
    socks = (socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW), socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW))
    send_list(json.load(sys.stdin), *socks)

def sendloop():
    # One JSON list per line; answers each with {"sent": n} (saves a process start per batch).
    socks = (socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW), socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW))
    print(json.dumps({'ready': True}), flush=True)
    for line in sys.stdin:
        if line.strip():
            send_list(json.loads(line), *socks)

def send_list(pkts, s4, s6):
    for i, p in enumerate(pkts):
        v6 = ':' in p['dst']
        fam = socket.AF_INET6 if v6 else socket.AF_INET
        src, dst = socket.inet_pton(fam, p['src']), socket.inet_pton(fam, p['dst'])
        body = l4(p, src, dst, v6)
        if v6:
            hdr = struct.pack('!IHBB', 6 << 28, len(body), p['proto'], 64) + src + dst
            s6.sendto(hdr + body, (p['dst'], 0))
        else:
            hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(body), (i + 1) & 0xffff, 0, 64, p['proto'], 0, src, dst)
            hdr = hdr[:10] + struct.pack('!H', csum(hdr)) + hdr[12:]
            s4.sendto(hdr + body, (p['dst'], 0))
        time.sleep(float(os.environ.get('ZTB_AGENT_GAP', '0.0005')))
    print(json.dumps({'sent': len(pkts)}), flush=True)

def parse(frame):
    et = struct.unpack('!H', frame[12:14])[0]
    b = frame[14:]
    if et == 0x0800:
        ihl = (b[0] & 15) * 4
        proto, src, dst = b[9], socket.inet_ntop(socket.AF_INET, b[12:16]), socket.inet_ntop(socket.AF_INET, b[16:20])
        body = b[ihl:struct.unpack('!H', b[2:4])[0]]
    elif et == 0x86dd:
        proto, src, dst = b[6], socket.inet_ntop(socket.AF_INET6, b[8:24]), socket.inet_ntop(socket.AF_INET6, b[24:40])
        body = b[40:40 + struct.unpack('!H', b[4:6])[0]]
    else:
        return None
    r = {'src': src, 'dst': dst, 'proto': proto, 'sport': 0, 'dport': 0, 'flags': 0, 'token': ''}
    if proto == 6 and len(body) >= 20:
        r['sport'], r['dport'] = struct.unpack('!HH', body[:4]); r['flags'] = body[13]
        pay = body[(body[12] >> 4) * 4:]
    elif proto == 17 and len(body) >= 8:
        r['sport'], r['dport'] = struct.unpack('!HH', body[:4]); pay = body[8:]
    elif proto in (1, 58) and len(body) >= 8:
        r['icmpType'], r['icmpCode'] = body[0], body[1]; r['sport'] = struct.unpack('!H', body[4:6])[0]; pay = body[8:]
    else:
        pay = body
    r['token'] = pay[:8].decode('latin-1')
    return r

def sniff(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((ifname, 0))
    print(json.dumps({'ready': True}), flush=True)
    while True:
        rl, _, _ = select.select([s, sys.stdin], [], [])
        if sys.stdin in rl:
            if not sys.stdin.readline():
                return
        if s in rl:
            frame, addr = s.recvfrom(65535)
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            r = parse(frame)
            if r:
                print(json.dumps(r), flush=True)

def serve(ports):
    socks = []
    for port in ports:
        for fam in (socket.AF_INET, socket.AF_INET6):
            try:
                t = socket.socket(fam, socket.SOCK_STREAM); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if fam == socket.AF_INET6: t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                t.bind(('::' if fam == socket.AF_INET6 else '0.0.0.0', port)); t.listen(128); socks.append(t)
                u = socket.socket(fam, socket.SOCK_DGRAM)
                if fam == socket.AF_INET6: u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                u.bind(('::' if fam == socket.AF_INET6 else '0.0.0.0', port)); socks.append(u)
            except OSError:
                if fam == socket.AF_INET: raise
    print(json.dumps({'ready': True}), flush=True)
    conns = []
    while True:
        rl, _, _ = select.select(socks + conns + [sys.stdin], [], [])
        for s in rl:
            if s is sys.stdin:
                if not sys.stdin.readline(): return
            elif s.type == socket.SOCK_STREAM and s in socks:
                try:
                    c, _ = s.accept(); conns.append(c)
                except OSError:
                    pass
            elif s in conns:
                try: d = s.recv(4096)
                except OSError: d = b''
                if d:
                    try: s.sendall(d)
                    except OSError: pass
                else: conns.remove(s); s.close()
            else:
                try:
                    d, a = s.recvfrom(4096); s.sendto(d, a)
                except OSError:
                    pass

def probe_one(i, p, timeout):
    v6 = ':' in p['dst']
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    ok, detail = False, ''
    try:
        if p['proto'] == 'tcp':
            s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(timeout)
            s.connect((p['dst'], p['port'])); s.sendall(b'ztb-probe'); ok = s.recv(64) == b'ztb-probe'; s.close()
        elif p['proto'] == 'udp':
            # connected, so an ICMP port unreachable surfaces as ECONNREFUSED
            s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(timeout); s.connect((p['dst'], p['port']))
            s.send(b'ztb-probe'); d = s.recv(64); ok = d == b'ztb-probe'; s.close()
        else:
            proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
            s = socket.socket(fam, socket.SOCK_RAW, proto); s.settimeout(timeout)
            ident = (os.getpid() * 131 + i) & 0xffff
            typ = 128 if v6 else 8
            h = struct.pack('!BBHHH', typ, 0, 0, ident, 1) + b'ztb-probe'
            if not v6: h = h[:2] + struct.pack('!H', csum(h)) + h[4:]
            s.sendto(h, (p['dst'], 0))
            end = time.time() + timeout
            while time.time() < end:
                s.settimeout(max(0.01, end - time.time()))
                d, a = s.recvfrom(2048)
                if not v6: d = d[(d[0] & 15) * 4:]
                if d[0] == (129 if v6 else 0) and struct.unpack('!H', d[4:6])[0] == ident:
                    ok = True; break
            s.close()
    except (OSError, socket.timeout) as e:
        detail = type(e).__name__ if not getattr(e, 'strerror', None) else e.strerror
    return {'ok': ok, 'detail': detail}

def connect():
    import threading
    probes = json.load(sys.stdin)
    timeout = float(os.environ.get('ZTB_AGENT_TIMEOUT', '1.0'))
    par = int(os.environ.get('ZTB_AGENT_PARALLEL', '1'))
    out = [None] * len(probes)
    def worker(idx):
        for i in idx:
            out[i] = probe_one(i, probes[i], timeout)
    chunks = [list(range(k, len(probes), par)) for k in range(max(1, par))]
    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps(out), flush=True)

def stream(dst, port, seconds):
    # One TCP connection echoing numbered 64-byte messages for a while: any drop long enough to
    # stall it, or a reset, shows up as an error or a short count.
    fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(5)
    sent = echoed = 0; err = ''
    try:
        s.connect((dst, port))
        end = time.time() + seconds
        while time.time() < end:
            msg = ('%063d\n' % sent).encode(); s.sendall(msg); sent += 1
            got = b''
            while len(got) < len(msg):
                d = s.recv(len(msg) - len(got))
                if not d: raise OSError('connection closed')
                got += d
            if got == msg: echoed += 1
            time.sleep(0.002)
        s.close()
    except OSError as e:
        err = str(e) or type(e).__name__
    print(json.dumps({'sent': sent, 'echoed': echoed, 'error': err}), flush=True)

mode = sys.argv[1]
if mode == 'send': send()
elif mode == 'sendloop': sendloop()
elif mode == 'sniff': sniff(sys.argv[2])
elif mode == 'serve': serve([int(x) for x in sys.argv[2].split(',')])
elif mode == 'connect': connect()
elif mode == 'stream': stream(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
else: sys.exit('unknown mode ' + mode)
`;

/** argv running the agent in a namespace (or the current one). */
export function agentArgv(netns: string | null, mode: string, ...args: string[]): string[] {
  const py = ['python3', '-c', AGENT_PY, mode, ...args];
  return netns ? ['ip', 'netns', 'exec', netns, ...py] : py;
}
