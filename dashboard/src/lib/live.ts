// The live feed: one WebSocket to /api/v1/ws, authenticated by its first message, reconnected
// with exponential backoff and jitter. What it hears lands in a small store that components
// read with `useLive`; while the socket is down the store says so and the UI marks data stale.
import { useSyncExternalStore } from "react";
import { loadTokens, refreshOnce, type Schemas } from "@/api/client";

export type LinkStatus = "connecting" | "live" | "down";
export type DeviceState = Schemas["DeviceStateOut"];

export interface Pose {
  x: number;
  y: number;
  theta: number;
  linear?: number;
  ts: string;
}

export interface DetectedObject {
  cls: string;
  conf: number;
  box: { x1: number; y1: number; x2: number; y2: number };
}

export interface Frame {
  ts: string;
  frame_id: string;
  camera?: string;
  objects: DetectedObject[];
  zones: Record<string, number[]>;
  latency_ms?: number;
}

export interface LiveSnapshot {
  status: LinkStatus;
  since: number; // ms epoch of the last status change
  retryInS: number | null;
  states: Record<string, DeviceState>;
  poses: Record<string, Pose>;
  latest: Record<string, Record<string, { ts: string; value: number }>>;
  frames: Record<string, Frame>;
  acks: number; // bumped on every command ack: pages refetch history
  alerts: number; // bumped on every alert message
}

let snapshot: LiveSnapshot = {
  status: "down",
  since: Date.now(),
  retryInS: null,
  states: {},
  poses: {},
  latest: {},
  frames: {},
  acks: 0,
  alerts: 0,
};
const subscribers = new Set<() => void>();

function update(change: Partial<LiveSnapshot>): void {
  snapshot = { ...snapshot, ...change };
  for (const notify of subscribers) notify();
}

export function useLive(): LiveSnapshot {
  return useSyncExternalStore(
    (notify) => {
      subscribers.add(notify);
      return () => subscribers.delete(notify);
    },
    () => snapshot,
    () => snapshot,
  );
}

/** Merge REST-fetched device state under the live one (the live one is newer). */
export function seedPose(device: string, pose: Pose): void {
  if (!snapshot.poses[device]) update({ poses: { ...snapshot.poses, [device]: pose } });
}

interface LiveMessage {
  type: string;
  device?: string;
  ts?: string;
  data?: unknown;
}

function onTelemetry(device: string, data: { points?: { ts: string; metric: string; value: number }[] }): void {
  const latest = { ...(snapshot.latest[device] ?? {}) };
  for (const p of data.points ?? []) latest[p.metric] = { ts: p.ts, value: p.value };
  const pose = { ...(snapshot.poses[device] ?? { x: 0, y: 0, theta: 0, ts: "" }) };
  let moved = false;
  for (const key of ["x", "y", "theta", "linear"] as const) {
    const point = latest[`robot.odom.${key}`];
    if (point) {
      pose[key] = point.value;
      pose.ts = point.ts;
      moved = true;
    }
  }
  update({
    latest: { ...snapshot.latest, [device]: latest },
    poses: moved ? { ...snapshot.poses, [device]: pose } : snapshot.poses,
  });
}

function onMessage(message: LiveMessage): void {
  const device = message.device ?? "";
  switch (message.type) {
    case "state":
      update({ states: { ...snapshot.states, [device]: message.data as DeviceState } });
      break;
    case "telemetry":
      onTelemetry(device, message.data as { points?: { ts: string; metric: string; value: number }[] });
      break;
    case "detections": {
      const frames = (message.data as { frames?: Frame[] }).frames ?? [];
      const last = frames[frames.length - 1];
      if (last) update({ frames: { ...snapshot.frames, [device]: last } });
      break;
    }
    case "ack":
      update({ acks: snapshot.acks + 1 });
      break;
    case "alert":
      update({ alerts: snapshot.alerts + 1 });
      break;
    default:
      break;
  }
}

const BACKOFF_MIN_S = 0.5;
const BACKOFF_MAX_S = 30;

/** Keep a socket open until the returned function is called. */
export function connectLive(): () => void {
  let socket: WebSocket | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let attempt = 0;
  let stopped = false;

  const schedule = () => {
    if (stopped) return;
    const cap = Math.min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** attempt);
    const delay = cap / 2 + Math.random() * (cap / 2);
    attempt += 1;
    update({ status: "down", since: snapshot.status === "down" ? snapshot.since : Date.now(), retryInS: Math.max(1, Math.ceil(delay)) });
    timer = setTimeout(open, delay * 1000);
  };

  const open = () => {
    const tokens = loadTokens();
    if (stopped || !tokens) return;
    if (snapshot.status !== "down") update({ status: "connecting" });
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${window.location.host}/api/v1/ws`);
    socket = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: tokens.access }));
    ws.onmessage = (event: MessageEvent<string>) => {
      let message: LiveMessage;
      try {
        message = JSON.parse(event.data) as LiveMessage;
      } catch {
        return;
      }
      if (message.type === "hello") {
        attempt = 0;
        update({ status: "live", since: Date.now(), retryInS: null });
      } else {
        onMessage(message);
      }
    };
    ws.onclose = (event: CloseEvent) => {
      if (socket !== ws) return;
      socket = null;
      // An expired access token: refresh it, then reconnect at once.
      if (event.code === 4401 && attempt === 0) {
        attempt = 1;
        void refreshOnce().then((ok) => (ok ? open() : schedule()));
      } else schedule();
    };
  };

  open();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    socket?.close();
    socket = null;
    update({ status: "down", since: Date.now(), retryInS: null });
  };
}
