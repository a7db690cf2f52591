// better-auth peer for latchkey's benchmark: one Node process, one node:http
// server, better-auth mounted at /api/auth, plus two bench-only routes under
// /_bench/ (outside better-auth).
//
//   PORT         listen port on 127.0.0.1 (default 3005)
//   BENCH_HASH   argon2id (default: 19 MiB, t=2, p=1, 32-byte output, through
//                @node-rs/argon2) | scrypt (better-auth's own default hash)
//   BENCH_DB     sqlite (default: in-process SQLite through `libsql`,
//                better-auth's Kysely adapter, tables and indexes made by
//                better-auth's own migrations) | memory (better-auth's memory
//                adapter: see README, it does not hold up at pool sizes)
//   BENCH_SQLITE_PATH  with BENCH_DB=sqlite: database file (default :memory:)
//
// Prints one line `listening on http://127.0.0.1:<port>` when ready.

import http from "node:http";
import { readFileSync } from "node:fs";
import { betterAuth } from "better-auth";
import { toNodeHandler } from "better-auth/node";
import { memoryAdapter } from "better-auth/adapters/memory";
import { twoFactor, emailOTP, magicLink } from "better-auth/plugins";
import { hash as argon2Hash, verify as argon2Verify } from "@node-rs/argon2";

// Versions as installed (better-auth's exports map hides its package.json).
const pkgVersion = (name) =>
  JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), "utf8")).version;
const BETTER_AUTH_VERSION = pkgVersion("better-auth");
const LIBSQL_VERSION = pkgVersion("libsql");

const PORT = Number(process.env.PORT || 3005);
const HOST = "127.0.0.1";
const BASE_URL = `http://${HOST}:${PORT}`;
const HASH = process.env.BENCH_HASH || "argon2id";
// Not the memory adapter by default: its transaction() structuredClone()s
// the whole database twice and JSON-compares every row on commit, and every
// single-use step (TOTP challenge, OTP, magic link) is consumed inside a
// transaction; with a few thousand users that is ~3 requests/s. See README.
const DB = process.env.BENCH_DB || "sqlite";

// Lifetime of everything single-use that setup prepares (OTPs, magic links,
// the two-factor challenge cookie). better-auth's defaults are 300 s (email
// OTP), 300 s (magic link) and 600 s (two-factor cookie); the bench needs its
// pools to stay valid for at least 10 minutes after setup, so all three are
// raised to one hour. This changes no per-request work, only the expiry time.
const SINGLE_USE_TTL_S = 3600;

// ---- password hashing -------------------------------------------------------

// argon2id with the benchmark's parameters (OWASP's minimum): m = 19456 KiB
// (19 MiB), t = 2, p = 1, 32-byte tag, 16-byte random salt (the library's
// default), PHC string.
// @node-rs/argon2 runs the hash on libuv's thread pool (not on the JS thread),
// as better-auth's own scrypt does.
const ARGON2 = {
  algorithm: 2, // Algorithm.Argon2id (a const enum in the .d.ts; 2 at run time)
  memoryCost: 19456,
  timeCost: 2,
  parallelism: 1,
  outputLen: 32,
};

// Read from node_modules/@better-auth/utils/dist/password.node.mjs (1.7.25):
// node:crypto scrypt, N=16384, r=16, p=1, 64-byte key, 16-byte salt (hex).
const HASH_INFO = HASH === "argon2id"
  ? { name: "argon2id", library: `@node-rs/argon2 ${pkgVersion("@node-rs/argon2")}`, memory_kib: ARGON2.memoryCost, t: ARGON2.timeCost, p: ARGON2.parallelism, output_bytes: ARGON2.outputLen, salt_bytes: 16 }
  : { name: "scrypt", library: "node:crypto (better-auth default)", N: 16384, r: 16, p: 1, output_bytes: 64, salt_bytes: 16, memory_mib: 32 };

let password; // undefined = better-auth's default (scrypt N=16384 r=16 p=1, 64 bytes)
if (HASH === "argon2id") {
  password = {
    hash: (plain) => argon2Hash(plain, ARGON2),
    verify: ({ hash, password: plain }) => argon2Verify(hash, plain),
  };
} else if (HASH !== "scrypt") {
  console.error(`BENCH_HASH must be argon2id or scrypt, not ${HASH}`);
  process.exit(2);
}

// ---- database -----------------------------------------------------------------

