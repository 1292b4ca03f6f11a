import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { DaemonError } from "./errors";
import { TemplateStore } from "./templates";

const scratch = mkdtempSync(path.join(tmpdir(), "virga-templates-"));
after(() => {
  rmSync(scratch, { recursive: true, force: true });
});

const config = {
  machine: "microvm",
  kernel: "/images/probe.elf",
  append: "",
  bootEntry: "linux64",
  smp: { cpus: 1, maxCpus: 1, sockets: 1, cores: 1, threads: 1 },
  memoryBytes: 64 * 1024 * 1024,
  drives: [],
  netdevs: [],
  devices: [],
  serial: { kind: "none" },
  daemonize: false,
  startPaused: false,
};

/** A store with one template, as a snapshot leaves it (without the snapshot's own files). */
function storeWith(name: string): TemplateStore {
  const root = mkdtempSync(path.join(scratch, "run-"));
  const store = new TemplateStore(root, () => undefined);
  store.prepare();
  mkdirSync(store.dir(name));
  writeFileSync(path.join(store.dir(name), "config.json"), JSON.stringify(config));
  writeFileSync(
    path.join(store.dir(name), "meta.json"),
    JSON.stringify({ name, createdAt: "2026-01-01T00:00:00.000Z", clonesMade: 0, nics: [] }),
  );
  return store;
}

function code(expected: string, message: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof DaemonError, String(error));
    assert.equal(error.code, expected);
    assert.match(error.message, message);
    return true;
  };
}

describe("TemplateStore", () => {
  it("names a bad or unknown template by the field", () => {
    const store = storeWith("tpl");
    assert.throws(
      () => store.get("../etc"),
      code("BAD_REQUEST", /^template: '\.\.\/etc' must match/),
    );
    assert.throws(
      () => store.get("nope", "name"),
      code("NOT_FOUND", /^name: no template named 'nope'/),
    );
    assert.equal(store.get("tpl").config.memoryBytes, 64 * 1024 * 1024);
  });

  it("refuses to delete a template while clones are being started from it, then deletes it", async () => {
    const store = storeWith("tpl");
    let release: () => void = () => undefined;
    const cloning = store.cloning(
      "tpl",
      2,
      () => new Promise<void>((resolve) => (release = resolve)),
    );
    assert.equal(store.get("tpl").clonesStarting, 2);
    await assert.rejects(
      store.remove("tpl", []),
      code("PRECONDITION_FAILED", /template 'tpl' is in use: 2 clones are being started from it/),
    );
    release();
    await cloning;
    await assert.rejects(
      store.remove("tpl", ["tpl-1"]),
      code("PRECONDITION_FAILED", /needed by clones that have not restored it yet \(tpl-1\)/),
    );
    assert.deepEqual(await store.remove("tpl", []), { name: "tpl" });
    assert.deepEqual(readdirSync(store.root), []);
  });

  it("counts clones made", async () => {
    const store = storeWith("tpl");
    await Promise.all([store.recordClones("tpl", 2), store.recordClones("tpl", 3)]);
    assert.equal(store.get("tpl").clonesMade, 5);
  });

  it("removes what a crash left half-built at start", () => {
    const store = storeWith("tpl");
    mkdirSync(path.join(store.root, ".new-x-1234"));
    mkdirSync(path.join(store.root, "..new-x-1234.tmp-1-2"));
    store.prepare();
    assert.deepEqual(readdirSync(store.root), ["tpl"]);
  });
});
