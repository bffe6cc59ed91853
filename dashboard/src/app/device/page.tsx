"use client";
import { useSearchParams } from "next/navigation";
import { Suspense, useCallback, useEffect, useState } from "react";
import { api, can, type Command, type Device, type Schemas, type SiteLayout } from "@/api/client";
import { CameraView, SnapshotView } from "@/components/CameraView";
import { Chart } from "@/components/Chart";
import { CommandPanel } from "@/components/CommandPanel";
import { DriftPanel } from "@/components/DriftPanel";
import { SiteMap } from "@/components/SiteMap";
import { useAuth } from "@/lib/auth";
import { bufferText, isStopped, modelText, stateOf, stopText } from "@/lib/devices";
import { seedPose, useLive, type Frame } from "@/lib/live";
import { latest, METRICS, series, type Series } from "@/lib/telemetry";

const RANGES = [
  { label: "15 min", s: 900 },
  { label: "1 hour", s: 3600 },
  { label: "6 hours", s: 21600 },
  { label: "24 hours", s: 86400 },
];
const CHARTS = [
  { key: "battery", title: "Battery", unit: "%", metric: METRICS.battery },
  { key: "speed", title: "Speed", unit: "m/s", metric: METRICS.speed },
  { key: "cpu", title: "CPU", unit: "%", metric: METRICS.cpu },
  { key: "buffer", title: "Buffer depth", unit: "rows", metric: METRICS.buffer },
];

export default function DevicePageOuter() {
  return (
    <Suspense fallback={<p className="muted">Loading…</p>}>
      <DevicePage />
    </Suspense>
  );
}

function DevicePage() {
  const id = useSearchParams().get("id") ?? "";
  const { principal } = useAuth();
  const live = useLive();
  const [device, setDevice] = useState<Device | null>(null);
  const [error, setError] = useState("");
  const [path, setPath] = useState<{ x: number; y: number }[]>([]);
  const [stored, setStored] = useState<Frame | null>(null);
  const [layout, setLayout] = useState<SiteLayout | null>(null);
  const siteId = device?.site_id;

  useEffect(() => {
    if (!siteId) return;
    void api.GET("/api/v1/sites/{site_id}", { params: { path: { site_id: siteId } } }).then(({ data }) => setLayout(data?.layout ?? null));
  }, [siteId]);

  useEffect(() => {
    if (!id) return;
    void api.GET("/api/v1/devices/{device_id}", { params: { path: { device_id: id } } }).then(({ data }) => {
      setDevice(data ?? null);
      setError(data ? "" : `No device ${id} in your scope.`);
    });
    void api.GET("/api/v1/devices/{device_id}/detections", { params: { path: { device_id: id }, query: { limit: 1 } } }).then(({ data }) => {
      const d = data?.items[0];
      if (d) setStored({ ts: d.ts, frame_id: d.frame_id, camera: d.camera, objects: d.objects as unknown as Frame["objects"], zones: d.zones as unknown as Frame["zones"] });
    });
    void Promise.all([METRICS.x, METRICS.y, METRICS.theta].map((m) => latest(id, m, 600))).then(([x, y, t]) => {
      if (x && y) seedPose(id, { x: x.value, y: y.value, theta: t?.value ?? 0, ts: x.ts });
    });
  }, [id, live.acks]);

  if (!id) return <p>No device given.</p>;
  if (error) return <p role="alert" className="error">{error}</p>;
  if (!device) return <p className="muted">Loading {id}…</p>;
  const state = stateOf(device, live.states);
  const pose = live.poses[id];
  const frame = live.frames[id] ?? stored;
  const operator = can(principal, "operator");

  return (
    <div className="page">
      <h1>{device.name}</h1>
      <p className="live-value summary">
        {device.id} · {device.kind} · site {device.site_id} · <span data-testid="online">{state.online ? "online" : "offline"}</span> ·{" "}
        <span data-testid="stop-state" className={isStopped(state) ? "stopped-text" : undefined}>{stopText(state)}</span> · mode {state.mode ?? "?"} · model{" "}
        {modelText(state)} · buffer {bufferText(state)} · agent {state.agent_version ?? "?"}
      </p>
      <div className="grid2">
        <section className="card" aria-labelledby="cam-title">
          <h2 id="cam-title">Camera</h2>
          <SnapshotView deviceId={id} />
          <CameraView frame={frame} />
        </section>
        <section className="card" aria-labelledby="map-title">
          <h2 id="map-title">Position{operator ? " and path plan" : ""}</h2>
          <SiteMap
            height={300}
            focus={id}
            layout={layout}
            robots={pose ? [{ id, name: device.name, pose, stopped: isStopped(state), online: state.online === true, frame: frame ?? undefined }] : []}
            path={path}
            onPick={operator ? (x, y) => setPath((p) => [...p, { x, y }]) : undefined}
          />
          {!pose && <p className="muted small">No position reported in the last 10 minutes.</p>}
        </section>
      </div>
      {operator && <CommandPanel device={device} path={path} onClearPath={() => setPath([])} />}
      <Telemetry id={id} />
      <DriftPanel key={id} id={id} operator={operator} />
      <History id={id} acks={live.acks} />
      <Events id={id} />
    </div>
  );
}

