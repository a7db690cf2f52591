// Fills the {{TOTP}} placeholder of a totp-verify pool with codes computed
// now from each line's totp_secret (otpauth, independent of better-auth).
//
//   node fill-totp.mjs pools/totp-verify.jsonl > /tmp/totp-verify.filled.jsonl
//
// Each filled code is the one of the next 30-second step: better-auth's
// window (one step either side) accepts it for at least 60 s and at most 90 s
// from now. Fill right before the load run and keep that run under 60 s.
// The totp_secret field is kept (the bench ignores unknown fields).

import { readFileSync } from "node:fs";
import { fillTotp } from "./lib.mjs";

const [file] = process.argv.slice(2);
if (!file) {
  console.error("usage: node fill-totp.mjs POOL.jsonl > FILLED.jsonl");
  process.exit(2);
}
const now = Date.now();
const out = readFileSync(file, "utf8")
  .split("\n")
  .filter(Boolean)
  .map((l) => JSON.stringify(fillTotp(JSON.parse(l), now)));
process.stdout.write(out.join("\n") + "\n");
