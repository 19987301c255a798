// A bounded WebSocket load client for signaling servers (Confide and PeerJS).
//
// Run by bench/bench_signaling.py as `node bench/loadgen_signaling.mjs CONFIG_JSON`;
// prints JSON lines on stdout. It speaks RFC 6455 over raw `net` sockets with
// the least work per message: client frames are built once per connection
// with an all-zero masking key (RFC 6455 §5.3 lets the client pick any key;
// a zero key leaves the payload as is), so sending a message is one copy plus
// writing a timestamp into it, and receiving is a header parse plus indexOf.
// That keeps the client's own CPU per message far below a server's, so on a
// 2-core machine the server, not the client, is what runs out of CPU. The
// client's CPU (and the server's, read from /proc) is reported either way.
//
// Modes:
//   relay: closed loop. Every connection sends `window` messages to its
//          partner, then one more for each one it receives, so each pair
//          keeps 2 * window in flight; counts deliveries per second.
//   rate:  open loop at a fixed offered rate (messages per second spread
//          round-robin over the connections); latency percentiles.
//   idle:  opens `conns` connections, joined as a browser would be (Confide:
//          rooms of `roomSize`; PeerJS: each with its own id, sending PeerJS's
//          HEARTBEAT every `heartbeat` seconds as its client does, so that the
//          server keeps them), prints {"ready":...}, holds them until a line
//          arrives on stdin (or `hold` seconds), prints how many are still
//          open, closes all.
// Several servers (bench/bench_scaleout.py): `ports` lists them; `spread`
// "pairs" puts both ends of pair p on ports[p % n], "split" puts the two ends
// of every pair on different ports (each message crosses processes);
// `serverPids` lists the processes whose CPU is added up.
// Every message carries "@T" + 15 digits (microseconds since the client
// started) inside the opaque payload, which both servers relay unchanged.

import net from "node:net";
import fs from "node:fs";
import { performance } from "node:perf_hooks";
import readline from "node:readline";

const cfg = JSON.parse(process.argv[2]);
const {
  server, // "confide" | "peerjs"
  port,
  mode,
  conns,
  window: win = 4,
  rate = 5000,
  warmup = 1.0,
  duration = 3.0,
  hold = 120,
  roomSize = 10,
  heartbeat = 5,
  connectConcurrency = 256,
  serverPid = 0,
  serverPids = serverPid ? [serverPid] : [],
  ports = [port],
  spread = "pairs",
  hosts = ["127.0.0.1"],
  deadline = 120,
} = cfg;

const MARK = Buffer.from("@T");
const TS_DIGITS = 15;
const ZERO_KEY = Buffer.alloc(4);
const t0 = performance.now();
const nowUs = () => Math.round((performance.now() - t0) * 1000);

// A hard stop, whatever happens: the bench is bounded.
const killer = setTimeout(() => {
  emit({ error: `deadline of ${deadline}s passed in mode ${mode}` });
  process.exit(3);
}, deadline * 1000);
killer.unref();

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function clientFrame(text, opcode = 0x1) {
  const payload = Buffer.from(text, "utf8");
  const len = payload.length;
  let head;
  if (len < 126) {
    head = Buffer.from([0x80 | opcode, 0x80 | len]);
  } else if (len < 65536) {
    head = Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff]);
  } else {
    throw new Error("frame too large for this client");
  }
  return Buffer.concat([head, ZERO_KEY, payload]);
}

function procCpuSeconds(pid) {
  if (Array.isArray(pid)) {
    if (pid.length === 0) return null;
    const each = pid.map(procCpuSeconds);
    return each.includes(null) ? null : each.reduce((a, b) => a + b, 0);
  }
  if (!pid) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime, stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the name.
    return (Number(fields[11]) + Number(fields[12])) / 100; // CLK_TCK is 100 on Linux
  } catch {
    return null;
  }
}

// Seconds `pid` has spent runnable but waiting for a CPU (all its threads):
// the second field of /proc/PID/task/*/schedstat. High when other work on
// the machine takes the CPUs, which then shows up as low CPU use everywhere.
function runQueueWaitSeconds(pid) {
  if (Array.isArray(pid)) {
    if (pid.length === 0) return null;
    const each = pid.map(runQueueWaitSeconds);
    return each.includes(null) ? null : each.reduce((a, b) => a + b, 0);
  }
  let total = 0;
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "latin1").split(" ")[1]);
      } catch {
        // the thread ended meanwhile
      }
    }
  } catch {
    return null;
  }
  return total / 1e9;
}

function clientCpuSeconds() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

