// Prepares pools of ready-to-send requests for each benchmarked flow, through
// better-auth's HTTP API only (as a client would), and writes them as JSON
// Lines: <out>/<step>.jsonl, plus <out>/meta.json.
//
//   node setup.mjs --base http://127.0.0.1:3005 --out pools [--n 2000]
//                  [--reusable 64] [--concurrency 8]
//
// --n            entries of each single-use pool (distinct users / codes / links)
// --reusable     distinct users behind each reusable pool
// --concurrency  setup requests in flight
//
// Every step has users of its own, so that no pool invalidates another
// (a later OTP send for an email replaces the earlier OTP; a sign-in of a
// 2FA user makes a new challenge).

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { request, cookieHeader, mapLimit, parseArgs, totpFor, TOTP_PLACEHOLDER } from "./lib.mjs";

const args = parseArgs(process.argv.slice(2), {
  base: "http://127.0.0.1:3005",
  out: "",
  n: "2000",
  reusable: "64",
  concurrency: "8",
});
if (!args.out) {
  console.error("usage: node setup.mjs --base URL --out DIR [--n 2000] [--reusable 64] [--concurrency 8]");
  process.exit(2);
}
const BASE = args.base.replace(/\/$/, "");
const ORIGIN = new URL(BASE).origin;
const N = Number(args.n);
const R = Number(args.reusable);
const C = Number(args.concurrency);
const PASSWORD = "bench-password-123"; // better-auth's minimum length is 8
const RUN = Date.now().toString(36); // keeps emails unique if setup runs twice against one server
const SESSION_COOKIE = "better-auth.session_token"; // no __Secure- prefix: baseURL is http
const TWO_FACTOR_COOKIE = "better-auth.two_factor";

const email = (step, i) => `${step}-${i}-${RUN}@bench.test`;

// Headers of every POST. better-auth refuses a cookie-carrying POST with no
// Origin/Referer (403 MISSING_OR_NULL_ORIGIN) and checks any Origin that is
// sent against trustedOrigins (the baseURL's origin is trusted), so every
// pooled POST carries the server's own origin.
const postHeaders = (cookie) => ({
  "content-type": "application/json",
  ...(cookie ? { cookie } : {}),
  origin: ORIGIN,
});

// A pool entry (what the bench sends) and a call that sends one during setup.
const post = (path, body, cookie) => ({ method: "POST", path, headers: postHeaders(cookie), body: JSON.stringify(body) });
const get = (path, cookie) => ({ method: "GET", path, headers: cookie ? { cookie } : {}, body: "" });

async function send(entry, want = 200) {
  const res = await request(BASE, entry);
  if (res.status !== want) {
    throw new Error(`${entry.method} ${entry.path} -> ${res.status} (wanted ${want}): ${res.text.slice(0, 300)}`);
  }
  return res;
}

async function outbox(addr) {
  const res = await send(get(`/_bench/outbox?email=${encodeURIComponent(addr)}`));
  return res.json;
}

// ---- user-making chains ------------------------------------------------------

// Sign up with a password (one password hash). Returns the session cookie.
async function signUpPassword(addr) {
  const res = await send(post("/api/auth/sign-up/email", { email: addr, password: PASSWORD, name: addr.split("@")[0] }));
  return cookieHeader({ [SESSION_COOKIE]: res.cookies[SESSION_COOKIE] });
}

// Create a user through an email OTP sign-in: better-auth creates it with
// emailVerified = true (no password, no hash). A user whose email is not
// verified would instead go through revokeUnprovenAccountAccess (deletes its
// accounts and sessions) on its first OTP or magic-link sign-in.
async function createViaEmailOtp(addr) {
  await send(post("/api/auth/email-otp/send-verification-otp", { email: addr, type: "sign-in" }));
  const { otp } = await outbox(addr);
  await send(post("/api/auth/sign-in/email-otp", { email: addr, otp }));
}

// Same through a magic link (GET verify without callbackURL answers 200 JSON).
async function createViaMagicLink(addr) {
  await send(post("/api/auth/sign-in/magic-link", { email: addr }));
  const { token } = await outbox(addr);
  await send(get(`/api/auth/magic-link/verify?token=${encodeURIComponent(token)}`));
}

