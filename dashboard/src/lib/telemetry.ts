// Telemetry reads for the UI: the latest value of a metric, and a series for a chart.
import { api } from "@/api/client";

export const METRICS = {
  battery: "robot.battery.percent",
  speed: "robot.odom.linear",
  cpu: "host.cpu_percent",
  buffer: "outbox.depth",
  latency: "perception.latency_ms",
  x: "robot.odom.x",
  y: "robot.odom.y",
  theta: "robot.odom.theta",
} as const;

export interface Series {
  ts: number[]; // seconds since the epoch, as uPlot wants
  values: number[];
  truncated: boolean;
  resolution: string;
}

export async function series(device: string, metric: string, rangeS: number, maxPoints = 400): Promise<Series> {
  const from = new Date(Date.now() - rangeS * 1000).toISOString();
  const { data } = await api.GET("/api/v1/devices/{device_id}/telemetry", {
    params: { path: { device_id: device }, query: { metric, from, max_points: maxPoints } },
  });
  if (!data) return { ts: [], values: [], truncated: false, resolution: "none" };
  if (data.points.length > 0 || data.resolution === "raw") {
    return {
      ts: data.points.map((p) => Date.parse(p.ts) / 1000),
      values: data.points.map((p) => p.value),
      truncated: data.truncated,
      resolution: data.resolution,
    };
  }
  return {
    ts: data.buckets.map((b) => Date.parse(b.start) / 1000),
    values: data.buckets.map((b) => b.avg),
    truncated: data.truncated,
    resolution: data.resolution,
  };
}

/** The newest value within the last `withinS` seconds, or null. */
export async function latest(device: string, metric: string, withinS = 120): Promise<{ ts: string; value: number } | null> {
  const s = await series(device, metric, withinS, 10_000);
  const i = s.values.length - 1;
  const ts = s.ts[i];
  const value = s.values[i];
  return ts === undefined || value === undefined ? null : { ts: new Date(ts * 1000).toISOString(), value };
}
