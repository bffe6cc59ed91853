"use client";
// A device's drift: what its camera sees and its model answers, scored by PSI against the
// camera's own reference (learned from its first windows) and the model's training baseline.
import { useCallback, useEffect, useMemo, useState } from "react";
import { api, errorText, type Schemas } from "@/api/client";
import { Chart } from "./Chart";

type Drift = Schemas["DriftOut"];
const REFRESH_MS = 30_000;
const INPUT_KEYS = ["brightness_hist", "contrast_hist", "blur_hist"];
const INPUT_TITLE = "Input drift (PSI, worst of brightness/contrast/blur)";

/** PSI reading: under 0.1 stable, 0.1 to 0.25 watch, over 0.25 drifted. */
function verdict(psi: number): "stable" | "watch" | "drifted" {
  if (psi < 0.1) return "stable";
  return psi <= 0.25 ? "watch" : "drifted";
}

function verdictClass(psi: number): string | undefined {
  const v = verdict(psi);
  return v === "stable" ? "ok" : v === "drifted" ? "error" : undefined;
}

/** The worst of the input histograms' scores at each window, oldest first. */
function worstInput(history: Drift["history"]): { ts: number[]; values: number[] } {
  const worst = new Map<number, number>();
  for (const key of INPUT_KEYS) {
    for (const s of history[key] ?? []) {
      const t = Date.parse(s.ts) / 1000;
      worst.set(t, Math.max(worst.get(t) ?? 0, s.psi));
    }
  }
  const ts = [...worst.keys()].sort((a, b) => a - b);
  return { ts, values: ts.map((t) => worst.get(t) ?? 0) };
}

function modelName(model: Drift["model"]): string {
  return model ? `${model.name ?? "?"}:${model.version ?? "?"}` : "no model reported";
}

/** The one-line reading: no baseline, learning, or the worst score against the reference. */
function reading(drift: Drift): { text: string; className?: string } {
  const { reference } = drift;
  if (!drift.has_baseline) return { text: "no baseline in the registry" };
  if (reference.learning) return { text: `learning this camera's reference: ${reference.windows}/${reference.needed} windows` };
  const scored = drift.histograms.filter((h) => h.psi != null);
  if (scored.length === 0) return { text: "no drift window scored yet" };
  const worst = scored.reduce((a, b) => ((b.psi ?? 0) > (a.psi ?? 0) ? b : a));
  const psi = worst.psi ?? 0;
  return { text: `${verdict(psi)}: worst PSI ${psi.toFixed(2)} (${worst.key})`, className: verdictClass(psi) };
}

function Status({ drift }: { drift: Drift }) {
  const r = reading(drift);
  const when = drift.window_ts ? new Date(drift.window_ts).toLocaleString() : "none yet";
  return (
    <p className="live-value summary" data-testid="drift-status">
      model {modelName(drift.model)} · <span className={r.className}>{r.text}</span> · newest window {when}
    </p>
  );
}

function Scores({ histograms }: { histograms: Drift["histograms"] }) {
  if (histograms.length === 0) return null;
  return (
    <table data-testid="drift-table">
      <thead>
        <tr>
          <th>Histogram</th>
          <th>PSI vs reference</th>
          <th>PSI vs training</th>
        </tr>
      </thead>
      <tbody>
        {histograms.map((h) => (
          <tr key={h.key}>
            <td>{h.key}</td>
            {h.psi == null ? (
              <td className="muted">learning</td>
            ) : (
              <td className={verdictClass(h.psi)}>
                {h.psi.toFixed(2)} {verdict(h.psi)}
              </td>
            )}
            <td>{h.psi_train.toFixed(2)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Relearn({ id, onDone }: { id: string; onDone: () => void }) {
  const [result, setResult] = useState("");
  const relearn = async () => {
    if (!window.confirm(`Forget what ${id}'s cameras normally show and learn it again from their next windows?`)) return;
    setResult("sending…");
    try {
      const { data, error } = await api.DELETE("/api/v1/devices/{device_id}/drift/reference", { params: { path: { device_id: id } } });
      setResult(data ? `Reference forgotten (${data.forgotten}); the hub learns it again from the next windows.` : `Relearn failed: ${errorText(error)}`);
      if (data) onDone();
    } catch (err) {
      setResult(`Relearn failed: ${String(err)}`);
    }
  };
  return (
    <div className="row">
      <button type="button" onClick={() => void relearn()}>
        Relearn reference
      </button>
      <span role="status" aria-live="polite" className="small">
        {result}
      </span>
    </div>
  );
}

/** The device page's Drift section; `operator` shows the relearn control. */
export function DriftPanel({ id, operator }: { id: string; operator: boolean }) {
  const [drift, setDrift] = useState<Drift | null>(null);
  const [error, setError] = useState("");
  const load = useCallback(async () => {
    try {
      const { data, error: err, response } = await api.GET("/api/v1/devices/{device_id}/drift", { params: { path: { device_id: id } } });
      if (data || response.status === 404) setDrift(data ?? null); // other failures keep the last report
      setError(data ? "" : response.status === 404 ? "No drift report for this device." : `Drift unavailable: ${errorText(err)}`);
    } catch (err) {
      setError(`Drift unavailable: ${String(err)}`);
    }
  }, [id]);
  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), REFRESH_MS);
    return () => clearInterval(t);
  }, [load]);
  const input = useMemo(() => worstInput(drift?.history ?? {}), [drift]);
  return (
    <section className="card" aria-labelledby="drift-title" data-testid="drift-panel">
      <h2 id="drift-title">Drift</h2>
      {error && <p role="alert" className="error small">{error}</p>}
      {!drift && !error && <p className="muted">Loading…</p>}
      {drift && (
        <>
          <Status drift={drift} />
          <div className="charts">
            <Chart title={INPUT_TITLE} unit="" digits={2} ts={input.ts} values={input.values} />
          </div>
          <Scores histograms={drift.histograms} />
          <p className="muted small">PSI under 0.1 is stable, 0.1 to 0.25 worth watching, over 0.25 a real shift. Scores over the last 24 hours.</p>
        </>
      )}
      {operator && drift && <Relearn id={id} onDone={() => void load()} />}
    </section>
  );
}
