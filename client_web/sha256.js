/** Incremental SHA-256 (FIPS 180-4) in plain JS: works without crypto.subtle (plain-http
 * pages) and hashes a file slice by slice, never holding it whole. */
const primes = [];
for (let n = 2; primes.length < 64; n++) if (primes.every((p) => n % p)) primes.push(n);
const frac = (x) => ((x - Math.floor(x)) * 2 ** 32) >>> 0;
const K = Int32Array.from(primes, (p) => frac(Math.cbrt(p)));
const H0 = Int32Array.from(primes.slice(0, 8), (p) => frac(Math.sqrt(p)));

/** Streaming hasher: `new Sha256().update(bytes)...digest()` → 32-byte Uint8Array. */
export class Sha256 {
  constructor() {
    this.h = H0.slice();
    this.buf = new Uint8Array(64);
    this.n = 0;
    this.len = 0;
    this.w = new Int32Array(64);
  }

  /** Add bytes (Uint8Array or ArrayBuffer); returns this. */
  update(data) {
    const d = data instanceof Uint8Array ? data : new Uint8Array(data);
    let i = 0;
    this.len += d.length;
    if (this.n) {
      i = Math.min(64 - this.n, d.length);
      this.buf.set(d.subarray(0, i), this.n);
      this.n += i;
      if (this.n < 64) return this;
      this.block(this.buf, 0);
      this.n = 0;
    }
    for (; i + 64 <= d.length; i += 64) this.block(d, i);
    if (i < d.length) {
      this.buf.set(d.subarray(i));
      this.n = d.length - i;
    }
    return this;
  }

  block(d, p) {
    // Pairwise `| 0` keeps V8 on int32 arithmetic (a sum of five int32s would be a double).
    const w = this.w, h = this.h;
    for (let j = 0; j < 16; j++, p += 4) w[j] = (d[p] << 24) | (d[p + 1] << 16) | (d[p + 2] << 8) | d[p + 3];
    for (let j = 16; j < 64; j++) {
      let u = w[j - 2];
      const s1 = ((u >>> 17) | (u << 15)) ^ ((u >>> 19) | (u << 13)) ^ (u >>> 10);
      u = w[j - 15];
      const s0 = ((u >>> 7) | (u << 25)) ^ ((u >>> 18) | (u << 14)) ^ (u >>> 3);
      w[j] = (((s1 + w[j - 7]) | 0) + ((s0 + w[j - 16]) | 0)) | 0;
    }
    let a = h[0], b = h[1], c = h[2], e0 = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (let j = 0; j < 64; j++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (((S1 + ((e & f) ^ (~e & g))) | 0) + ((hh + ((K[j] + w[j]) | 0)) | 0)) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g; g = f; f = e; e = (e0 + t1) | 0; e0 = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + e0) | 0;
    h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + hh) | 0;
  }

  /** Finish (the hasher is spent afterwards): the 32-byte digest. */
  digest() {
    const bits = this.len * 8;
    const tail = new Uint8Array(((this.n + 8) >> 6 << 6) + 64 - this.n);
    tail[0] = 0x80;
    const v = new DataView(tail.buffer);
    v.setUint32(tail.length - 8, Math.floor(bits / 2 ** 32));
    v.setUint32(tail.length - 4, bits >>> 0);
    this.update(tail);
    const out = new Uint8Array(32);
    const o = new DataView(out.buffer);
    this.h.forEach((x, i) => o.setUint32(i * 4, x));
    return out;
  }
}

/** SHA-256 of bytes or a string (UTF-8). */
export const sha256 = (data) =>
  new Sha256().update(typeof data === 'string' ? new TextEncoder().encode(data) : data).digest();

/** Lower-case hex of bytes. */
export const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