let database;
let memoryDb = null;
let rowCounts = () => null; // rows per table, for /_bench/stats
if (DB === "memory") {
  // Every table the configured plugins use must exist up front: the memory
  // adapter throws "Model X not found" for a missing one.
  memoryDb = { user: [], session: [], account: [], verification: [], twoFactor: [] };
  database = memoryAdapter(memoryDb);
  rowCounts = () => Object.fromEntries(Object.entries(memoryDb).map(([k, v]) => [k, v.length]));
} else if (DB === "sqlite") {
  // `libsql` is better-sqlite3's API over libSQL (SQLite 3.45), with prebuilt
  // binaries in npm optional dependencies (better-sqlite3 itself downloads
  // its binary from GitHub or compiles for minutes).
  const { default: Database } = await import("libsql");
  const { SqliteDialect } = await import("kysely");
  const path = process.env.BENCH_SQLITE_PATH || ":memory:";
  const sqlite = new Database(path);
  if (path !== ":memory:") {
    sqlite.exec("PRAGMA journal_mode = WAL");
    sqlite.exec("PRAGMA synchronous = NORMAL");
  }
  rowCounts = () =>
    Object.fromEntries(
      ["user", "session", "account", "verification", "twoFactor"].map((t) => [t, sqlite.prepare(`SELECT count(*) AS n FROM "${t}"`).get().n]),
    );
  // Not `database: sqlite`: a libsql Database has a `db` property, which
  // better-auth's Kysely adapter takes for `{ db: <Kysely> }`. Given as a
  // dialect, with transactions on, exactly as better-auth configures itself
  // for a better-sqlite3 database (Kysely's SqliteDialect: one connection,
  // queries and transactions serialised by its mutex).
  database = { dialect: new SqliteDialect({ database: sqlite }), type: "sqlite", transaction: true };
} else {
  console.error(`BENCH_DB must be memory or sqlite, not ${DB}`);
  process.exit(2);
}

// ---- outbox -----------------------------------------------------------------

// What better-auth would send, by email (lower-cased): the latest OTP and the
// latest magic link. One entry per address, so repeated sends under load
// overwrite rather than grow it.
const outbox = new Map();
function remember(email, fields) {
  const key = email.toLowerCase();
  const entry = outbox.get(key) || { otp: null, url: null, token: null };
  Object.assign(entry, fields);
  outbox.set(key, entry);
}

// ---- better-auth ------------------------------------------------------------

const options = {
  appName: "latchkey-bench",
  baseURL: BASE_URL,
  secret: "latchkey-bench-better-auth-secret-0123456789abcdef",
  database,
  // The baseURL's origin is trusted anyway; listed for clarity. better-auth
  // checks Origin (or Referer) on POSTs that carry a cookie (and on sign-in
  // style routes whenever an Origin is sent); a cookie-carrying POST without
  // one is refused with 403 MISSING_OR_NULL_ORIGIN. The pools therefore send
  // `origin: <base>` on every POST.
  trustedOrigins: [BASE_URL],
  // latchkey's bench raises its own limits; better-auth's limiter is turned
  // off entirely (its plugins would otherwise allow 3 requests a minute on
  // the OTP routes and 3 per 10 s on /two-factor/*).
  rateLimit: { enabled: false },
  logger: { disabled: true },
  telemetry: { enabled: false },
  emailAndPassword: {
    enabled: true,
    ...(password ? { password } : {}),
  },
  plugins: [
    twoFactor({
      // The signed `better-auth.two_factor` cookie names a verification row
      // that expires after twoFactorCookieMaxAge (default 600 s).
      twoFactorCookieMaxAge: SINGLE_USE_TTL_S,
    }),
    emailOTP({
      expiresIn: SINGLE_USE_TTL_S,
      async sendVerificationOTP({ email, otp }) {
        remember(email, { otp });
      },
    }),
    magicLink({
      expiresIn: SINGLE_USE_TTL_S,
      async sendMagicLink({ email, url, token }) {
        remember(email, { url, token });
      },
    }),
  ],
};

const auth = betterAuth(options);

if (DB === "sqlite") {
  // better-auth's own migration planner: creates its tables and indexes.
  const { getMigrations } = await import("better-auth/db/migration");
  const { runMigrations } = await getMigrations(options);
  await runMigrations();
}

const authHandler = toNodeHandler(auth);

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith("/_bench/")) {
    const url = new URL(req.url, BASE_URL);
    if (req.method === "GET" && url.pathname === "/_bench/ready") return json(res, 200, { ready: true });
    if (req.method === "GET" && url.pathname === "/_bench/outbox") {
      const email = url.searchParams.get("email") || "";
      const entry = outbox.get(email.toLowerCase());
      return entry ? json(res, 200, entry) : json(res, 404, { error: "no message for that email" });
    }
    if (req.method === "GET" && url.pathname === "/_bench/stats") {
      // What runs, rows per table and the process's memory.
      const rows = rowCounts();
      return json(res, 200, {
        better_auth: BETTER_AUTH_VERSION,
        node: process.version,
        db: DB === "sqlite" ? `sqlite (libsql ${LIBSQL_VERSION}, ${process.env.BENCH_SQLITE_PATH || ":memory:"})` : "memory (better-auth/adapters/memory)",
        hash: HASH_INFO,
        rows,
        rss: process.memoryUsage().rss,
        outbox: outbox.size,
      });
    }
    return json(res, 404, { error: "not found" });
  }
  return authHandler(req, res);
});

server.keepAliveTimeout = 65_000;
server.listen(PORT, HOST, () => {
  console.log(`listening on ${BASE_URL}`);
});

for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));
