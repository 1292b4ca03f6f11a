// `npm run fuzz`: builds the libFuzzer harnesses of native/fuzz (clang,
// ASan + UBSan) and runs each for a given time over the corpus kept in the
// repository, then prints executions, coverage and crashes per harness.
//
//   npm run fuzz                           every harness, 60 s each
//   npm run fuzz -- --seconds 600          longer
//   npm run fuzz -- --only json,virtio_blk some of them
//   npm run fuzz -- --fresh                a scratch working corpus (what `npm test` uses)
//   npm run fuzz -- --seeds                rewrite the seed inputs in native/fuzz/corpus
//   npm run fuzz -- --merge                add to native/fuzz/corpus the inputs of earlier runs
//                                          (native/build/fuzz-corpus) that reach code it does not
//   npm run fuzz -- --build-only
//
// New inputs found go to native/build/fuzz-corpus/<harness> (or the scratch
// folder), not into the repository; a crash's input is kept under
// native/build/fuzz-artifacts and printed (path, base64, the command that
// replays it). Add it to native/fuzz/corpus/<harness> as regress-<name>
// once fixed, so every later run replays it. Exits non-zero on a crash.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const native = path.join(here, "..", "..", "..", "native");
const fuzzDir = path.join(native, "fuzz");
const binDir = path.join(native, "build", "sanitize");

function usage(message) {
  console.error(`fuzz: ${message}`);
  console.error(
    "usage: npm run fuzz -- [--seconds N] [--only a,b] [--fresh] [--seeds] [--build-only]",
  );
  process.exit(2);
}

const options = {
  seconds: 60,
  only: null,
  fresh: false,
  seeds: false,
  merge: false,
  buildOnly: false,
};
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === "--seconds") {
    const value = Number(args[++i]);
    if (!Number.isInteger(value) || value < 1)
      usage(`--seconds: expected a whole number of seconds >= 1, got '${args[i]}'`);
    options.seconds = value;
  } else if (arg === "--only") {
    if (args[i + 1] === undefined) usage("--only: expected harness names separated by commas");
    options.only = args[++i].split(",").filter(Boolean);
  } else if (arg === "--fresh") options.fresh = true;
  else if (arg === "--seeds") options.seeds = true;
  else if (arg === "--merge") options.merge = true;
  else if (arg === "--build-only") options.buildOnly = true;
  else usage(`unknown argument '${arg}'`);
}

function clangMissing() {
  const probe = spawnSync("clang++", ["--version"], { encoding: "utf8" });
  return probe.error !== undefined || probe.status !== 0;
}

if (clangMissing()) {
  console.error(
    "fuzz: clang++ is missing: the harnesses need Debian's clang with libFuzzer and the sanitizer runtimes " +
      "(apt-get install clang libclang-rt-14-dev; `npm install` does it as root)",
  );
  process.exit(1);
}
const build = spawnSync("make", ["-s", "-j2", "-C", fuzzDir, "fuzzers"], { stdio: "inherit" });
if (build.status !== 0) {
  console.error("fuzz: building the harnesses failed (see above)");
  process.exit(1);
}
const all = spawnSync("make", ["-s", "-C", fuzzDir, "list"], { encoding: "utf8" })
  .stdout.trim()
  .split(/\s+/);
const harnesses = options.only ?? all;
for (const name of harnesses) {
  if (!all.includes(name)) usage(`--only: no harness '${name}' (there are: ${all.join(", ")})`);
}
if (options.buildOnly) process.exit(0);

if (options.seeds) {
  for (const name of harnesses) {
    const corpus = path.join(fuzzDir, "corpus", name);
    mkdirSync(corpus, { recursive: true });
    for (const file of readdirSync(corpus))
      if (file.startsWith("seed-")) rmSync(path.join(corpus, file));
    const run = spawnSync(path.join(binDir, `${name}_fuzz`), [], {
      env: { ...process.env, VIRGA_FUZZ_SEEDS: corpus },
      stdio: "inherit",
    });
    if (run.status !== 0) {
      console.error(`fuzz: ${name} could not write its seeds`);
      process.exit(1);
    }
    console.log(
      `${name}: ${readdirSync(corpus).filter((f) => f.startsWith("seed-")).length} seeds`,
    );
  }
  process.exit(0);
}

// Inputs that describe a whole guest RAM image need room beyond libFuzzer's 4 KiB default.
const maxLen = {
  virtio_blk: 65536,
  virtio_net: 65536,
  virtio_mmio: 65536,
  state_file: 65536,
  migration_stream: 65536,
};