// Wait (up to 30 s) for the server's /_bench/ready.
for (let i = 0; ; i++) {
  const ok = await request(BASE, get("/_bench/ready")).then((r) => r.status === 200, () => false);
  if (ok) break;
  if (i >= 60) throw new Error(`${BASE}/_bench/ready did not answer 200 within 30 s`);
  await new Promise((r) => setTimeout(r, 500));
}

const serverInfo = (await send(get("/_bench/stats"))).json;

// ---- steps ---------------------------------------------------------------------

const steps = [];
const t0 = Date.now();
const log = (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
const range = (k) => Array.from({ length: k }, (_, i) => i);

// password-signin: users without 2FA; reusable (each send makes a new session).
{
  const users = range(R).map((i) => email("pw", i));
  await mapLimit(users, C, signUpPassword);
  steps.push({
    step: "password-signin",
    entries: users.map((addr) => post("/api/auth/sign-in/email", { email: addr, password: PASSWORD })),
    single_use: false,
    hashes_password: true,
    expected_status: 200,
    success_marker: '"token"',
    description: `email + password sign-in of a user without 2FA: one ${serverInfo.hash.name} verify, a new session row and cookie`,
  });
  log(`password-signin: ${users.length} users`);
}

// session-check: the session cookie of a signed-in user; reusable.
{
  const users = range(R).map((i) => email("sess", i));
  const cookies = await mapLimit(users, C, signUpPassword);
  steps.push({
    step: "session-check",
    entries: cookies.map((cookie) => get("/api/auth/get-session", cookie)),
    single_use: false,
    hashes_password: false,
    expected_status: 200,
    // get-session answers 200 with `null` for a missing/invalid session.
    success_marker: '"session"',
    description: "GET /get-session with a session cookie: HMAC check of the signed cookie, session + user lookup (no cookie cache)",
  });
  log(`session-check: ${users.length} sessions`);
}

// totp-verify: one entry per distinct user with TOTP enabled; single-use
// (the two_factor cookie names a challenge row consumed on success).
{
  const users = range(N).map((i) => email("totp", i));
  const entries = await mapLimit(users, C, async (addr) => {
    let cookie = await signUpPassword(addr); // hash 1
    // enable asks for the password (hash verify 2) and answers the otpauth URI.
    const en = await send(post("/api/auth/two-factor/enable", { password: PASSWORD }, cookie));
    const secret = new URL(en.json.totpURI).searchParams.get("secret");
    // The first good code with the session turns 2FA on (new session cookie).
    const ver = await send(post("/api/auth/two-factor/verify-totp", { code: totpFor(secret) }, cookie));
    if (!ver.cookies[SESSION_COOKIE]) throw new Error("verify-totp set no session cookie");
    // Password sign-in (hash verify 3) now stops at the second factor.
    const si = await send(post("/api/auth/sign-in/email", { email: addr, password: PASSWORD }));
    if (!si.json?.twoFactorRedirect || !si.cookies[TWO_FACTOR_COOKIE]) throw new Error(`no 2FA challenge: ${si.text}`);
    const entry = post("/api/auth/two-factor/verify-totp", { code: "000000" }, cookieHeader({ [TWO_FACTOR_COOKIE]: si.cookies[TWO_FACTOR_COOKIE] }));
    entry.body = entry.body.replace("000000", TOTP_PLACEHOLDER);
    entry.totp_secret = secret; // base32, from the totpURI
    return entry;
  });
  steps.push({
    step: "totp-verify",
    entries,
    single_use: true,
    hashes_password: false,
    expected_status: 200,
    success_marker: '"token"',
    totp_placeholder: TOTP_PLACEHOLDER,
    description:
      "second factor after a password sign-in: the two_factor challenge cookie + a TOTP code; consumes the challenge, makes the session. Body holds {{TOTP}}: fill it from totp_secret right before the run (fill-totp.mjs)",
  });
  log(`totp-verify: ${entries.length} challenges`);
}

// email-otp-send: existing (verified) users; reusable.
{
  const users = range(R).map((i) => email("otpsend", i));
  await mapLimit(users, C, createViaEmailOtp);
  steps.push({
    step: "email-otp-send",
    entries: users.map((addr) => post("/api/auth/email-otp/send-verification-otp", { email: addr, type: "sign-in" })),
    single_use: false,
    hashes_password: false,
    expected_status: 200,
    success_marker: '"success":true',
    description: "send a sign-in OTP to an existing user: new 6-digit code stored (plain, better-auth's default), user lookup, handed to the in-memory outbox",
  });
  log(`email-otp-send: ${users.length} users`);
}

// email-otp-signin: one OTP per distinct user, sent after the user exists.
{
  const users = range(N).map((i) => email("otp", i));
  const entries = await mapLimit(users, C, async (addr) => {
    await createViaEmailOtp(addr);
    await send(post("/api/auth/email-otp/send-verification-otp", { email: addr, type: "sign-in" }));
    const { otp } = await outbox(addr);
    return post("/api/auth/sign-in/email-otp", { email: addr, otp });
  });
  steps.push({
    step: "email-otp-signin",
    entries,
    single_use: true,
    hashes_password: false,
    expected_status: 200,
    success_marker: '"token"',
    description: "sign in with email + OTP of a verified user: consumes the OTP row, makes the session",
  });
  log(`email-otp-signin: ${entries.length} OTPs`);
}

// magic-link-send: existing (verified) users; reusable.
{
  const users = range(R).map((i) => email("mlsend", i));
  await mapLimit(users, C, createViaMagicLink);
  steps.push({
    step: "magic-link-send",
    entries: users.map((addr) => post("/api/auth/sign-in/magic-link", { email: addr })),
    single_use: false,
    hashes_password: false,
    expected_status: 200,
    success_marker: '"status":true',
    description: "request a magic link for an existing user: random 32-char token stored (plain), link handed to the in-memory outbox",
  });
  log(`magic-link-send: ${users.length} users`);
}

// magic-link-verify: one link per distinct user. Sent without callbackURL:
// better-auth then answers 200 with the session as JSON. With callbackURL (as
// in the emailed URL) success is a 302 to it, and so is every failure (to
// the error callback), which a status count cannot tell apart.
{
  const users = range(N).map((i) => email("ml", i));
  const entries = await mapLimit(users, C, async (addr) => {
    await createViaMagicLink(addr);
    await send(post("/api/auth/sign-in/magic-link", { email: addr }));
    const { token } = await outbox(addr);
    return get(`/api/auth/magic-link/verify?token=${encodeURIComponent(token)}`);
  });
  steps.push({
    step: "magic-link-verify",
    entries,
    single_use: true,
    hashes_password: false,
    expected_status: 200,
    success_marker: '"token"',
    description:
      "open a magic link (GET, token only, no callbackURL): consumes the token row, makes the session, answers 200 JSON (a failure is a 302 to /?error=INVALID_TOKEN)",
  });
  log(`magic-link-verify: ${entries.length} links`);
}

// ---- write ---------------------------------------------------------------------

mkdirSync(args.out, { recursive: true });
const server = (await send(get("/_bench/stats"))).json;
const meta = {
  peer: "better-auth",
  better_auth: server.better_auth,
  node: server.node,
  hash: server.hash,
  adapter: server.db,
  base: BASE,
  origin_header: ORIGIN,
  made_at: new Date().toISOString(),
  single_use_ttl_seconds: 3600,
  rate_limit: "off (rateLimit.enabled = false)",
  steps: {},
};
for (const s of steps) {
  const file = `${s.step}.jsonl`;
  writeFileSync(join(args.out, file), s.entries.map((e) => JSON.stringify(e)).join("\n") + "\n");
  const { entries, step, ...rest } = s;
  meta.steps[step] = { file, entries: entries.length, method: entries[0].method, path: entries[0].path.split("?")[0], ...rest };
}
writeFileSync(join(args.out, "meta.json"), JSON.stringify(meta, null, 2) + "\n");
log(`wrote ${steps.length} pools and meta.json to ${args.out}; server rows: ${JSON.stringify(server.rows)}`);
