"use client";
// The audit log (admin) and a check of its hash chain for the rows shown: ids consecutive and
// each row's prev_hash equal to the older row's hash (authoritative), plus each row's own hash
// recomputed in the browser where Web Crypto is available. The full check of the whole log is
// `outpost hub audit verify`.
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { api, can, errorText, type Schemas } from "@/api/client";
import { useAuth } from "@/lib/auth";

type Entry = Schemas["AuditEntryOut"];
const GENESIS = "0".repeat(64);

function canonical(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  const keys = Object.keys(value as object).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(",")}}`;
}

/** Python's `datetime.isoformat(timespec="microseconds")` of the row's UTC time. */
function pyIso(at: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]00:00)$/.exec(at);
  if (!m) return at;
  return `${m[1]}.${(m[2] ?? "").padEnd(6, "0").slice(0, 6)}+00:00`;
}

async function ownHash(e: Entry): Promise<string> {
  const body = { id: e.id, at: pyIso(e.at), actor: e.actor, role: e.role, action: e.action, target: e.target, decision: e.decision, result: e.result, detail: canonical(e.detail), prev_hash: e.prev_hash };
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical(body)));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function verify(rows: Entry[], hasOlder: boolean): Promise<{ ok: boolean; text: string }> {
  for (let i = 0; i < rows.length - 1; i++) {
    const newer = rows[i]!;
    const older = rows[i + 1]!;
    if (newer.id !== older.id + 1) return { ok: false, text: `Gap: row ${older.id} is followed by row ${newer.id}` };
    if (newer.prev_hash !== older.hash) return { ok: false, text: `Broken link: row ${newer.id} does not point at row ${older.id}` };
  }
  const last = rows[rows.length - 1];
  if (last && !hasOlder && last.id === 1 && last.prev_hash !== GENESIS) return { ok: false, text: "Row 1 does not start the chain" };
  let recomputed = "";
  if (globalThis.crypto?.subtle) {
    const bad: number[] = [];
    for (const r of rows) if ((await ownHash(r)) !== r.hash) bad.push(r.id);
    recomputed = bad.length
      ? ` Hashes of row(s) ${bad.slice(0, 5).join(", ")} could not be reproduced in the browser; run \`outpost hub audit verify\`.`
      : " Every row's own hash was recomputed and matches.";
  }
  return { ok: true, text: `Chain links intact for the ${rows.length} row(s) shown.${recomputed}` };
}

export default function AuditPage() {
  const { principal } = useAuth();
  const [rows, setRows] = useState<Entry[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [query, setQuery] = useState<{ actor?: string; action?: string; decision?: "allowed" | "denied" }>({});
  const [check, setCheck] = useState<{ ok: boolean; text: string } | null>(null);
  const [error, setError] = useState("");

  const load = useCallback(async (cursor?: string) => {
    const { data, error: err } = await api.GET("/api/v1/audit", { params: { query: { ...query, cursor, limit: 100 } } });
    if (!data) {
      setError(errorText(err));
      return;
    }
    const all = cursor ? [...rows, ...data.items] : data.items;
    setRows(all);
    setNext(data.next_cursor);
    const filtered = Boolean(query.actor || query.action || query.decision);
    setCheck(filtered ? { ok: true, text: "Clear the filters to check the chain (filtered rows are not consecutive)." } : await verify(all, data.next_cursor !== null));
  }, [query, rows]);
  useEffect(() => void load(), [query]);

  if (!can(principal, "admin")) return <p role="alert">The audit log is for admins.</p>;
  const search = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const decision = String(form.get("decision") ?? "");
    setQuery({
      actor: String(form.get("actor") ?? "") || undefined,
      action: String(form.get("action") ?? "") || undefined,
      decision: decision === "allowed" || decision === "denied" ? decision : undefined,
    });
  };

  return (
    <div className="page">
      <h1>Audit log</h1>
      {check && (
        <p role="status" data-testid="chain-status" className={check.ok ? "ok" : "error"}>
          {check.ok ? "✔ " : "✘ "}
          {check.text}
        </p>
      )}
      {error && <p role="alert" className="error">{error}</p>}
      <form className="row" role="search" onSubmit={search}>
        <label>
          Actor <input name="actor" />
        </label>
        <label>
          Action starts with <input name="action" placeholder="POST /api/v1/devices" />
        </label>
        <label>
          Decision{" "}
          <select name="decision" defaultValue="">
            <option value="">any</option>
            <option>allowed</option>
            <option>denied</option>
          </select>
        </label>
        <button type="submit">Search</button>
      </form>
      <table className="card">
        <thead>
          <tr>
            <th>#</th>
            <th>At</th>
            <th>Actor</th>
            <th>Action</th>
            <th>Target</th>
            <th>Decision</th>
            <th>Result</th>
            <th>Detail</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.id} className={r.decision === "denied" ? "denied" : undefined}>
              <td>{r.id}</td>
              <td>{new Date(r.at).toLocaleString()}</td>
              <td>
                {r.actor}
                {r.role ? ` (${r.role})` : ""}
              </td>
              <td>{r.action}</td>
              <td>{r.target}</td>
              <td>{r.decision}</td>
              <td>{r.result}</td>
              <td>
                <code>{JSON.stringify(r.detail).slice(0, 120)}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {next && (
        <button type="button" onClick={() => void load(next)}>
          Older rows
        </button>
      )}
    </div>
  );
}