if (options.merge) {
  // libFuzzer's merge keeps, of the second folder's inputs, those that add
  // coverage to the first's, under names that are their SHA-1.
  for (const name of harnesses) {
    const work = path.join(native, "build", "fuzz-corpus", name);
    const corpus = path.join(fuzzDir, "corpus", name);
    const before = readdirSync(corpus).length;
    const flags = ["-merge=1", ...(maxLen[name] !== undefined ? [`-max_len=${maxLen[name]}`] : [])];
    const run = spawnSync(path.join(binDir, `${name}_fuzz`), [...flags, corpus, work], {
      encoding: "utf8",
    });
    if (run.status !== 0) {
      console.error(`fuzz: merging ${name} failed:\n${run.stderr}`);
      process.exit(1);
    }
    console.log(
      `${name}: ${readdirSync(corpus).length - before} inputs added to native/fuzz/corpus/${name}`,
    );
  }
  process.exit(0);
}

const scratch = options.fresh ? mkdtempSync(path.join(tmpdir(), "virga-fuzz-")) : null;
const results = [];
for (const name of harnesses) {
  const work = path.join(scratch ?? path.join(native, "build", "fuzz-corpus"), name);
  const artifacts = path.join(native, "build", "fuzz-artifacts");
  mkdirSync(work, { recursive: true });
  mkdirSync(artifacts, { recursive: true });
  const flags = [
    `-max_total_time=${options.seconds}`,
    "-timeout=10",
    "-rss_limit_mb=2048",
    // Nothing the VMM allocates should follow a size from its input: one
    // allocation past 256 MiB is a crash, however much memory is free.
    "-malloc_limit_mb=256",
    "-print_final_stats=1",
    `-artifact_prefix=${artifacts}/${name}-`,
  ];
  if (maxLen[name] !== undefined) flags.push(`-max_len=${maxLen[name]}`);
  const started = Date.now();
  const run = spawnSync(
    path.join(binDir, `${name}_fuzz`),
    [...flags, work, path.join(fuzzDir, "corpus", name)],
    {
      encoding: "utf8",
      maxBuffer: 64 << 20,
    },
  );
  const output = (run.stdout ?? "") + (run.stderr ?? "");
  const seconds = (Date.now() - started) / 1000;
  const statusLines = output.split("\n").filter((line) => /^#\d+\s/.test(line));
  const last = statusLines[statusLines.length - 1] ?? "";
  const execs = Number(
    /stat::number_of_executed_units: (\d+)/.exec(output)?.[1] ?? /^#(\d+)/.exec(last)?.[1] ?? 0,
  );
  const cov = Number(/cov: (\d+)/.exec(last)?.[1] ?? 0);
  const ft = Number(/ft: (\d+)/.exec(last)?.[1] ?? 0);
  const corpus = /corp: (\d+)/.exec(last)?.[1] ?? "?";
  const crashed = run.status !== 0;
  results.push({ name, execs, cov, ft, corpus, seconds, crashed });
  console.log(
    `${name}: ${execs} executions in ${seconds.toFixed(0)} s, cov ${cov}, ft ${ft}, corpus ${corpus}` +
      (crashed ? ", CRASHED" : ""),
  );
  if (crashed) {
    // The sanitizer's report and libFuzzer's note of the input it kept.
    const report = output.split("\n").filter((line) => !/^#\d+\s/.test(line));
    console.log(report.slice(-80).join("\n"));
    const unit = /Test unit written to (\S+)/.exec(output)?.[1];
    if (unit !== undefined) {
      const bytes = readFileSync(unit);
      console.log(`reproducer: ${unit} (${bytes.length} bytes)`);
      if (bytes.length <= 4096) console.log(`reproducer base64: ${bytes.toString("base64")}`);
      console.log(`replay with: ${path.join(binDir, `${name}_fuzz`)} ${unit}`);
    } else {
      console.log(`${name} ended with ${run.status ?? run.signal} and kept no input`);
    }
  }
}
if (scratch !== null) rmSync(scratch, { recursive: true, force: true });

const total = results.reduce((sum, r) => sum + r.execs, 0);
const time = results.reduce((sum, r) => sum + r.seconds, 0);
const crashes = results.filter((r) => r.crashed).length;
console.log(
  `fuzz: ${total} executions in ${time.toFixed(0)} s over ${results.length} harnesses, ${crashes} crashed`,
);
process.exit(crashes === 0 ? 0 : 1);