const CANDIDATE =
  '{"candidate":"candidate:842163049 1 udp 1677729535 192.0.2.10 50000 typ srflx raddr 10.0.0.2 rport 50000 generation 0 ufrag abcd network-cost 999 @T' +
  "0".repeat(TS_DIGITS) +
  '","sdpMid":"0","sdpMLineIndex":0}';

function signalText(to) {
  if (server === "confide") {
    return `{"type":"candidate","to":"${to}","candidate":${CANDIDATE}}`;
  }
  return `{"type":"CANDIDATE","dst":"${to}","payload":${CANDIDATE}}`;
}

class Conn {
  constructor(index) {
    this.index = index;
    this.id = null; // our id at the server
    this.partner = null; // the Conn we signal
    this.frame = null; // our message to the partner, timestamp slot at tsOffset
    this.tsOffset = 0;
    this.buf = null;
    this.upgraded = false;
    this.onText = null; // slow-path handler during setup
    this.sock = null;
    this.closed = false;
  }

  connect(path, host, toPort = port) {
    return new Promise((resolve, reject) => {
      // Bind a source address only when several are asked for: bind-before-connect
      // searches the whole port range for each socket, slow with 10k of them.
      const options = { host: "127.0.0.1", port: toPort };
      if (hosts.length > 1) options.localAddress = host;
      const sock = net.connect(options);
      this.sock = sock;
      sock.setNoDelay(true);
      sock.on("connect", () => {
        sock.write(
          `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${toPort}\r\nUpgrade: websocket\r\n` +
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
            "Sec-WebSocket-Version: 13\r\n\r\n",
        );
      });
      sock.on("data", (chunk) => {
        if (!this.upgraded) {
          this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
          const end = this.buf.indexOf("\r\n\r\n");
          if (end < 0) return;
          const head = this.buf.subarray(0, end).toString("latin1");
          if (!head.startsWith("HTTP/1.1 101")) {
            reject(new Error(`upgrade refused: ${head.split("\r\n")[0]}`));
            sock.destroy();
            return;
          }
          this.upgraded = true;
          chunk = this.buf.subarray(end + 4);
          this.buf = null;
          resolve();
          if (chunk.length === 0) return;
        }
        this.receive(chunk);
      });
      sock.on("error", (err) => {
        if (!this.upgraded) reject(err);
        else if (!this.closed) stats.errors += 1;
      });
      sock.on("close", () => {
        if (!this.closed) stats.unexpectedCloses += 1;
        this.closed = true;
      });
    });
  }

  receive(chunk) {
    let buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    let pos = 0;
    const end = buf.length;
    let replies = 0;
    while (end - pos >= 2) {
      const b0 = buf[pos];
      let len = buf[pos + 1] & 0x7f;
      let off = pos + 2;
      if (len === 126) {
        if (end - pos < 4) break;
        len = (buf[pos + 2] << 8) | buf[pos + 3];
        off = pos + 4;
      } else if (len === 127) {
        if (end - pos < 10) break;
        len = buf.readUInt32BE(pos + 6);
        off = pos + 10;
      }
      if (end - off < len) break;
      const opcode = b0 & 0x0f;
      if (opcode === 0x1) {
        if (this.onText !== null) {
          this.onText(buf.toString("utf8", off, off + len));
        } else {
          const at = buf.indexOf(MARK, off);
          if (at >= 0 && at < off + len) {
            replies += onRelayed(this, buf, at + 2);
          } else {
            stats.otherFrames += 1;
          }
        }
      } else if (opcode === 0x9) {
        // Ping: answer with a pong carrying the same data (RFC 6455 §5.5.2).
        this.sock.write(clientFrame(buf.toString("latin1", off, off + len), 0xa));
      } else if (opcode === 0x8) {
        this.closed = true;
        stats.serverCloses += 1;
      }
      pos = off + len;
    }
    this.buf = pos < end ? buf.subarray(pos) : null;
    if (replies > 0) this.send(replies);
  }

  // Send `n` messages to the partner in one write, each stamped with the time.
  send(n) {
    if (this.closed) return;
    const frame = this.frame;
    const size = frame.length;
    const out = Buffer.allocUnsafe(size * n);
    const ts = String(nowUs()).padStart(TS_DIGITS, "0");
    for (let i = 0; i < n; i++) {
      frame.copy(out, i * size);
      out.write(ts, i * size + this.tsOffset, "latin1");
    }
    stats.sent += n;
    this.sock.write(out);
  }

  setPartner(partner) {
    this.partner = partner;
    this.frame = clientFrame(signalText(partner.id));
    this.tsOffset = this.frame.indexOf(MARK) + 2;
  }

