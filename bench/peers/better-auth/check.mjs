// Sends one line of each pool once and checks its answer.
//
//   node check.mjs --base http://127.0.0.1:3005 --dir pools [--line 1]
//   node check.mjs --base http://127.0.0.1:3005 --dir pools --all yes
//
// --all yes sends every line of every pool once instead, in reverse order,
// 8 in flight, and counts the answers that match (spends the whole pools).
//
// Prints step, status, expected status and whether it matched (status and the
// step's success_marker in the body); exits 1 on any mismatch. A checked line
// of a single-use pool is spent: run the load with the other lines, or check
// a pool made for the purpose.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { request, parseArgs, fillTotp, mapLimit } from "./lib.mjs";

const args = parseArgs(process.argv.slice(2), { base: "http://127.0.0.1:3005", dir: "", line: "1", all: "no" });
if (!args.dir) {
  console.error("usage: node check.mjs --base URL --dir DIR [--line 1]");
  process.exit(2);
}
const meta = JSON.parse(readFileSync(join(args.dir, "meta.json"), "utf8"));
const lineNo = Number(args.line);

const matches = (info, res) =>
  res.status === info.expected_status && (!info.success_marker || res.text.includes(info.success_marker));

let failed = 0;
if (args.all === "yes") {
  console.log(["step", "lines", "matched", "seconds", "statuses"].join("\t"));
  for (const [step, info] of Object.entries(meta.steps)) {
    const lines = readFileSync(join(args.dir, info.file), "utf8").split("\n").filter(Boolean).reverse();
    const now = Date.now();
    const t = Date.now();
    const statuses = {};
    let ok = 0;
    await mapLimit(lines, 8, async (l) => {
      const res = await request(args.base, fillTotp(JSON.parse(l), now));
      statuses[res.status] = (statuses[res.status] || 0) + 1;
      if (matches(info, res)) ok++;
    });
    if (ok !== lines.length) failed++;
    console.log([step, lines.length, ok, ((Date.now() - t) / 1000).toFixed(2), JSON.stringify(statuses)].join("\t"));
  }
  process.exit(failed ? 1 : 0);
}

console.log(["step", "status", "expected", "marker", "ok"].join("\t"));
for (const [step, info] of Object.entries(meta.steps)) {
  const lines = readFileSync(join(args.dir, info.file), "utf8").split("\n").filter(Boolean);
  const entry = fillTotp(JSON.parse(lines[lineNo - 1]));
  const res = await request(args.base, entry);
  const markerOk = !info.success_marker || res.text.includes(info.success_marker);
  const ok = matches(info, res);
  if (!ok) failed++;
  console.log([step, res.status, info.expected_status, markerOk ? "yes" : "no", ok ? "ok" : "MISMATCH"].join("\t"));
  if (!ok) console.log(`  ${entry.method} ${entry.path} -> ${res.text.slice(0, 200)}`);
}
process.exit(failed ? 1 : 0);