function Telemetry({ id }: { id: string }) {
  const [range, setRange] = useState(900);
  const [data, setData] = useState<Record<string, Series>>({});
  const load = useCallback(async () => {
    const entries = await Promise.all(CHARTS.map(async (c) => [c.key, await series(id, c.metric, range)] as const));
    const from = new Date(Date.now() - range * 1000).toISOString();
    const { data: det } = await api.GET("/api/v1/devices/{device_id}/detections", {
      params: { path: { device_id: id }, query: { from, limit: 500 } },
    });
    const frames = [...(det?.items ?? [])].reverse();
    const latency: Series = { ts: frames.map((f) => Date.parse(f.ts) / 1000), values: frames.map((f) => f.latency_ms), truncated: false, resolution: "raw" };
    setData({ ...Object.fromEntries(entries), latency });
  }, [id, range]);
  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), 15_000);
    return () => clearInterval(t);
  }, [load]);
  const none: Series = { ts: [], values: [], truncated: false, resolution: "none" };
  return (
    <section className="card" aria-labelledby="tel-title">
      <h2 id="tel-title">Telemetry</h2>
      <label>
        Range{" "}
        <select value={range} onChange={(e) => setRange(Number(e.target.value))}>
          {RANGES.map((r) => (
            <option key={r.s} value={r.s}>
              {r.label}
            </option>
          ))}
        </select>
      </label>
      <div className="charts">
        {CHARTS.map((c) => {
          const s = data[c.key] ?? none;
          return <Chart key={c.key} title={c.title} unit={c.unit} ts={s.ts} values={s.values} />;
        })}
        <Chart title="Inference latency" unit="ms" ts={(data.latency ?? none).ts} values={(data.latency ?? none).values} />
      </div>
    </section>
  );
}

function History({ id, acks }: { id: string; acks: number }) {
  const [items, setItems] = useState<Command[]>([]);
  const [open, setOpen] = useState<Schemas["CommandDetail"] | null>(null);
  useEffect(() => {
    void api.GET("/api/v1/devices/{device_id}/commands", { params: { path: { device_id: id }, query: { limit: 20 } } }).then(({ data }) => setItems(data?.items ?? []));
  }, [id, acks]);
  const show = (cmd: string) =>
    void api.GET("/api/v1/commands/{cmd_id}", { params: { path: { cmd_id: cmd } } }).then(({ data }) => setOpen(data ?? null));
  return (
    <section className="card" aria-labelledby="hist-title">
      <h2 id="hist-title">Command history</h2>
      <table data-testid="command-history">
        <thead>
          <tr>
            <th>Issued</th>
            <th>Type</th>
            <th>By</th>
            <th>Status</th>
            <th>Detail</th>
          </tr>
        </thead>
        <tbody>
          {items.map((c) => (
            <tr key={c.cmd_id}>
              <td>
                <button type="button" className="link" onClick={() => show(c.cmd_id)}>
                  {new Date(c.issued_at).toLocaleString()}
                </button>
              </td>
              <td>{c.type}{c.batch ? ` (${c.batch})` : ""}</td>
              <td>{c.issued_by}</td>
              <td className={`status-${c.status}`}>{c.status}</td>
              <td>{c.detail ?? c.reason ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {open && (
        <div className="lifecycle">
          <h3>Lifecycle of {open.type} {open.cmd_id}</h3>
          <ol>
            {open.lifecycle.map((s, i) => (
              <li key={i}>
                {new Date(s.at).toLocaleTimeString()} · {s.status} ({s.source}){s.detail ? `: ${s.detail}` : ""}
              </li>
            ))}
          </ol>
        </div>
      )}
    </section>
  );
}

function Events({ id }: { id: string }) {
  const [items, setItems] = useState<Schemas["EventOut"][]>([]);
  useEffect(() => {
    void api.GET("/api/v1/devices/{device_id}/events", { params: { path: { device_id: id }, query: { limit: 30 } } }).then(({ data }) => setItems(data?.items ?? []));
  }, [id]);
  return (
    <section className="card" aria-labelledby="ev-title">
      <h2 id="ev-title">Events</h2>
      {items.length === 0 ? (
        <p className="muted">No events.</p>
      ) : (
        <ul className="events">
          {items.map((e, i) => (
            <li key={i} className={`sev-${e.severity}`}>
              {new Date(e.ts).toLocaleString()} · <strong>{e.type}</strong> ({e.severity}) {JSON.stringify(e.detail).slice(0, 160)}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
