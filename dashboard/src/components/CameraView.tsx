"use client";
// The device's newest rule-hit snapshot (an annotated JPEG the agent sent; the hub keeps them),
// and the latest live detections drawn on a canvas: live frames stay on the robot, only their
// results travel, so the live boxes are drawn over a placeholder and the view says so.
import { useEffect, useRef, useState } from "react";
import { api, objectUrl } from "@/api/client";
import type { Frame } from "@/lib/live";

interface Snapshot {
  url: string;
  ts: string;
  frameId: string;
}

/** The newest snapshot of `deviceId`, refreshed every `everyMs`. */
function useSnapshot(deviceId: string, everyMs = 10_000): Snapshot | null {
  const [snapshot, setSnapshot] = useState<Snapshot | null>(null);
  useEffect(() => {
    let stopped = false;
    let current: string | null = null;
    async function load() {
      const { data } = await api.GET("/api/v1/devices/{device_id}/frames", {
        params: { path: { device_id: deviceId }, query: { purpose: "snapshot", limit: 1 } },
      });
      const newest = data?.items[0];
      if (!newest || stopped || newest.frame_id === current) return;
      const url = await objectUrl(newest.url);
      if (!url || stopped) return;
      current = newest.frame_id;
      setSnapshot((old) => {
        if (old) URL.revokeObjectURL(old.url);
        return { url, ts: newest.ts, frameId: newest.frame_id };
      });
    }
    void load();
    const timer = window.setInterval(() => void load(), everyMs);
    return () => {
      stopped = true;
      window.clearInterval(timer);
    };
  }, [deviceId, everyMs]);
  return snapshot;
}

export function SnapshotView({ deviceId }: { deviceId: string }) {
  const snapshot = useSnapshot(deviceId);
  return (
    <figure className="camera">
      {snapshot ? (
        // eslint-disable-next-line @next/next/no-img-element -- a blob URL, not an optimisable asset
        <img src={snapshot.url} alt={`Snapshot ${snapshot.frameId}`} width={480} />
      ) : null}
      <figcaption className="small muted">
        {snapshot
          ? `Last rule-hit snapshot, ${new Date(snapshot.ts).toLocaleString()}`
          : "No snapshot yet: the agent sends one when a local rule fires."}
      </figcaption>
    </figure>
  );
}

const COLOURS: Record<string, string> = { person: "#e07000", forklift: "#7b3fbf" };

export function CameraView({ frame }: { frame: Frame | null }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const ctx = canvas.current?.getContext("2d");
    if (!ctx || !canvas.current) return;
    const { width, height } = canvas.current;
    ctx.fillStyle = "#1f2937";
    ctx.fillRect(0, 0, width, height);
    ctx.fillStyle = "#9ca3af";
    ctx.font = "12px sans-serif";
    ctx.fillText("no camera image from the hub: detection boxes only", 8, height - 8);
    const inZone = new Set(Object.values(frame?.zones ?? {}).flat());
    frame?.objects.forEach((o, i) => {
      const x = o.box.x1 * width;
      const y = o.box.y1 * height;
      ctx.strokeStyle = inZone.has(i) ? "#ef4444" : (COLOURS[o.cls] ?? "#22c55e");
      ctx.lineWidth = 2;
      ctx.strokeRect(x, y, (o.box.x2 - o.box.x1) * width, (o.box.y2 - o.box.y1) * height);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fillText(`${o.cls} ${(o.conf * 100).toFixed(0)}%`, x + 2, Math.max(12, y - 3));
    });
  }, [frame]);
  const zones = Object.entries(frame?.zones ?? {}).filter(([, m]) => m.length > 0);
  return (
    <figure className="camera">
      <canvas ref={canvas} width={480} height={270} aria-label="Latest detections (boxes on a placeholder frame)" />
      <figcaption className="small muted">
        {frame
          ? `Frame ${frame.frame_id}${frame.camera ? ` (${frame.camera})` : ""} at ${new Date(frame.ts).toLocaleTimeString()}: ${frame.objects.length} object(s)${
              zones.length ? `; in zones: ${zones.map(([z, m]) => `${z} (${m.length})`).join(", ")}` : ""
            }`
          : "No detections yet."}
      </figcaption>
    </figure>
  );
}