  // Resolve with the first text frame for which pred(obj) is true (setup only).
  waitText(pred) {
    return new Promise((resolve) => {
      this.onText = (text) => {
        const obj = JSON.parse(text);
        if (pred(obj)) {
          this.onText = null;
          resolve(obj);
        }
      };
    });
  }

  sendText(text) {
    this.sock.write(clientFrame(text));
  }

  close() {
    this.closed = true;
    this.sock.destroy();
  }
}

const stats = {
  sent: 0,
  received: 0,
  errors: 0,
  unexpectedCloses: 0,
  serverCloses: 0,
  otherFrames: 0,
  skippedOffers: 0,
};
let measuring = false;
let replying = false;
let latencies = new Float64Array(1 << 22);
let nLat = 0;

function onRelayed(conn, buf, tsAt) {
  stats.received += 1;
  if (measuring) {
    let ts = 0;
    for (let i = tsAt; i < tsAt + TS_DIGITS; i++) ts = ts * 10 + (buf[i] - 48);
    if (nLat < latencies.length) latencies[nLat++] = nowUs() - ts;
    stats.measured += 1;
  }
  return replying ? 1 : 0;
}

async function pool(count, fn) {
  let next = 0;
  const workers = [];
  for (let w = 0; w < Math.min(connectConcurrency, count); w++) {
    workers.push(
      (async () => {
        while (next < count) {
          const i = next++;
          await fn(i);
        }
      })(),
    );
  }
  await Promise.all(workers);
}

// Open `count` connections in pairs; each pair can signal each other.
async function openPairs(count) {
  const list = [];
  for (let i = 0; i < count; i++) list.push(new Conn(i));
  const pairs = count >> 1;
  await pool(pairs, async (p) => {
    const a = list[2 * p];
    const b = list[2 * p + 1];
    const hostA = hosts[(2 * p) % hosts.length];
    const hostB = hosts[(2 * p + 1) % hosts.length];
    const portA = ports[p % ports.length];
    const portB = spread === "split" ? ports[(p + 1) % ports.length] : portA;
    if (server === "confide") {
      const room = `bench-${p}`;
      await a.connect("/ws", hostA, portA);
      let w = a.waitText((m) => m.type === "welcome");
      a.sendText(JSON.stringify({ type: "join", room, name: "a" }));
      a.id = (await w).id;
      const joined = a.waitText((m) => m.type === "peer-joined");
      await b.connect("/ws", hostB, portB);
      w = b.waitText((m) => m.type === "welcome");
      b.sendText(JSON.stringify({ type: "join", room, name: "b" }));
      b.id = (await w).id;
      await joined;
    } else {
      for (const [c, host] of [
        [a, hostA],
        [b, hostB],
      ]) {
        c.id = `bench-${process.pid}-${c.index}`;
        const open = c.waitText((m) => m.type === "OPEN");
        await c.connect(`/peerjs?key=peerjs&id=${c.id}&token=t${c.index}`, host);
        await open;
      }
    }
    a.setPartner(b);
    b.setPartner(a);
  });
  return list;
}

// Open `count` idle connections, joined: Confide in rooms of `roomSize`
// (each join waits for its welcome, as a browser's does), PeerJS with ids.
async function openJoined(count) {
  const list = [];
  for (let i = 0; i < count; i++) list.push(new Conn(i));
  if (server !== "confide") {
    await pool(count, async (i) => {
      const c = list[i];
      c.id = `idle-${process.pid}-${i}`;
      const open = c.waitText((m) => m.type === "OPEN");
      await c.connect(`/peerjs?key=peerjs&id=${c.id}&token=t${i}`, hosts[i % hosts.length]);
      await open;
    });
    return list;
  }
  const rooms = Math.ceil(count / roomSize);
  await pool(rooms, async (r) => {
    for (let i = r * roomSize; i < Math.min(count, (r + 1) * roomSize); i++) {
      const c = list[i];
      await c.connect("/ws", hosts[i % hosts.length]);
      const w = c.waitText((m) => m.type === "welcome" || m.type === "error");
      // Rooms of this process only: a previous client's peers may still be in
      // theirs (resume grace), which would fill them past the capacity.
      c.sendText(JSON.stringify({ type: "join", room: `idle-${process.pid}-${r}`, name: `n${i}` }));
      const welcome = await w;
      if (welcome.type !== "welcome") throw new Error(`join refused: ${JSON.stringify(welcome)}`);
      c.id = welcome.id; // later peer-joined frames take the fast path: only counted
    }
  });
  return list;
}

