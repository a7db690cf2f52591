// Small helpers shared by setup.mjs, check.mjs and fill-totp.mjs.

import http from "node:http";
import * as OTPAuth from "otpauth";

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

// One HTTP/1.1 request through node:http (full control over headers: Origin
// and Cookie are sent exactly as given, redirects are not followed).
export function request(base, { method, path, headers = {}, body = "" }) {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method, agent, headers: { ...headers, "content-length": Buffer.byteLength(body) } },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json = null;
          try {
            json = text ? JSON.parse(text) : null;
          } catch {}
          // name -> value of every Set-Cookie (value as sent, still encoded).
          const cookies = {};
          for (const sc of res.headers["set-cookie"] || []) {
            const pair = sc.split(";")[0];
            const eq = pair.indexOf("=");
            cookies[pair.slice(0, eq).trim()] = pair.slice(eq + 1);
          }
          resolve({ status: res.statusCode, headers: res.headers, text, json, cookies });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

export const cookieHeader = (pairs) =>
  Object.entries(pairs)
    .map(([k, v]) => `${k}=${v}`)
    .join("; ");

// Run `fn` over `items` with at most `limit` calls in flight.
export async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export function parseArgs(argv, defaults) {
  const args = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2);
    if (!(key in defaults)) throw new Error(`unknown option ${a}`);
    args[key] = argv[++i];
    if (args[key] === undefined) throw new Error(`${a} needs a value`);
  }
  return args;
}

// ---- TOTP (independent of better-auth: the `otpauth` package) -------------

export const TOTP_PLACEHOLDER = "{{TOTP}}";

export function totpFor(base32Secret, timestamp = Date.now()) {
  return new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(base32Secret), digits: 6, period: 30, algorithm: "SHA1" }).generate({
    timestamp,
  });
}

// Fill the {{TOTP}} placeholder of one pool entry (an object).
//
// better-auth verifies a TOTP with a window of one step either side
// (@better-auth/utils/otp verifyTOTP, window = 1, always computing all three
// codes). The code of the *next* 30-second step is therefore accepted from
// now until the end of the step after it: at least 60 s and up to 90 s from
// the moment of filling. The verification work is the same whichever of the
// three codes matches.
export function fillTotp(entry, now = Date.now()) {
  if (!entry.totp_secret || !entry.body.includes(TOTP_PLACEHOLDER)) return entry;
  const code = totpFor(entry.totp_secret, now + 30_000);
  return { ...entry, body: entry.body.replace(TOTP_PLACEHOLDER, code) };
}
