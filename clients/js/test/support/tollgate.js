// Starts a real tollgate on loopback with a fresh SQLite database, for the tests to talk to.

import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

/** The binary: $TOLLGATE_BIN, else the debug build, else the release build. */
export function tollgateBinary() {
  if (process.env.TOLLGATE_BIN) {
    if (!existsSync(process.env.TOLLGATE_BIN)) {
      throw new Error(`TOLLGATE_BIN is ${process.env.TOLLGATE_BIN}, which does not exist`);
    }
    return process.env.TOLLGATE_BIN;
  }
  for (const build of ["debug", "release"]) {
    const path = join(repoRoot, "target", build, "tollgate");
    if (existsSync(path)) return path;
  }
  throw new Error(
    "no tollgate binary: run `cargo build` at the repository root first, or set TOLLGATE_BIN",
  );
}

/**
 * A running tollgate with an admin key, a service key, a plan granting `articles` and a reader
 * (`subscriber`) granted `articles`. `settings` are extra TOLLGATE_* variables. Call stop()
 * when done; a test process that dies kills it too.
 */
export async function startTollgate(settings = {}) {
  const bin = tollgateBinary();
  const dir = await mkdtemp(join(tmpdir(), "tollgate-js-"));
  const env = {
    // Any other TOLLGATE_* variable (such as TOLLGATE_BIN) would stop tollgate from starting.
    ...Object.fromEntries(
      Object.entries(process.env).filter(
        ([name]) => !name.startsWith("TOLLGATE_") && name !== "DATABASE_URL",
      ),
    ),
    TOLLGATE_DATABASE_URL: `sqlite://${join(dir, "t.db")}`,
    TOLLGATE_BIND: "127.0.0.1:0",
    TOLLGATE_LOG_FORMAT: "json",
    TOLLGATE_LOG_LEVEL: "warn,tollgate::startup=info",
    ...settings,
  };
  const createKey = async (role) =>
    (
      await run(bin, ["keys", "create", "--role", role, "--name", `js-${role}`], { env })
    ).stdout.trim();
  const adminKey = await createKey("admin");
  const serviceKey = await createKey("service");

  const child = spawn(bin, ["serve"], { env, stdio: ["ignore", "ignore", "pipe"] });
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  let stopped = false;
  async function stop() {
    if (!stopped) {
      stopped = true;
      child.kill("SIGKILL");
      await exited;
      process.removeListener("exit", killOnExit);
      await rm(dir, { recursive: true, force: true });
    }
  }

  try {
    const address = await listeningAddress(child);
    const baseUrl = `http://${address}/`;
    await waitUntilReady(baseUrl);
    const admin = (method, path, body) => api(baseUrl, adminKey, method, path, body);
    await admin("PUT", "v1/plans/all-access", {
      name: "All access",
      stripe_prices: ["price_test_all_access"],
      entitlements: ["articles"],
    });
    await admin("POST", "v1/readers/subscriber/grants", {
      entitlements: ["articles"],
      expires_at: "2099-01-01T00:00:00Z",
      reason: "test subscriber",
    });
    return {
      baseUrl,
      jwksUrl: new URL(".well-known/jwks.json", baseUrl),
      adminKey,
      serviceKey,
      admin,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A JSON call to tollgate that must succeed; the parsed answer. */
export async function api(baseUrl, key, method, path, body) {
  const response = await fetch(new URL(path, baseUrl), {
    method,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text === "" ? null : JSON.parse(text);
}

// tollgate logs the address it bound ("listening", as JSON here) once its socket is open.
function listeningAddress(child) {
  const log = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`tollgate did not listen within 20 s:\n${log.join("\n")}`)),
      20_000,
    );
    createInterface({ input: child.stderr }).on("line", (line) => {
      log.push(line);
      try {
        const event = JSON.parse(line);
        if (event.message === "listening") {
          clearTimeout(timer);
          resolve(event.address);
        }
      } catch {
        // Not a JSON log line; kept for the error message.
      }
    });
    // Once resolved, a later exit (stop()) changes nothing.
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`tollgate exited (${code}) before listening:\n${log.join("\n")}`));
    });
  });
}

async function waitUntilReady(baseUrl) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await fetch(new URL("readyz", baseUrl))).ok) return;
    } catch {
      // Not accepting connections yet.
    }
    if (Date.now() > deadline) throw new Error("tollgate was not ready within 10 s");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