// PeerJS drops a client it has not heard from for alive_timeout (90 s); its
// own client sends HEARTBEAT every 5 s. Spread over the period, as real clients are.
function keepAlive(list) {
  if (server === "confide" || heartbeat <= 0) return null;
  const frame = clientFrame('{"type":"HEARTBEAT"}');
  const tick = 100; // ms
  const perTick = Math.ceil(list.length / ((heartbeat * 1000) / tick));
  let next = 0;
  return setInterval(() => {
    for (let n = 0; n < perTick; n++) {
      const c = list[next];
      next = (next + 1) % list.length;
      if (!c.closed) c.sock.write(frame);
    }
  }, tick);
}

function percentile(sorted, n, q) {
  if (n === 0) return null;
  return sorted[Math.min(n - 1, Math.floor(q * n))];
}

function sleep(s) {
  return new Promise((r) => setTimeout(r, s * 1000));
}

async function measure(run) {
  // Warm up, then measure for `duration` seconds.
  await sleep(warmup);
  stats.measured = 0;
  nLat = 0;
  const c0 = clientCpuSeconds();
  const s0 = procCpuSeconds(serverPids);
  const q0 = [runQueueWaitSeconds(process.pid), runQueueWaitSeconds(serverPids)];
  const w0 = performance.now();
  const sent0 = stats.sent;
  measuring = true;
  await sleep(duration);
  measuring = false;
  const wall = (performance.now() - w0) / 1000;
  const c1 = clientCpuSeconds();
  const s1 = procCpuSeconds(serverPids);
  const q1 = [runQueueWaitSeconds(process.pid), runQueueWaitSeconds(serverPids)];
  const waited = (i) => (q0[i] === null || q1[i] === null ? null : (q1[i] - q0[i]) / wall);
  const lat = latencies.subarray(0, nLat).sort();
  const result = {
    wall,
    delivered: stats.measured,
    delivered_per_s: stats.measured / wall,
    sent_per_s: (stats.sent - sent0) / wall,
    p50_ms: nLat ? percentile(lat, nLat, 0.5) / 1000 : null,
    p99_ms: nLat ? percentile(lat, nLat, 0.99) / 1000 : null,
    max_ms: nLat ? lat[nLat - 1] / 1000 : null,
    client_cpu_s: c1 - c0,
    client_cpu_util: (c1 - c0) / wall,
    server_cpu_util: s0 === null || s1 === null ? null : (s1 - s0) / wall,
    client_cpu_wait: waited(0),
    server_cpu_wait: serverPids.length ? waited(1) : null,
  };
  run.stop?.();
  return result;
}

async function main() {
  const startCpu = clientCpuSeconds();
  const tOpen = performance.now();
  const list = mode === "idle" ? await openJoined(conns) : await openPairs(conns);
  const openSeconds = (performance.now() - tOpen) / 1000;
  if (mode === "relay") {
    replying = true;
    for (const c of list) c.send(win);
    const result = await measure({ stop: () => (replying = false) });
    await sleep(0.2);
    emit({ mode, conns, window: win, open_s: openSeconds, ...result, ...stats });
  } else if (mode === "rate") {
    replying = false;
    let sentTarget = 0;
    let rr = 0;
    const start = performance.now();
    // A client that falls behind (a starved machine) sends at most 20 ms of
    // schedule at once and skips the rest, rather than a backlog that keeps
    // its event loop (and the run's timers) busy for ever; sent_per_s and
    // skippedOffers say how much of the rate it really offered.
    const maxBurst = Math.max(1, Math.ceil(rate * 0.02));
    const timer = setInterval(() => {
      const due = Math.floor((rate * (performance.now() - start)) / 1000);
      let n = due - sentTarget;
      sentTarget = due;
      if (n > maxBurst) {
        stats.skippedOffers += n - maxBurst;
        n = maxBurst;
      }
      while (n-- > 0) {
        list[rr].send(1);
        rr = (rr + 1) % list.length;
      }
    }, 1);
    const result = await measure({ stop: () => clearInterval(timer) });
    await sleep(0.2);
    emit({ mode, conns, offered_per_s: rate, open_s: openSeconds, ...result, ...stats });
  } else if (mode === "idle") {
    const beat = keepAlive(list);
    emit({
      ready: true,
      conns: list.filter((c) => !c.closed).length,
      open_s: openSeconds,
      client_cpu_s: clientCpuSeconds() - startCpu,
      ...stats,
    });
    await new Promise((resolve) => {
      const rl = readline.createInterface({ input: process.stdin });
      rl.on("line", resolve);
      rl.on("close", resolve);
      setTimeout(resolve, hold * 1000);
    });
    if (beat !== null) clearInterval(beat);
    emit({ closing: true, still_open: list.filter((c) => !c.closed).length, ...stats });
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  for (const c of list) c.close();
  process.exit(0);
}

main().catch((err) => {
  emit({ error: String(err && err.stack ? err.stack : err) });
  process.exit(2);
});
