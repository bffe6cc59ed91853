"use client";
// The device list with live state merged over the REST state, refetched on acks.
import { useCallback, useEffect, useState } from "react";
import { api, type Device } from "@/api/client";
import { seedPose, useLive, type DeviceState } from "@/lib/live";
import { latest, METRICS } from "@/lib/telemetry";

export function useDevices(): { devices: Device[]; error: string; reload: () => void } {
  const [devices, setDevices] = useState<Device[]>([]);
  const [error, setError] = useState("");
  const live = useLive();

  const reload = useCallback(() => {
    void api.GET("/api/v1/devices", { params: { query: { limit: 500 } } }).then(({ data }) => {
      if (!data) {
        setError("Could not load the devices.");
        return;
      }
      setError("");
      setDevices(data.items);
    });
  }, []);

  useEffect(reload, [reload, live.acks]);
  useEffect(() => {
    for (const d of devices) if (d.kind === "robot") void seedPoseOf(d.id);
  }, [devices]);
  return { devices, error, reload };
}

async function seedPoseOf(device: string): Promise<void> {
  const [x, y, theta] = await Promise.all([METRICS.x, METRICS.y, METRICS.theta].map((m) => latest(device, m, 600)));
  if (x && y) seedPose(device, { x: x.value, y: y.value, theta: theta?.value ?? 0, ts: x.ts });
}

/** The live state when the socket has one, else the hub's stored state. */
export function stateOf(device: Device, live: Record<string, DeviceState>): DeviceState {
  return { ...device.state, ...(live[device.id] ?? {}) };
}

export function isStopped(state: DeviceState): boolean {
  const estop = state.estop as { engaged?: boolean } | null | undefined;
  return estop?.engaged === true;
}

export function stopText(state: DeviceState): string {
  const estop = state.estop as { engaged?: boolean; source?: string; reason?: string } | null | undefined;
  if (!estop) return "unknown";
  if (!estop.engaged) return "running";
  return `stopped${estop.source ? ` (${estop.source})` : ""}`;
}

export function modelText(state: DeviceState): string {
  const model = state.model as { name?: string; version?: string } | null | undefined;
  return model?.name ? `${model.name} v${model.version ?? "?"}` : "none";
}

export function bufferText(state: DeviceState): string {
  const buffer = state.buffer as { depth?: number; dropped?: Record<string, number> } | null | undefined;
  if (!buffer) return "unknown";
  const dropped = Object.values(buffer.dropped ?? {}).reduce((a, b) => a + b, 0);
  return `${buffer.depth ?? 0} queued${dropped ? `, ${dropped} dropped` : ""}`;
}
